// Daemon memory, however it is started: a plain `rollbridge daemon` (no extra V8 flags, as a
// user types it or a unit without NODE_OPTIONS runs it), and a daemon started by
// `rollbridge ensure-daemon` (as deploy scripts start it, with whatever flags it passes). Each
// time: VmRSS one second after the first deploy, then every 500 ms for --settle seconds with
// no traffic (idle: the median of the last 5 s of those samples, once V8's memory reducer has
// collected what the start and the deploy left behind — it runs 8 s after the last full
// collection when the heap is quiet), then every 100 ms while wrk keeps 50 connections busy
// through the proxy, VmHWM (the kernel's high-water mark) before and after the load, and VmRSS
// one second after it. Absolute MB: there is no baseline to divide by.
//
//   npm run build && node bench/daemon-rss.mjs [--duration 10] [--connections 50] [--threads 2] [--settle 20] [--timeout 180]
//
// Needs wrk for the load part (without it: idle only, saying why). Writes
// bench/results/rss-<timestamp>.json when run directly.
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { LAUNCHES, startBenchDaemon } from "./bench-daemon.mjs";
import { bounded, fmt, median, parseNumberFlags, printTable, sleep, writeResult } from "./lib.mjs";
import { ChildTracker, kbToMB, readMemory, startRssSampler } from "./proc.mjs";
import { HELLO_APP } from "./proxy.mjs";
import { findWrk, runWrk, WRK_MISSING } from "./wrk.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));

export const defaultDaemonRssOptions = {
  durationSec: 10,
  connections: 50,
  threads: 2,
  sampleMs: 100,
  /** Seconds of no traffic after the first second, sampled every 500 ms: idle is the median of their last 5 s. */
  settleSec: 20,
  launches: LAUNCHES,
  /** The goals: at most this much RSS under load, and idle. */
  peakGoalMB: 100,
  idleGoalMB: 70,
  timeoutSec: 180,
  resultsDir: null,
  print: true,
};

/** Resolves with {meta, launches: {daemon: {...}, "ensure-daemon": {...}}}. */
export async function runDaemonRssBench(opts = {}) {
  const options = { ...defaultDaemonRssOptions, ...opts };
  // Idle is the median of the last 5 s of the settle window: a shorter (or not numeric) one has none.
  if (!(options.settleSec >= 5)) throw new Error(`--settle ${opts.settleSec}: give at least 5 seconds (idle is the median of the window's last 5 s)`);
  const tracker = new ChildTracker();
  return bounded("daemon rss bench", options.timeoutSec, tracker, () => body(options, tracker));
}

async function body(options, tracker) {
  const wrk = findWrk();
  const log = (text) => options.print && process.stderr.write(`[rss bench] ${text}\n`);
  if (!wrk) log(`${WRK_MISSING}: measuring idle RSS only`);
  const result = {
    meta: {
      date: new Date().toISOString(),
      node: process.version,
      cpus: os.cpus().length,
      durationSec: options.durationSec,
      connections: options.connections,
      sampleMs: options.sampleMs,
      settleSec: options.settleSec,
      peakGoalMB: options.peakGoalMB,
      idleGoalMB: options.idleGoalMB,
      loadAvgAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
      load: wrk ? "wrk" : WRK_MISSING,
    },
    launches: {},
  };
  for (const launch of options.launches) {
    const d = await startBenchDaemon({ tracker, launch, entry: HELLO_APP, health: { path: "/ping" } });
    try {
      await d.deploy("v1");
      const pid = d.daemonPid;
      const m = {
        pid,
        command: readFileSync(`/proc/${pid}/cmdline`, "utf8")
          .split("\0")
          .filter(Boolean)
          .map((a) => (a === process.execPath ? "node" : a))
          .join(" "),
      };
      await sleep(1000);
      m.afterDeployMB = kbToMB(readMemory(pid).rssKB);
      // No traffic: what the daemon holds once the start's and the deploy's garbage is collected.
      const settle = [];
      for (let t = 0.5; t <= options.settleSec; t += 0.5) {
        await sleep(500);
        settle.push({ t, mb: kbToMB(readMemory(pid).rssKB) });
      }
      const idle = readMemory(pid);
      m.settleSeriesMB = settle.map((s) => s.mb);
      const last = settle.filter((s) => s.t > options.settleSec - 5).map((s) => s.mb);
      m.idleMB = last.length ? median(last) : kbToMB(idle.rssKB);
      m.idleRangeMB = last.length ? [Math.min(...last), Math.max(...last)] : null;
      // Seconds after the deploy when the memory reducer's collection showed: the first sample 2 MB below the one at 1 s.
      const drop = settle.find((s) => s.mb <= m.afterDeployMB - 2);
      m.settledAfterSec = drop ? drop.t + 1 : null;
      m.hwmBeforeLoadMB = kbToMB(idle.hwmKB);
      if (wrk) {
        const sampler = startRssSampler(pid, options.sampleMs, ["load"]);
        sampler.phase = "load";
        const load = await runWrk(tracker, d.proxyPort, options);
        const series = sampler.stop().load.map((s) => s.rssKB);
        const hwm = readMemory(pid).hwmKB;
        m.sampledPeakMB = kbToMB(Math.max(0, ...series));
        m.hwmAfterLoadMB = kbToMB(hwm);
        // The high-water mark caught what fell between samples, if it rose during the load.
        m.peakUnderLoadMB = hwm > idle.hwmKB ? kbToMB(hwm) : m.sampledPeakMB;
        m.seriesMB = series.map(kbToMB);
        m.load = { rps: load.rps, requests: load.requests, errors: load.errors, p99Ms: load.p99Ms };
        await sleep(1000);
        m.afterLoadMB = kbToMB(readMemory(pid).rssKB);
        m.peakMet = m.peakUnderLoadMB <= options.peakGoalMB;
      }
      m.idleMet = m.idleMB <= options.idleGoalMB;
      result.launches[launch] = m;
      log(
        `${launch}: 1 s after the deploy ${fmt(m.afterDeployMB, 1)} MB, idle ${fmt(m.idleMB, 1)} MB, peak under load ${fmt(m.peakUnderLoadMB, 1)} MB (VmHWM ${fmt(m.hwmAfterLoadMB, 1)} MB), after ${fmt(m.afterLoadMB, 1)} MB — ${m.command}`,
      );
    } finally {
      await d.stop();
    }
  }
  if (options.print) print(result);
  writeResult(result, options.resultsDir, "rss", result.meta.date, options.print);
  return result;
}

function print(result) {
  const { peakGoalMB, idleGoalMB, connections } = result.meta;
  console.log(`\nDaemon RSS (MB): 1 s after the first deploy, idle (median of the last 5 s of ${result.meta.settleSec} s with no traffic), and peak under ${connections} connections through the proxy`);
  const rows = Object.entries(result.launches).map(([launch, m]) => [
    launch === "daemon" ? "rollbridge daemon" : "rollbridge ensure-daemon",
    fmt(m.afterDeployMB, 1),
    `${fmt(m.idleMB, 1)} (${m.idleMet ? "met" : "NOT met"})`,
    m.peakUnderLoadMB === undefined ? "n/a" : `${fmt(m.peakUnderLoadMB, 1)} (${m.peakMet ? "met" : "NOT met"})`,
    fmt(m.hwmAfterLoadMB, 1),
    fmt(m.afterLoadMB, 1),
    m.command.replace(/\S*dist\/cli\/main\.js/, "main.js").replace(/--config \S+/, "--config …"),
  ]);
  printTable(["started as", "1 s after deploy", `idle (≤ ${idleGoalMB})`, `peak under load (≤ ${peakGoalMB})`, "VmHWM", "1 s after load", "command line"], rows);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runDaemonRssBench({
    resultsDir: path.join(here, "results"),
    ...parseNumberFlags(process.argv.slice(2), { "--duration": "durationSec", "--connections": "connections", "--threads": "threads", "--settle": "settleSec", "--timeout": "timeoutSec" }),
  }).catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
