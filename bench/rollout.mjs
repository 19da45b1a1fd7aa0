// Rollouts judged on live traffic (issue 16), with one real daemon whose config has a `rollout`
// section (bake window, minRequests, maxErrorRate; sticky: none). Measured in one run:
//
//   1. rollback: under `connections` keep-alive connections, a release that passes its health
//      check and answers 500 to every other request (bench/rollout-app.cjs with a BROKEN file)
//      is deployed with a bake window. From the client's answers: the time from its first 5xx
//      to the first answer of the old release after it (and from the minRequests-th answer of
//      the new release, when it could first be judged), the failed requests and their share,
//      and whether every answer of the old release came from the pid it had before the deploy;
//      from the daemon: the `rolled-back` event and `apply --wait`'s exit code and outcome.
//   2. canary: a 25% step (`--canary 25:600000`), then `canaryRequests` requests over the same
//      number of connections; the share the new release answered (goal within ±5 points).
//   3. the cost of the counting: wrk through the daemon, alternating rounds, with the active
//      release not judged (no rollout under way), judged (a bake window: every response
//      recorded in the release's window) and judged with a p99 bound (`--max-p99`, set far
//      above any response time so it never rolls back: each response is also timed into the
//      window's histogram); req/s, p99 and the daemon's CPU per request in each; and
//      ResponseWindow.record() alone (what the counting adds to each response), without and
//      with the p99 bound (plus the Date.now() at dispatch that timing adds), timed over 5
//      million calls, as a share of a request's CPU: the number judged against the 3% goal, as
//      the end-to-end sides move by several % between rounds on a busy machine.
//
//   npm run build && node bench/rollout.mjs [--connections 16] [--min-requests 20] [--rounds 3]
//                                           [--duration 5] [--canary-requests 1000] [--timeout 300]
//
// Every server listens on 127.0.0.1; everything started is stopped by pid; the run is bounded
// by `timeoutSec`. Writes bench/results/rollout-<timestamp>.json when run directly.
import { promises as fs } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { startBenchDaemon, waitForEvent } from "./bench-daemon.mjs";
import { fmt, loadAverage, median, parseNumberFlags, printTable, runBench, sleep, writeResult } from "./lib.mjs";
import { cpuSeconds } from "./proc.mjs";
import { findWrk, runWrk, WRK_MISSING } from "./wrk.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const APP = path.join(here, "rollout-app.cjs");

export const defaultRolloutOptions = {
  connections: 16,
  minRequests: 20,
  maxErrorRate: 0.05,
  /** Seconds of load before the bad deploy, and after the traffic went back. */
  settleSec: 1,
  canaryWeight: 25,
  canaryRequests: 1000,
  /** Throughput rounds per side, each `durationSec` of wrk after a 1 s warm-up. */
  rounds: 3,
  durationSec: 5,
  threads: 2,
  timeoutSec: 300,
  resultsDir: null,
  print: true,
};

/** Resolves with {meta, rollback, canary, counting, verdict}. */
export function runRolloutBench(opts = {}) {
  return runBench("rollout bench", defaultRolloutOptions, opts, body);
}

async function body(options, tracker, log) {
  const loadAvgAtStart = loadAverage();
  const d = await startBenchDaemon({
    tracker,
    entry: APP,
    health: { path: "/ping", intervalMs: 50 },
    drainTimeoutMs: 2000,
    extraConfig: `rollout: {bakeMs: 600000, minRequests: ${options.minRequests}, maxErrorRate: ${options.maxErrorRate}, windowMs: 30000, sticky: none}\n`,
  });
  const release = async (name, broken = false) => {
    const dir = path.join(d.dir, "releases", name);
    await fs.mkdir(dir, { recursive: true });
    await fs.copyFile(APP, path.join(dir, "server.cjs"));
    if (broken) await fs.writeFile(path.join(dir, "BROKEN"), "");
    return dir;
  };
  try {
    // The first deploy has nothing to go back to: it switches as usual.
    const first = await d.cli(["apply", "--release-path", await release("good1"), "--wait"]);
    if (first.code !== 0) throw new Error(`the first deploy failed: ${first.stderr}`);
    const rollback = await measureRollback(d, options, release, log);
    const canary = await measureCanary(d, options, release, log);
    const counting = findWrk() ? await measureCounting(d, options, release, tracker, log) : { skipped: WRK_MISSING };
    const result = {
      meta: {
        date: new Date().toISOString(),
        node: process.version,
        cpus: os.cpus().length,
        connections: options.connections,
        minRequests: options.minRequests,
        maxErrorRate: options.maxErrorRate,
        canaryWeight: options.canaryWeight,
        canaryRequests: options.canaryRequests,
        rounds: options.rounds,
        durationSec: options.durationSec,
        loadAvgAtStart,
      },
      rollback,
      canary,
      counting,
    };
    result.verdict = {
      ok: rollback.met && canary.met && (counting.skipped ? true : counting.met),
      rollbackGoalMs: 1000,
      canaryGoalPoints: 5,
      countingCostGoalPercent: 3,
    };
    if (options.print) printResult(result);
    writeResult(result, options.resultsDir, "rollout", result.meta.date, options.print);
    return result;
  } finally {
    await d.stop();
  }
}

// --- 1. a release that fails live traffic, rolled back by itself ---

async function measureRollback(d, options, release, log) {
  const before = await d.status();
  const oldRelease = before.activeRelease.id;
  const oldPid = before.processes.find((p) => p.releaseId === oldRelease && p.state === "running").pid;
  const load = startLoad(d.proxyPort, options.connections);
  await sleep(options.settleSec * 1000);
  const since = lastSeq(d);
  const deployedAt = Date.now();
  const r = await d.cli(["apply", "--json", "--release-path", await release("bad", true), "--wait"], 120_000);
  const rolledBack = await waitForEvent({ read: () => d.events }, (e) => e.seq > since && e.type === "rolled-back", 10_000).catch(() => null);
  await sleep(options.settleSec * 1000);
  const answers = await load.stop();
  const after = await d.status();
  let outcome = null;
  try {
    outcome = JSON.parse(r.stdout).outcome;
  } catch {
    // printed below as null
  }

  const byArrival = answers.filter((a) => a.at >= deployedAt).sort((a, b) => a.at - b.at);
  const failedOf = (a) => a.status !== 200;
  const first5xx = byArrival.find((a) => a.status >= 500);
  const newAnswers = byArrival.filter((a) => a.release === "bad" || a.status >= 500);
  const judgeable = newAnswers[options.minRequests - 1];
  const back = first5xx ? byArrival.find((a) => a.sentAt > first5xx.at && a.release === oldRelease && a.status === 200) : undefined;
  const lastNew = newAnswers.at(-1);
  const failed = answers.filter(failedOf).length;
  const oldPids = [...new Set(answers.filter((a) => a.release === oldRelease).map((a) => a.pid))];
  const oldPidAfter = after.processes.find((p) => p.releaseId === oldRelease && p.state === "running")?.pid ?? null;
  const m = {
    applyExitCode: r.code,
    outcome: outcome?.outcome ?? null,
    reason: outcome?.message ?? null,
    answers: answers.length,
    failed,
    failedShare: answers.length ? failed / answers.length : null,
    failedAfterBack: back ? answers.filter((a) => failedOf(a) && a.sentAt > back.at).length : null,
    newReleaseAnswers: newAnswers.length,
    firstFailureToBackMs: first5xx && back ? back.at - first5xx.at : null,
    judgeableToBackMs: judgeable && back ? back.at - judgeable.at : null,
    firstFailureToRolledBackEventMs: first5xx && rolledBack ? Date.parse(rolledBack.at) - first5xx.at : null,
    firstFailureToLastNewAnswerMs: first5xx && lastNew ? lastNew.at - first5xx.at : null,
    oldPidBefore: oldPid,
    oldPidAfter,
    oldPidsAnswering: oldPids,
    desiredBackOnOld: after.desired?.releaseId === oldRelease,
  };
  m.oldPidUnchanged = oldPidAfter === oldPid && oldPids.length === 1 && oldPids[0] === oldPid;
  m.met = r.code === 1 && m.outcome === "rolled-back" && m.judgeableToBackMs !== null && m.judgeableToBackMs <= 1000 && m.oldPidUnchanged && m.failedAfterBack === 0;
  log(`rollback: ${m.reason}; first 5xx → old release ${m.firstFailureToBackMs} ms, ${failed} of ${answers.length} requests failed, old pid ${m.oldPidUnchanged ? "unchanged" : "CHANGED"}`);
  return m;
}

// --- 2. a 25% canary step ---

async function measureCanary(d, options, release, log) {
  const r = await d.cli(["apply", "--release-path", await release("canary"), "--canary", `${options.canaryWeight}:600000`]);
  if (r.code !== 0) throw new Error(`apply --canary failed: ${r.stderr}`);
  await until(async () => (await d.status()).rolloutPhase?.phase === "canary", 30_000, "the canary step");
  const answers = await fixedLoad(d.proxyPort, options.connections, options.canaryRequests);
  const toNew = answers.filter((a) => a.release === "canary").length;
  const failed = answers.filter((a) => a.status !== 200).length;
  const phase = (await d.status()).rolloutPhase;
  const promote = await d.cli(["promote"]);
  if (promote.code !== 0) throw new Error(`promote failed: ${promote.stderr}`);
  await settled(d, "canary");
  const sharePercent = (100 * toNew) / answers.length;
  const m = {
    weight: options.canaryWeight,
    requests: answers.length,
    toNew,
    failed,
    sharePercent,
    offByPoints: sharePercent - options.canaryWeight,
    judgedResponses: phase?.responses ?? null,
  };
  m.met = failed === 0 && Math.abs(m.offByPoints) <= 5;
  log(`canary ${options.canaryWeight}%: ${toNew} of ${answers.length} requests (${fmt(sharePercent, 1)}%) went to the new release`);
  return m;
}

// --- 3. what the counting costs ---

async function measureCounting(d, options, release, tracker, log) {
  const rounds = [];
  let n = 0;
  const judgedRound = async (p99) => {
    n += 1;
    const name = `judged${n}`;
    const r = await d.cli(["apply", "--release-path", await release(name), "--bake", "600000", ...(p99 ? ["--max-p99", "60000"] : [])]);
    if (r.code !== 0) throw new Error(`apply --bake failed: ${r.stderr}`);
    await until(async () => (await d.status()).rolloutPhase?.phase === "bake", 30_000, "the bake window");
    const m = await wrkRound(d, options, tracker);
    const phase = (await d.status()).rolloutPhase;
    m.judgedResponses = phase?.responses?.total ?? 0;
    const promote = await d.cli(["promote"]);
    if (promote.code !== 0) throw new Error(`promote failed: ${promote.stderr}`);
    await settled(d, name);
    return m;
  };
  for (let i = 0; i < options.rounds; i++) {
    const sides = ["not judged", "judged", "judged, p99"];
    const order = [...sides.slice(i % 3), ...sides.slice(0, i % 3)];
    for (const side of order) {
      const m = side === "not judged" ? await wrkRound(d, options, tracker) : await judgedRound(side === "judged, p99");
      rounds.push({ round: i + 1, side, ...m });
      log(`round ${i + 1} ${side}: ${fmt(m.rps, 0)} req/s, p99 ${fmt(m.p99Ms, 2)} ms, ${fmt(m.usPerRequest, 1)} µs CPU/request${side !== "not judged" ? `, ${m.judgedResponses} responses judged` : ""}`);
    }
  }
  const side = (name) => {
    const rs = rounds.filter((r) => r.side === name);
    return { rps: median(rs.map((r) => r.rps)), p99Ms: median(rs.map((r) => r.p99Ms)), usPerRequest: median(rs.map((r) => r.usPerRequest)), errors: rs.reduce((s, r) => s + r.errors, 0) };
  };
  const plain = side("not judged");
  const judged = side("judged");
  const judgedP99 = side("judged, p99");
  const costPercent = 100 * (1 - judged.rps / plain.rps);
  const cpuCostPercent = 100 * (judged.usPerRequest / plain.usPerRequest - 1);
  const p99CostPercent = 100 * (1 - judgedP99.rps / plain.rps);
  const p99CpuCostPercent = 100 * (judgedP99.usPerRequest / plain.usPerRequest - 1);
  const everyJudgedRoundCounted = rounds.filter((r) => r.side !== "not judged").every((r) => r.judgedResponses > 0);
  const record = await recordCost(false);
  const recordP99 = await recordCost(true);
  const share = (ns) => (100 * ns) / 1000 / plain.usPerRequest;
  return {
    notJudged: plain,
    judged,
    judgedP99,
    costPercent,
    cpuCostPercent,
    p99CostPercent,
    p99CpuCostPercent,
    // The counting alone: ResponseWindow.record's CPU against the daemon's CPU per request.
    recordNs: record.ns,
    recordShareOfRequestPercent: share(record.ns),
    recordP99Ns: recordP99.ns,
    recordP99ShareOfRequestPercent: share(recordP99.ns),
    everyJudgedRoundCounted,
    // Judged on what the counting adds to a request (record() against the request's CPU): the
    // end-to-end sides, printed beside it, move by several % between rounds with other load on a
    // 2-core machine, far more than the counting costs.
    met: share(record.ns) <= 3 && share(recordP99.ns) <= 3 && everyJudgedRoundCounted && plain.errors === 0 && judged.errors === 0 && judgedP99.errors === 0,
    rounds,
  };
}

/**
 * ns per ResponseWindow.record() call (the built one), one failure in 50, over 5 million calls;
 * with `p99`, a window with a p99 bound, each call given a send time read with Date.now() as the
 * proxy does at dispatch (that clock read included), one response in 200 over the bound.
 */
async function recordCost(p99) {
  const { ResponseWindow } = await import(pathToFileURL(path.join(root, "dist/proxy/response-window.js")).href);
  const w = new ResponseWindow({ windowMs: 30_000, minRequests: 20, maxErrorRate: 0.05, ...(p99 ? { maxP99Ms: 500 } : {}) }, () => {});
  const once = p99 ? (i) => w.record(i % 50 === 0, Date.now() - (i % 200 === 0 ? 800 : i % 40)) : (i) => w.record(i % 50 === 0);
  for (let i = 0; i < 200_000; i++) once(i);
  const calls = 5_000_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) once(i);
  return { ns: Number(process.hrtime.bigint() - t0) / calls };
}

async function wrkRound(d, options, tracker) {
  await runWrk(tracker, d.proxyPort, { durationSec: 1, connections: options.connections, threads: options.threads });
  const cpuBefore = cpuSeconds(d.daemonPid);
  const w = await runWrk(tracker, d.proxyPort, { durationSec: options.durationSec, connections: options.connections, threads: options.threads });
  const cpu = cpuSeconds(d.daemonPid) - cpuBefore;
  return { rps: w.rps, p99Ms: w.p99Ms, requests: w.requests, errors: w.errors, usPerRequest: w.requests ? (cpu * 1e6) / w.requests : null };
}

/** Waits until only `releaseId` runs (the previous release drained and stopped). */
async function settled(d, releaseId) {
  await until(
    async () => {
      const s = await d.status();
      return s.activeRelease?.id === releaseId && !s.rolloutPhase && s.processes.every((p) => p.releaseId === releaseId || p.state !== "running");
    },
    30_000,
    `${releaseId} alone`,
  );
}

// --- helpers ---

function lastSeq(d) {
  return d.events.at(-1)?.seq ?? 0;
}

async function until(fn, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** One GET / on `agent`: {sentAt, at, status, release, pid}; a failed request is status 0. */
function get(port, agent) {
  return new Promise((resolve) => {
    const sentAt = Date.now();
    const req = http.get({ host: "127.0.0.1", port, path: "/", agent, timeout: 10_000 }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (text += c));
      res.on("end", () => {
        const [release, pid] = text.trim().split(" ");
        resolve({ sentAt, at: Date.now(), status: res.statusCode, release: release || null, pid: Number(pid) || null });
      });
      res.on("error", () => resolve({ sentAt, at: Date.now(), status: 0, release: null, pid: null }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => resolve({ sentAt, at: Date.now(), status: 0, release: null, pid: null }));
  });
}

/** `connections` loops, one request at a time each on its own keep-alive connection, until stopped. */
function startLoad(port, connections) {
  const answers = [];
  let running = true;
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const loops = Array.from({ length: connections }, async () => {
    while (running) answers.push(await get(port, agent));
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return answers;
    },
  };
}

/** Exactly `total` requests over `connections` keep-alive connections. */
async function fixedLoad(port, connections, total) {
  const answers = [];
  let sent = 0;
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (sent < total) {
        sent += 1;
        answers.push(await get(port, agent));
      }
    }),
  );
  agent.destroy();
  return answers;
}

function printResult(r) {
  const b = r.rollback;
  const c = r.canary;
  const k = r.counting;
  const ms = (v) => (v === null ? "n/a" : `${v} ms`);
  console.log("");
  printTable(
    ["rollout", "value", "goal"],
    [
      [`bad release under ${r.meta.connections} connections: apply --wait`, `exit ${b.applyExitCode}, ${b.outcome}`, "exit 1, rolled-back"],
      ["  reason", b.reason ?? "n/a", ""],
      ["  first 5xx → old release answers again", ms(b.firstFailureToBackMs), ""],
      [`  ${r.meta.minRequests}th answer of the new release → old release answers`, ms(b.judgeableToBackMs), "≤ 1000 ms"],
      ["  first 5xx → rolled-back event", ms(b.firstFailureToRolledBackEventMs), ""],
      ["  failed requests", `${b.failed} of ${b.answers} (${fmt(100 * (b.failedShare ?? 0), 2)}%)`, ""],
      ["  failed requests sent after the old release answered", String(b.failedAfterBack), "0"],
      ["  old release's pid", b.oldPidUnchanged ? `unchanged (${b.oldPidBefore})` : `CHANGED (${b.oldPidBefore} → ${b.oldPidAfter}; answering: ${b.oldPidsAnswering.join(", ")})`, "unchanged"],
      [`canary ${c.weight}% over ${c.requests} requests`, `${fmt(c.sharePercent, 1)}% (${c.toNew}), ${c.offByPoints >= 0 ? "+" : ""}${fmt(c.offByPoints, 1)} points`, "±5 points"],
      ...(k.skipped
        ? [["counting cost", `not measured (${k.skipped})`, "≤ 3%"]]
        : [
            ["req/s, release not judged", `${fmt(k.notJudged.rps, 0)} (p99 ${fmt(k.notJudged.p99Ms, 2)} ms, ${fmt(k.notJudged.usPerRequest, 1)} µs CPU/req)`, ""],
            ["req/s, release judged (bake window)", `${fmt(k.judged.rps, 0)} (p99 ${fmt(k.judged.p99Ms, 2)} ms, ${fmt(k.judged.usPerRequest, 1)} µs CPU/req)`, ""],
            ["req/s, release judged with a p99 bound", `${fmt(k.judgedP99.rps, 0)} (p99 ${fmt(k.judgedP99.p99Ms, 2)} ms, ${fmt(k.judgedP99.usPerRequest, 1)} µs CPU/req)`, ""],
            ["counting cost: req/s; CPU per request", `${fmt(k.costPercent, 1)}%; ${fmt(k.cpuCostPercent, 1)}%`, ""],
            ["counting cost with p99: req/s; CPU per request", `${fmt(k.p99CostPercent, 1)}%; ${fmt(k.p99CpuCostPercent, 1)}%`, ""],
            ["  ResponseWindow.record() alone", `${fmt(k.recordNs, 1)} ns (${fmt(k.recordShareOfRequestPercent, 3)}% of a request's CPU)`, "≤ 3%"],
            ["  record() with the p99 bound (and its Date.now())", `${fmt(k.recordP99Ns, 1)} ns (${fmt(k.recordP99ShareOfRequestPercent, 3)}% of a request's CPU)`, "≤ 3%"],
          ]),
    ],
  );
  console.log("");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const opts = parseNumberFlags(process.argv.slice(2), {
    "--connections": "connections",
    "--min-requests": "minRequests",
    "--rounds": "rounds",
    "--duration": "durationSec",
    "--canary-requests": "canaryRequests",
    "--timeout": "timeoutSec",
  });
  runRolloutBench({ resultsDir: path.join(here, "results"), ...opts }).catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
