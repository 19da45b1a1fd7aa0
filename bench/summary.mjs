// The issue-17 table (and issue 15's daemon rows) from one `npm run bench` result: each row's number now, its goal, and its
// ratio against the baseline measured in the same run. A row whose benchmark was skipped or
// failed says so instead of a number. `met` is true/false against the goal, null for context.
import { fmt, printTable } from "./lib.mjs";

/**
 * Builds {rows: [{key, row, now, goal, ratio, met, values}], met, judged} from the combined
 * result: the strings for the table, `values` (numbers) for comparing runs.
 */
export function buildSummary(combined) {
  const rows = [
    ...cliRows(combined.cli),
    deployRow(combined.deploy),
    ...rssRows(combined.rss),
    ...proxyRows(combined.proxy),
    ...streamRows(combined.streams),
    ...rolloutRows(combined.rollout),
    ...longLivedRows(combined.longLived),
    ...pm2Rows(combined.pm2),
    daemonCrashRow(combined.daemonCrashHolder, true),
    daemonCrashRow(combined.daemonCrash, false),
    daemonUpgradeRow(combined.daemonUpgrade),
  ];
  const judged = rows.filter((r) => r.met !== null);
  return { rows, met: judged.filter((r) => r.met).length, judged: judged.length };
}

export function printSummary(summary) {
  console.log("\n== summary (issue 17): now / goal / ratio against the baseline of the same run ==");
  printTable(
    ["row", "now", "goal", "ratio (baseline)", "met"],
    summary.rows.map((r) => [r.row, r.now, r.goal, r.ratio, r.met === null ? "" : r.met ? "yes" : "NO"]),
    { left: true },
  );
  console.log(`${summary.met} of ${summary.judged} goals met`);
}

// --- rows ---

const x = (n) => `${fmt(n, 2)}x`;

function missing(key, row, goal, bench, why) {
  const reason = !bench ? "not run" : bench.skipped ? `skipped: ${bench.skipped}` : bench.failed ? `failed: ${bench.failed}` : why;
  return { key, row, now: `not measured (${reason})`, goal, ratio: "", met: null, values: null };
}

function measured(bench) {
  return bench && !bench.skipped && !bench.failed;
}

function cliRows(cli) {
  const specs = [
    { key: "cli-status", row: "CLI start: `rollbridge status --json` (running daemon)", name: "rollbridge status --json" },
    { key: "cli-version", row: "CLI start: `rollbridge --version`", name: "rollbridge --version" },
  ];
  return specs.map(({ key, row, name }) => {
    if (!measured(cli)) return missing(key, row, "≤ 2x node -e 0", cli);
    const c = cli.commands[name];
    const base = cli.commands["node -e 0"].ms;
    const ratio = cli.ratios[name];
    return {
      key,
      row,
      now: `${fmt(c.ms.median, 0)} ms, p90 ${fmt(c.ms.p90, 0)} ms`,
      goal: `≤ ${cli.meta.goalRatio}x node -e 0`,
      ratio: `${x(ratio.median)}, p90 ${x(ratio.p90)} (node -e 0: ${fmt(base.median, 0)} ms, p90 ${fmt(base.p90, 0)} ms)`,
      met: ratio.median <= cli.meta.goalRatio,
      values: { medianMs: c.ms.median, p90Ms: c.ms.p90, ratio: ratio.median, p90Ratio: ratio.p90, baselineMedianMs: base.median, baselineP90Ms: base.p90 },
    };
  });
}

function deployRow(deploy) {
  const key = "deploy";
  const row = "deploy: `apply --wait` wall time, app booting in 300 ms";
  if (!measured(deploy)) return missing(key, row, "boot + 150 ms", deploy);
  return {
    key,
    row: row.replace("300", String(deploy.meta.bootDelayMs)),
    now: `boot + ${fmt(deploy.overhead.median, 0)} ms (wall ${fmt(deploy.wall.median, 0)} ms)`,
    goal: `boot + ${deploy.meta.goalMs} ms`,
    ratio: `${x(deploy.wall.median / deploy.boot.median)} the app's own boot (${fmt(deploy.boot.median, 0)} ms, same run)`,
    met: deploy.overhead.median <= deploy.meta.goalMs,
    values: { overheadMs: deploy.overhead.median, wallMs: deploy.wall.median, bootMs: deploy.boot.median, overheadAtSwitchMs: deploy.overheadAtSwitch.median, switchedToCliExitMs: deploy.breakdown.switchedToCliExitMs.median },
  };
}

function rssRows(rss) {
  const specs = [
    { key: "rss-daemon", launch: "daemon", row: "daemon RSS, started as plain `rollbridge daemon`" },
    { key: "rss-ensure-daemon", launch: "ensure-daemon", row: "daemon RSS, started by `rollbridge ensure-daemon`" },
  ];
  return specs.map(({ key, launch, row }) => {
    const m = measured(rss) ? rss.launches[launch] : undefined;
    if (!m) return missing(key, row, "idle ≤ 70 MB, peak ≤ 100 MB", rss, `launch ${launch} not measured`);
    const loaded = m.peakUnderLoadMB !== undefined;
    return {
      key,
      row,
      now: `idle ${fmt(m.idleMB, 1)} MB${m.afterDeployMB !== undefined ? ` (${fmt(m.afterDeployMB, 1)} MB 1 s after the deploy)` : ""}, peak ${loaded ? `${fmt(m.peakUnderLoadMB, 0)} MB under ${rss.meta.connections} connections` : `not measured (${rss.meta.load})`}`,
      goal: `idle ≤ ${rss.meta.idleGoalMB} MB, peak ≤ ${rss.meta.peakGoalMB} MB`,
      ratio: "absolute (no baseline)",
      met: m.idleMet && (loaded ? m.peakMet : false),
      values: { idleMB: m.idleMB, afterDeployMB: m.afterDeployMB ?? null, settledAfterSec: m.settledAfterSec ?? null, peakMB: m.peakUnderLoadMB ?? null, highWaterMarkMB: m.hwmAfterLoadMB ?? null },
    };
  });
}

function proxyRows(proxy) {
  const tpGoal = "≥ 1.2x req/s, p99 ≤ 1.0x";
  const rows = [];
  const by = measured(proxy) ? Object.fromEntries(proxy.summary.map((s) => [s.target, s])) : {};
  const bare = by["bare undici"];
  for (const [key, target, row] of [
    ["proxy-daemon", "rollbridge daemon", "proxy throughput: the daemon's proxy vs a bare undici proxy"],
    ["proxy-alone", "rollbridge", "proxy throughput: the proxy alone (run-proxy.mjs) vs bare undici"],
  ]) {
    const s = by[target];
    if (!s) {
      rows.push(missing(key, row, tpGoal, proxy, `target ${target} not measured`));
      continue;
    }
    rows.push({
      key,
      row,
      now: `${fmt(s.rps, 0)} req/s, p99 ${fmt(s.p99Ms, 2)} ms`,
      goal: tpGoal,
      ratio: `${x(s.rpsVsBare)} req/s, p99 ${x(s.p99VsBare)} (bare: ${fmt(bare.rps, 0)} req/s, p99 ${fmt(bare.p99Ms, 2)} ms)`,
      met: s.rpsVsBare >= 1.2 && s.p99VsBare <= 1.0,
      values: { rps: s.rps, p99Ms: s.p99Ms, rpsRatio: s.rpsVsBare, p99Ratio: s.p99VsBare, bareRps: bare.rps, bareP99Ms: bare.p99Ms },
    });
  }
  const s = by["rollbridge daemon"];
  const row = "proxy CPU per request (the daemon's utime+stime)";
  if (!s) rows.push(missing("proxy-cpu", row, "≤ 30 µs", proxy, "target rollbridge daemon not measured"));
  else {
    const nginx = by.nginx;
    rows.push({
      key: "proxy-cpu",
      row,
      now: `${fmt(s.cpuUsPerReq, 1)} µs`,
      goal: "≤ 30 µs",
      ratio: `${nginx ? `${x(s.cpuVsNginx)} nginx (${fmt(nginx.cpuUsPerReq, 1)} µs)` : `no nginx in this run (${proxy.meta.nginx})`}; ${x(s.cpuVsBare)} bare undici (${fmt(bare.cpuUsPerReq, 1)} µs)`,
      met: s.cpuUsPerReq <= 30,
      values: { usPerRequest: s.cpuUsPerReq, vsNginx: s.cpuVsNginx ?? null, nginxUsPerRequest: nginx?.cpuUsPerReq ?? null, vsBare: s.cpuVsBare, bareUsPerRequest: bare.cpuUsPerReq },
    });
  }
  return rows;
}

// Issue 18: a large body through the daemon's proxy vs direct, and the daemon's RSS meanwhile.
function streamRows(streams) {
  return ["download", "upload"].map((direction) => {
    const key = `streams-${direction}`;
    const row = `streams: a large ${direction} through the daemon vs direct, daemon RSS`;
    const goal = "≤ 1.3x direct, RSS rise ≤ 20 MB";
    const s = measured(streams) ? streams.summary.find((x) => x.direction === direction) : undefined;
    if (!s) return missing(key, row, goal, streams, `direction ${direction} not measured`);
    return {
      key,
      row: row.replace("a large", `a ${streams.meta.mb} MB`),
      now: `${fmt(s.proxyMs, 0)} ms; RSS ${fmt(s.idleMB, 0)} -> peak ${fmt(s.peakMB, 0)} MB (+${fmt(s.riseMB, 0)})`,
      goal: `≤ ${streams.meta.goalRatio}x direct, RSS rise ≤ ${streams.meta.goalRiseMB} MB`,
      // A bare TCP relay measured beside it: the floor of any proxy in Node on this machine (older results have none).
      ratio: `${x(s.ratio)} direct (${fmt(s.directMs, 0)} ms)${s.relayRatio === undefined ? "" : `; a bare TCP relay ${x(s.relayRatio)}`}`,
      met: s.ratioMet && s.riseMet,
      values: { ratio: s.ratio, proxyMs: s.proxyMs, directMs: s.directMs, relayRatio: s.relayRatio ?? null, relayMs: s.relayMs ?? null, idleMB: s.idleMB, peakMB: s.peakMB, riseMB: s.riseMB },
    };
  });
}

function rolloutRows(rollout) {
  const rows = [];
  const ok = measured(rollout);
  {
    const key = "rollout-rollback";
    const row = "rollback: a release failing every request after its health check, 16 connections";
    const goal = "≤ 1000 ms after minRequests, old pid unchanged";
    const b = ok ? rollout.rollback : null;
    if (!b) rows.push(missing(key, row, goal, rollout));
    else
      rows.push({
        key,
        row: row.replace("16", String(rollout.meta.connections)),
        now: `${b.judgeableToBackMs} ms after the ${rollout.meta.minRequests}th answer (${b.firstFailureToBackMs} ms after the first 5xx); ${b.failed} of ${b.answers} requests failed (${fmt(100 * b.failedShare, 2)}%); old pid ${b.oldPidUnchanged ? "unchanged" : "CHANGED"}`,
        goal,
        ratio: "absolute (no baseline)",
        met: b.met,
        values: { judgeableToBackMs: b.judgeableToBackMs, firstFailureToBackMs: b.firstFailureToBackMs, failed: b.failed, answers: b.answers, failedShare: b.failedShare, oldPidUnchanged: b.oldPidUnchanged },
      });
  }
  {
    const key = "rollout-canary";
    const row = "canary: one 25% step over 1000 requests";
    const goal = "±5 points";
    const c = ok ? rollout.canary : null;
    if (!c) rows.push(missing(key, row, goal, rollout));
    else
      rows.push({
        key,
        row: `canary: one ${c.weight}% step over ${c.requests} requests`,
        now: `${fmt(c.sharePercent, 1)}% to the new release`,
        goal,
        ratio: `${c.offByPoints >= 0 ? "+" : ""}${fmt(c.offByPoints, 1)} points`,
        met: c.met,
        values: { sharePercent: c.sharePercent, offByPoints: c.offByPoints, requests: c.requests },
      });
  }
  {
    const key = "rollout-counting";
    const row = "error counting: the daemon's proxy with its release judged vs not";
    const goal = "≤ 3% of a request's CPU";
    const k = ok && !rollout.counting.skipped ? rollout.counting : null;
    if (!k) rows.push(missing(key, row, goal, rollout, ok ? rollout.counting.skipped : undefined));
    else
      rows.push({
        key,
        row,
        now: `record() ${fmt(k.recordNs, 1)} ns = ${fmt(k.recordShareOfRequestPercent, 2)}% of a request (${k.recordP99Ns === undefined ? "" : `with p99 ${fmt(k.recordP99Ns, 1)} ns = ${fmt(k.recordP99ShareOfRequestPercent, 2)}%; `}end to end ${fmt(k.cpuCostPercent, 1)}% CPU per request, ${fmt(k.costPercent, 1)}% req/s)`,
        goal,
        ratio: `${fmt(k.judged.usPerRequest, 1)} vs ${fmt(k.notJudged.usPerRequest, 1)} µs, ${fmt(k.judged.rps, 0)} vs ${fmt(k.notJudged.rps, 0)} req/s (not judged, same run)`,
        met: k.met,
        values: {
          recordSharePercent: k.recordShareOfRequestPercent,
          cpuCostPercent: k.cpuCostPercent,
          rpsCostPercent: k.costPercent,
          recordNs: k.recordNs,
          recordP99Ns: k.recordP99Ns ?? null,
          recordP99SharePercent: k.recordP99ShareOfRequestPercent ?? null,
          p99CpuCostPercent: k.p99CpuCostPercent ?? null,
          judgedRps: k.judged.rps,
          notJudgedRps: k.notJudged.rps,
          judgedUsPerRequest: k.judged.usPerRequest,
          notJudgedUsPerRequest: k.notJudged.usPerRequest,
        },
      });
  }
  return rows;
}

// Issue 18: Socket.IO and raw WebSocket clients across deploys (bench/long-lived.mjs), one row
// per front (proxy, nginx in front of it) and scenario. disconnect/plain is context: an app that
// disconnects its clients loses the emits in flight unless the client retries or waits (docs).
function longLivedRows(longLived) {
  const goal = "0 broken sessions, 0 lost acks, raw close codes 1001/1012 only";
  if (!measured(longLived)) return [missing("long-lived", "long-lived: Socket.IO and WebSocket clients across deploys", goal, longLived)];
  const rows = longLived.runs.map((r) => {
    const lost = r.polling.lostAcks + r.polling.pendingAtEnd + r.websocket.lostAcks + r.websocket.pendingAtEnd;
    const broken = r.polling.brokenSessions + r.websocket.brokenSessions;
    const codes =
      Object.entries(r.raw.closeCodes)
        .map(([c, n]) => `${c}x${n}`)
        .join(" ") || "none";
    const codesOk = Object.keys(r.raw.closeCodes).every((c) => c === "1001" || c === "1012");
    return {
      key: `long-lived-${r.front}-${r.scenario}`,
      row: `long-lived via ${r.front}, app/client ${r.scenario}, ${longLived.meta.deploys} deploys`,
      now: `polling: ${r.polling.brokenSessions} broken, ${r.polling.lostAcks + r.polling.pendingAtEnd} lost of ${r.polling.sent}, max outage ${r.polling.maxOutageMs} ms; websocket: ${r.websocket.brokenSessions} broken, ${r.websocket.lostAcks + r.websocket.pendingAtEnd} lost of ${r.websocket.sent}, max outage ${r.websocket.maxOutageMs} ms; raw close codes ${codes}`,
      goal: r.scenario === "disconnect/plain" ? "— (context: loses the emits in flight by design)" : goal,
      ratio: "",
      met: r.scenario === "disconnect/plain" ? null : broken === 0 && lost === 0 && codesOk,
      values: { brokenSessions: broken, lostAcks: lost, pollingMaxOutageMs: r.polling.maxOutageMs, websocketMaxOutageMs: r.websocket.maxOutageMs, closeCodes: r.raw.closeCodes },
    };
  });
  if (longLived.nginx?.skipped) rows.push({ key: "long-lived-nginx", row: "long-lived via nginx", now: `not measured (${longLived.nginx.skipped})`, goal, ratio: "", met: null, values: null });
  return rows;
}

function pm2Rows(pm2) {
  const reference = "— (reference)";
  const rows = [];
  const p = measured(pm2) ? pm2.pm2 : undefined;
  const r = measured(pm2) ? pm2.rollbridge : undefined;
  const reload = (x) => `${x.load.failed} failed of ${x.load.requests} requests; reload ${fmt(x.reloadMs.median, 0)} ms (median of ${x.reloadMs.count})`;
  if (!p || p.skipped || p.failed) {
    const why = p?.skipped ?? (p?.failed ? `failed: ${p.failed}` : undefined) ?? (pm2?.skipped ? `skipped: ${pm2.skipped}` : pm2?.failed ? `failed: ${pm2.failed}` : "not run");
    rows.push({ key: "pm2-rss", row: "PM2 God daemon RSS, for reference", now: `not measured (${why})`, goal: reference, ratio: "", met: null, values: null });
    rows.push({ key: "pm2-reload", row: "PM2 cluster `pm2 reload` under wrk -c50", now: `not measured (${why})`, goal: reference, ratio: "", met: null, values: null });
  } else {
    rows.push({
      key: "pm2-rss",
      row: "PM2 God daemon RSS, for reference",
      now: `idle ${fmt(p.godRss.idleMB, 0)} MB, peak ${fmt(p.godRss.peakUnderLoadMB, 0)} MB under load`,
      goal: reference,
      ratio: `PM2 ${pm2.meta.pm2}, ${pm2.meta.instances} cluster instances`,
      met: null,
      values: { idleMB: p.godRss.idleMB, peakMB: p.godRss.peakUnderLoadMB },
    });
    rows.push({
      key: "pm2-reload",
      row: "PM2 cluster `pm2 reload` under wrk -c50",
      now: reload(p),
      goal: reference,
      ratio: `${fmt(p.load.rps, 0)} req/s during (shared port, no proxy hop)${p.allReplaced ? "" : "; not every instance was replaced"}`,
      met: null,
      values: reloadValues(p),
    });
  }
  if (!r) rows.push(missing("rollbridge-reload", "the same reload through Rollbridge (`apply --wait`)", reference, pm2));
  else
    rows.push({ key: "rollbridge-reload", row: "the same reload through Rollbridge (`apply --wait`)", now: reload(r), goal: reference, ratio: `${fmt(r.load.rps, 0)} req/s during (through the proxy)`, met: null, values: reloadValues(r) });
  return rows;
}

// Issue 15: the daemon is no single point of failure. kill -9 under keep-alive load, through the
// socket-activation stand-in (nothing refused) and without it (refused connections expected);
// `rollbridge upgrade` under the same load (bench/daemon-crash.mjs, bench/daemon-upgrade.mjs).
function daemonCrashRow(crash, holder) {
  const key = holder ? "daemon-crash-holder" : "daemon-crash";
  const row = `daemon kill -9 under 32 keep-alive connections, ${holder ? "through the socket holder (socket activation)" : "no socket holder (the daemon binds the port, started again 100 ms after the kill)"}`;
  const goal = holder ? "0 refused, failed ≤ in flight at the kill, 0 app restarts, 1 singleton start" : "failed ≤ in flight at the kill, 0 app restarts, 1 singleton start (refused, and resets in the dying daemon's backlog, expected)";
  if (!measured(crash)) return missing(key, row, goal, crash);
  const l = crash.load;
  return {
    key,
    row: row.replace("32", String(crash.meta.connections)),
    now: `${l.refused} refused, ${l.failed} failed (${l.inFlightAtKill} in flight${holder ? "" : `, ${l.resetInBacklog ?? 0} new connections reset in the dying daemon's backlog`}), ${l.status5xx} 5xx of ${l.ok + l.refused + l.failed + l.status5xx}; serving again ${crash.serveAgainMs === null ? "never" : `${crash.serveAgainMs} ms`} after the kill; ${crash.app.restarts} app restarts, ${crash.singleton.starts} singleton starts`,
    goal,
    ratio: "absolute (no baseline)",
    met: crash.verdict.ok,
    values: {
      refused: l.refused,
      failed: l.failed,
      inFlightAtKill: l.inFlightAtKill,
      resetInBacklog: l.resetInBacklog ?? 0,
      status5xx: l.status5xx,
      ok: l.ok,
      serveAgainMs: crash.serveAgainMs,
      appRestarts: crash.app.restarts,
      singletonStarts: crash.singleton.starts,
    },
  };
}

function daemonUpgradeRow(upgrade) {
  const key = "daemon-upgrade";
  const row = "`rollbridge upgrade` under 32 keep-alive connections, a WebSocket open";
  const goal = "0 failed, 0 app restarts, the WebSocket still echoes";
  if (!measured(upgrade)) return missing(key, row, goal, upgrade);
  const l = upgrade.load;
  return {
    key,
    row: row.replace("32", String(upgrade.meta.connections)),
    now: `${l.failed} failed, ${l.refused} refused, ${l.status5xx} 5xx of ${l.ok + l.refused + l.failed + l.status5xx}; ${upgrade.app.restarts} app restarts, ${upgrade.singleton.starts} singleton starts; WebSocket ${upgrade.websocket.echoedAfter ? "echoes" : "DOES NOT echo"} after; request → ready ${upgrade.upgrade.durationMs} ms (CLI ${upgrade.upgrade.cliWallMs} ms)`,
    goal,
    ratio: "absolute (no baseline)",
    met: upgrade.verdict.ok,
    values: {
      failed: l.failed,
      refused: l.refused,
      status5xx: l.status5xx,
      ok: l.ok,
      appRestarts: upgrade.app.restarts,
      singletonStarts: upgrade.singleton.starts,
      websocketEchoed: upgrade.websocket.echoedAfter,
      durationMs: upgrade.upgrade.durationMs,
      cliWallMs: upgrade.upgrade.cliWallMs,
    },
  };
}

function reloadValues(x) {
  return { failed: x.load.failed, requests: x.load.requests, reloadMedianMs: x.reloadMs.median, reloadMaxMs: x.reloadMs.max, rps: x.load.rps };
}
