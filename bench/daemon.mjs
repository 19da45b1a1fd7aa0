// Daemon benchmark: a real Rollbridge daemon (dist/) in a temp dir, deploying copies of
// examples/app/server.mjs. Everything is measured against a baseline taken in the same run:
//
//   - throughput and p99 latency (wrk, keep-alive): direct to the app's port vs through the
//     daemon's proxy port, in alternating rounds; reported as proxy/direct ratios;
//   - switch latency over N deploys (`rollbridge apply --release-path P --wait`, alternating two
//     release dirs), from the daemon's `traffic-switched` events, compared with the health
//     interval; once with a short interval (50 ms) and once with the default interval;
//   - daemon RSS (VmRSS from /proc): idle after the first deploy, peak during the wrk load.
//
//   npm run build && node bench/daemon.mjs [--rounds 3] [--duration 5] [--connections 50]
//                                          [--threads 2] [--deploys 10] [--no-default-interval]
//
// Every server listens on 127.0.0.1; everything started is stopped by pid; the run is bounded
// by `timeoutSec`. Writes bench/results/daemon-<timestamp>.json when run directly.

import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { loadDefaultIntervalMs, startBenchDaemon } from "./bench-daemon.mjs";
import { bounded, fmt, median, sleep, stats, writeResult } from "./lib.mjs";
import { ChildTracker, kbToMB, readMemory, startRssSampler } from "./proc.mjs";
import { findWrk, runWrk, wrkVersion } from "./wrk.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));

/** Default options; every field may be overridden by runDaemonBench(opts) or CLI flags. */
export const defaultDaemonBenchOptions = {
  /** wrk rounds; each round runs direct and proxy once, the order alternating per round. */
  rounds: 3,
  durationSec: 5,
  warmupSec: 1,
  connections: 50,
  threads: 2,
  /** Deploys measured per health-interval configuration (after the first, cold, deploy). */
  deploys: 10,
  /** The short health interval of the main configuration. */
  intervalMs: 50,
  /** Also run the deploys with a config that omits health.intervalMs (the default interval). */
  defaultInterval: true,
  /** BOOT_DELAY_MS for the example app. */
  bootDelayMs: 20,
  rssSampleMs: 200,
  rssTargetMB: 100,
  /** Slack on top of one health interval for the switch-latency target. */
  switchSlackMs: 20,
  /** Hard bound on the whole run; everything started is stopped when it passes. */
  timeoutSec: 150,
  /** Where to write daemon-<timestamp>.json; null to skip. */
  resultsDir: null,
  print: true,
};

/**
 * Runs the benchmark and resolves with a JSON-able {meta, throughput, rss, switch} object.
 * Starts one daemon at a time (which starts the apps), wrk, and CLI invocations; stops each by
 * pid before resolving or rejecting.
 */
export async function runDaemonBench(opts = {}) {
  const options = { ...defaultDaemonBenchOptions, ...opts };
  const log = (text) => options.print && process.stderr.write(`[daemon bench] ${text}\n`);
  const tracker = new ChildTracker();
  return bounded("daemon bench", options.timeoutSec, tracker, () => body(options, tracker, log));
}

async function body(options, tracker, log) {
  const wrkPath = findWrk();
  if (!wrkPath) log("wrk not found on PATH: install it with `apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk`; skipping the throughput part");
  const defaultIntervalMs = await loadDefaultIntervalMs();
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? null,
    loadGenerator: wrkPath ? wrkVersion() : null,
    rounds: options.rounds,
    durationSec: options.durationSec,
    connections: options.connections,
    threads: options.threads,
    deploys: options.deploys,
    bootDelayMs: options.bootDelayMs,
    healthIntervalMs: options.intervalMs,
    defaultHealthIntervalMs: defaultIntervalMs,
    // Other load on the machine skews every number (the ratios less so): worth a look.
    loadAvgAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
  if (meta.loadAvgAtStart[0] > 0.5 * meta.cpus) log(`warning: load average ${meta.loadAvgAtStart[0]} on ${meta.cpus} CPUs before the run; something else is busy`);

  // --- main configuration: health.intervalMs = options.intervalMs ---
  log(`starting a daemon (health interval ${options.intervalMs} ms)`);
  const d = await startBenchDaemon(daemonOptions(tracker, options, options.intervalMs));
  let throughput;
  let rss;
  const switchResults = [];
  try {
    await d.deploy("v1");
    const daemonPid = d.daemonPid;
    const app = await d.app();
    log(`daemon pid ${daemonPid}, proxy 127.0.0.1:${d.proxyPort}, app pid ${app.pid} on 127.0.0.1:${app.port}`);

    await sleep(1000);
    const idle = readMemory(daemonPid);
    rss = { daemonPid, targetMB: options.rssTargetMB, idleAfterFirstDeployMB: kbToMB(idle.rssKB) };

    if (wrkPath) {
      const sampler = startRssSampler(daemonPid, options.rssSampleMs);
      throughput = await measureThroughput({
        options,
        tracker,
        log,
        targets: [
          { name: "direct", port: app.port },
          { name: "proxy", port: d.proxyPort },
        ],
        sampler,
      });
      const samples = sampler.stop();
      const after = await d.status();
      const appAfter = after.processes.find((p) => p.instanceId === app.instanceId);
      throughput.appRestartedDuringLoad = !appAfter || appAfter.pid !== app.pid || appAfter.port !== app.port;
      const hwm = readMemory(daemonPid).hwmKB;
      rss.peakUnderLoadMB = kbToMB(Math.max(0, ...samples.proxy.map((s) => s.rssKB)));
      rss.peakDuringDirectMB = kbToMB(Math.max(0, ...samples.direct.map((s) => s.rssKB)));
      rss.samplesUnderLoad = samples.proxy.length;
      // The whole series (MB, every rssSampleMs), to tell a plateau from a climb.
      rss.seriesUnderLoadMB = samples.proxy.map((x) => kbToMB(x.rssKB));
      rss.highWaterMarkMB = kbToMB(hwm);
      await sleep(1000);
      rss.afterLoadMB = kbToMB(readMemory(daemonPid).rssKB);
    } else {
      throughput = { skipped: "wrk not installed (apt-get install -y wrk)" };
    }

    log(`${options.deploys} deploys with health interval ${options.intervalMs} ms`);
    switchResults.push(await measureSwitches({ d, options, intervalMs: options.intervalMs, configured: true, log }));
    await sleep(500);
    rss.afterDeploysMB = kbToMB(readMemory(daemonPid).rssKB);
    rss.highWaterMarkMB = kbToMB(readMemory(daemonPid).hwmKB);
    const peak = Math.max(rss.idleAfterFirstDeployMB, rss.peakUnderLoadMB ?? 0);
    rss.pass = peak < options.rssTargetMB;
  } finally {
    await d.stop();
  }

  // --- second configuration: health.intervalMs omitted (the default) ---
  if (options.defaultInterval) {
    log(`starting a daemon with the default health interval (${defaultIntervalMs ?? "unknown"} ms)`);
    const d2 = await startBenchDaemon(daemonOptions(tracker, options, null));
    try {
      await d2.deploy("v1");
      log(`${options.deploys} deploys with the default health interval`);
      switchResults.push(await measureSwitches({ d: d2, options, intervalMs: defaultIntervalMs, configured: false, log }));
    } finally {
      await d2.stop();
    }
  }

  const result = { meta, throughput, rss, switch: switchResults };
  if (options.print) printTable(result);
  writeResult(result, options.resultsDir, "daemon", meta.date, options.print);
  return result;
}

// --- throughput ---

async function measureThroughput({ options, tracker, log, targets, sampler }) {
  for (const t of targets) await runWrk(tracker, t.port, { ...options, durationSec: options.warmupSec });
  const rounds = [];
  for (let round = 0; round < options.rounds; round++) {
    const order = round % 2 === 0 ? targets : [...targets].reverse();
    for (const target of order) {
      sampler.phase = target.name;
      const r = await runWrk(tracker, target.port, options);
      sampler.phase = null;
      rounds.push({ round: round + 1, target: target.name, ...r });
      log(`round ${round + 1} ${target.name.padEnd(6)} ${fmt(r.rps, 0).padStart(8)} req/s  p50 ${fmt(r.p50Ms, 2)} ms  p99 ${fmt(r.p99Ms, 2)} ms${r.errors ? `  errors ${r.errors}` : ""}`);
    }
  }
  const summary = {};
  for (const t of targets) {
    const mine = rounds.filter((r) => r.target === t.name);
    summary[t.name] = {
      rps: median(mine.map((r) => r.rps)),
      p50Ms: median(mine.map((r) => r.p50Ms)),
      p99Ms: median(mine.map((r) => r.p99Ms)),
      errors: mine.reduce((n, r) => n + r.errors, 0),
      requests: mine.reduce((n, r) => n + r.requests, 0),
      // (max - min) / median of req/s over the rounds: above ~0.2 the machine was not quiet.
      rpsSpread: (Math.max(...mine.map((r) => r.rps)) - Math.min(...mine.map((r) => r.rps))) / median(mine.map((r) => r.rps)),
    };
  }
  const noisy = Object.values(summary).some((x) => x.rpsSpread > 0.2);
  if (noisy) log("warning: req/s varied by more than 20% between rounds; the machine was busy, treat the numbers with care");
  return {
    rounds,
    noisy,
    direct: summary.direct,
    proxy: summary.proxy,
    ratio: { rps: summary.proxy.rps / summary.direct.rps, p99: summary.proxy.p99Ms / summary.direct.p99Ms, p50: summary.proxy.p50Ms / summary.direct.p50Ms },
  };
}

// --- switch latency ---

async function measureSwitches({ d, options, intervalMs, configured, log }) {
  const deploys = [];
  for (let i = 0; i < options.deploys; i++) {
    const release = i % 2 === 0 ? "v2" : "v1";
    const r = await d.deploy(release);
    deploys.push(r);
    log(
      `  deploy ${String(i + 1).padStart(2)} → ${release}: healthy→switched ${r.switchLatencyMs} ms, listen→switched ${r.listenToSwitchedMs ?? "?"} ms, rollout ${r.rolloutMs} ms, boot ${r.bootMs} ms, write→switched ${r.writeToSwitchedMs} ms`,
    );
  }
  const targetMs = intervalMs == null ? null : intervalMs + options.switchSlackMs;
  const stat = (key) => stats(deploys.map((x) => x[key]).filter((v) => Number.isFinite(v)));
  const out = {
    healthIntervalMs: intervalMs,
    intervalConfigured: configured,
    targetMs,
    switchLatencyMs: stat("switchLatencyMs"),
    listenToSwitchedMs: stat("listenToSwitchedMs"),
    rolloutMs: stat("rolloutMs"),
    bootMs: stat("bootMs"),
    writeToSwitchedMs: stat("writeToSwitchedMs"),
    writeToSwitchedMinusBootMs: stat("writeToSwitchedMinusBootMs"),
    writeToRolloutStartMs: stat("writeToRolloutStartMs"),
    cliWallMs: stat("cliWallMs"),
    deploys,
  };
  if (targetMs != null) {
    out.switchLatencyWithinTarget = out.switchLatencyMs.max <= targetMs;
    out.listenToSwitchedWithinTarget = out.listenToSwitchedMs.count > 0 ? out.listenToSwitchedMs.max <= targetMs : null;
  }
  return out;
}

// The daemon as ensure-daemon and the systemd example start it (docs/systemd.md#memory);
// BENCH_DAEMON_NODE_FLAGS="" measures a plain `node … daemon` instead (bench/daemon-rss.mjs
// measures both). The app is examples/app/server.mjs with a listen-stamp preload.
function daemonOptions(tracker, options, intervalMs) {
  return {
    tracker,
    nodeFlags: (process.env.BENCH_DAEMON_NODE_FLAGS ?? "--max-semi-space-size=4").split(" ").filter(Boolean),
    env: { BOOT_DELAY_MS: String(options.bootDelayMs) },
    health: intervalMs == null ? { path: "/ping" } : { path: "/ping", intervalMs },
    stampListen: true,
  };
}

// --- reporting ---

export function printTable(result) {
  const rows = [];
  const t = result.throughput;
  if (t?.skipped) rows.push(["throughput", `skipped: ${t.skipped}`]);
  else if (t) {
    rows.push([`direct to the app (${result.meta.connections} conns)`, `${fmt(t.direct.rps, 0)} req/s   p99 ${fmt(t.direct.p99Ms, 2)} ms   errors ${t.direct.errors}`]);
    rows.push(["through the daemon's proxy", `${fmt(t.proxy.rps, 0)} req/s   p99 ${fmt(t.proxy.p99Ms, 2)} ms   errors ${t.proxy.errors}`]);
    rows.push(["ratio proxy / direct", `req/s ${fmt(t.ratio.rps, 2)}x   p99 ${fmt(t.ratio.p99, 2)}x${t.noisy ? "   (noisy: rounds varied > 20%)" : ""}`]);
  }
  const r = result.rss;
  if (r) {
    rows.push(["daemon RSS idle (after 1st deploy)", `${fmt(r.idleAfterFirstDeployMB, 1)} MB`]);
    if (r.peakUnderLoadMB !== undefined) rows.push(["daemon RSS peak under load", `${fmt(r.peakUnderLoadMB, 1)} MB (${r.samplesUnderLoad} samples; VmHWM ${fmt(r.highWaterMarkMB, 1)} MB)`]);
    if (r.afterDeploysMB !== undefined) rows.push(["daemon RSS after the deploys", `${fmt(r.afterDeploysMB, 1)} MB`]);
    rows.push(["RSS target", `< ${r.targetMB} MB: ${r.pass ? "met" : "NOT met"}`]);
  }
  const s3 = (s) => (s && s.count ? `${s.min} / ${s.median} / ${s.max} ms` : "n/a");
  for (const s of result.switch ?? []) {
    const label = `interval ${s.healthIntervalMs ?? "?"} ms${s.intervalConfigured ? "" : " (default)"}`;
    rows.push([`[${label}] deploys`, `${s.deploys.length}   (min / median / max)`]);
    rows.push(["  healthy → switched", `${s3(s.switchLatencyMs)}${s.targetMs != null ? `   target ≤ ${s.targetMs} ms: ${s.switchLatencyWithinTarget ? "met" : "NOT met"}` : ""}`]);
    rows.push(["  app listening → switched", `${s3(s.listenToSwitchedMs)}${s.targetMs != null && s.listenToSwitchedWithinTarget != null ? `   target ≤ ${s.targetMs} ms: ${s.listenToSwitchedWithinTarget ? "met" : "NOT met"}` : ""}`]);
    rows.push(["  rollout start → switched", s3(s.rolloutMs)]);
    rows.push(["  app boot → healthy", s3(s.bootMs)]);
    rows.push(["  desired write → switched", s3(s.writeToSwitchedMs)]);
    rows.push(["  … minus app boot", s3(s.writeToSwitchedMinusBootMs)]);
    rows.push(["  desired write → rollout start", s3(s.writeToRolloutStartMs)]);
    rows.push(["  `apply --wait` wall time", s3(s.cliWallMs)]);
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log("\nRollbridge daemon benchmark");
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
  console.log("");
}

// --- CLI ---

function parseArgs(argv) {
  const opts = {};
  if (argv.includes("--no-default-interval")) opts.defaultInterval = false;
  const names = { "--rounds": "rounds", "--duration": "durationSec", "--warmup": "warmupSec", "--connections": "connections", "--threads": "threads", "--deploys": "deploys", "--interval": "intervalMs", "--timeout": "timeoutSec" };
  for (let i = 0; i < argv.length; i++) {
    const key = names[argv[i]];
    if (key) opts[key] = Number(argv[++i]);
  }
  return opts;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runDaemonBench({ resultsDir: path.join(here, "results"), ...parseArgs(process.argv.slice(2)) }).catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
