// nginx as the reference proxy: throughput and tail latency direct to a tiny app, through nginx
// (keep-alive upstream), and through Rollbridge's proxy, in the same run and in alternating
// rounds (the style of bench/proxy.mjs, whose app and helpers it reuses), so the nginx/direct
// ratio is reported beside ours.
//
//   npm run build && node bench/nginx.mjs [--rounds 3] [--duration 5] [--connections 50] [--threads 2] [--pin] [--timeout 300]
//
// Needs nginx (apt-get install -y nginx) and wrk; without nginx it prints why and skips. Runs its
// own nginx master (daemon off, one worker) from a temp config on 127.0.0.1:<free port>, never
// the system service, and stops it by pid. Writes bench/results/nginx-<timestamp>.json when run
// directly.

import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { APP_BODY, checkTarget, fmt, loadRounds, medianByTarget, pickLoadGenerator, startChild } from "./proxy.mjs";
import { bounded, cpuPlacer, parseNumberFlags, printTable, writeResult } from "./lib.mjs";
import { findNginx, NGINX_MISSING, nginxVersion, startNginx } from "./nginx-server.mjs";
import { ChildTracker } from "./proc.mjs";

const here = dirname(fileURLToPath(import.meta.url));

/** Default options; every field may be overridden by runNginxBench(opts) or CLI flags. */
export const defaultNginxBenchOptions = {
  rounds: 3,
  durationSec: 5,
  warmupSec: 1,
  connections: 50,
  threads: 2,
  /** Pin (taskset, >= 2 cores): nginx and our proxy on CPU 1, the app and wrk on CPU 0. */
  pin: false,
  /** Hard bound on the whole run; everything started is stopped when it passes. */
  timeoutSec: 300,
  /** Where to write nginx-<timestamp>.json; null to skip. */
  resultsDir: join(here, "results"),
  print: true,
};

export { findNginx };

/**
 * Runs the benchmark; resolves with {meta, rounds, summary}, or with {skipped: reason} when nginx
 * is missing. Starts the app, nginx and our proxy as child processes and stops each by pid
 * before resolving or rejecting.
 */
export async function runNginxBench(opts = {}) {
  const options = { ...defaultNginxBenchOptions, ...opts };
  const nginx = findNginx();
  if (nginx === null) {
    const skipped = `${NGINX_MISSING}: skipping the nginx benchmark`;
    if (options.print) console.error(skipped);
    return { skipped };
  }
  const tracker = new ChildTracker();
  return bounded("nginx bench", options.timeoutSec, tracker, () => body(options, nginx, tracker));
}

async function body(options, nginx, tracker) {
  const load = pickLoadGenerator();
  const onCpu = cpuPlacer(options.pin);
  const pin = onCpu.pinned;
  let proxied = null;
  try {
    const app = await startChild(tracker, onCpu(0, process.execPath, [join(here, "proxy.mjs"), "--serve-app"]));
    const ours = await startChild(tracker, onCpu(1, process.execPath, [join(here, "run-proxy.mjs"), String(app.port)]));
    proxied = await startNginx({ nginx, appPort: app.port, spawnChild: (command, args, o) => tracker.spawn(command, args, o), place: (command, args) => onCpu(1, command, args) });
    const targets = [
      { name: "direct", port: app.port, pids: [app.pid] },
      { name: "nginx", port: proxied.port, pids: proxied.pids },
      { name: "rollbridge", port: ours.port, pids: [ours.pid] },
    ];
    for (const target of targets) await checkTarget(target);
    const runLoad = (port, o) => load.run(port, o, (command, args) => onCpu(0, command, args));
    for (const target of targets) await runLoad(target.port, { ...options, durationSec: options.warmupSec });

    const rounds = await loadRounds(targets, options, runLoad, 10);
    const summary = summarize(
      targets.map((t) => t.name),
      rounds,
    );
    const version = nginxVersion(nginx);
    const result = {
      meta: {
        date: new Date().toISOString(),
        node: process.version,
        nginx: version,
        cpus: os.cpus().length,
        pinned: pin,
        loadGenerator: load.name,
        rounds: options.rounds,
        durationSec: options.durationSec,
        connections: options.connections,
        threads: options.threads,
        body: APP_BODY.length,
      },
      rounds,
      summary,
    };
    if (options.print) printSummary(summary);
    writeResult(result, options.resultsDir, "nginx", result.meta.date, options.print);
    return result;
  } finally {
    await proxied?.stop();
  }
}

// --- reporting ---

// Median over rounds per target, and each proxy's ratios to direct and to nginx.
function summarize(names, rounds) {
  const byName = medianByTarget(names, rounds);
  const { direct, nginx } = byName;
  return names.map((name) => ({
    target: name,
    ...byName[name],
    rpsVsDirect: byName[name].rps / direct.rps,
    p99VsDirect: byName[name].p99Ms / direct.p99Ms,
    rpsVsNginx: byName[name].rps / nginx.rps,
    p99VsNginx: byName[name].p99Ms / nginx.p99Ms,
  }));
}

function printSummary(summary) {
  const header = ["target", "req/s", "p50 ms", "p99 ms", "req/s vs direct", "p99 vs direct", "req/s vs nginx", "p99 vs nginx", "cpu us/req", "errors"];
  const rows = summary.map((s) => [
    s.target,
    fmt(s.rps, 0),
    fmt(s.p50Ms, 2),
    fmt(s.p99Ms, 2),
    `${fmt(s.rpsVsDirect, 2)}x`,
    `${fmt(s.p99VsDirect, 2)}x`,
    `${fmt(s.rpsVsNginx, 2)}x`,
    `${fmt(s.p99VsNginx, 2)}x`,
    fmt(s.cpuUsPerReq, 1),
    String(s.errors),
  ]);
  printTable(header, rows);
}

// --- CLI ---

function parseArgs(argv) {
  return parseNumberFlags(argv, { "--rounds": "rounds", "--duration": "durationSec", "--warmup": "warmupSec", "--connections": "connections", "--threads": "threads", "--timeout": "timeoutSec" });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runNginxBench(parseArgs(process.argv.slice(2))).catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
