// Proxy throughput, tail latency and CPU per request, measured side by side in one run: direct
// to the app, through a bare undici proxy, through Rollbridge's proxy on its own (its own
// process, bench/run-proxy.mjs), through a real `rollbridge daemon` (the proxy as users run it,
// with health checks, metrics and supervision beside it), and through nginx when installed.
// The app (bench/hello-app.cjs) is the daemon's own process, so every target reaches the same
// app. Rounds alternate the order of the targets so drift (thermal, noisy neighbours) is shared.
//
//   npm run build && node bench/proxy.mjs [--rounds 3] [--duration 5] [--connections 50] [--threads 2] [--pin]
//                                         [--no-daemon] [--no-nginx] [--timeout 300]
//
// Load generator: wrk (apt-get install -y wrk); falls back to `npx --yes autocannon` if wrk is
// missing and autocannon can be fetched. Writes bench/results/proxy-<timestamp>.json.

import { spawn, spawnSync } from "node:child_process";
import http from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { startBenchDaemon } from "./bench-daemon.mjs";
import { bounded, cpuPlacer, fmt, median, parseNumberFlags, printTable, writeResult } from "./lib.mjs";
import { findNginx, NGINX_MISSING, nginxVersion, startNginx } from "./nginx-server.mjs";
import { ChildTracker, cpuSeconds, kbToMB, readMemory } from "./proc.mjs";
import { parseWrk } from "./wrk.mjs";

export { cpuSeconds, fmt };

const here = dirname(fileURLToPath(import.meta.url));
export const HELLO_APP = join(here, "hello-app.cjs");

/** Default options; every field may be overridden by runProxyBench(opts) or CLI flags. */
export const defaultProxyBenchOptions = {
  rounds: 3,
  durationSec: 5,
  warmupSec: 1,
  connections: 50,
  threads: 2,
  /**
   * Pin with taskset (Linux, >= 2 cores): the proxies on CPU 1, the app and the load generator
   * on CPU 0, so the proxy under test never competes for its core.
   */
  pin: false,
  /** Run the app under a real daemon and add the daemon's proxy as a target. */
  daemon: true,
  /** Add nginx as a target when it is installed. */
  nginx: true,
  /** Hard bound on the whole run; everything started is stopped when it passes. */
  timeoutSec: 300,
  /** Where to write the JSON result; null to skip writing. */
  resultsDir: join(here, "results"),
  /** Print the table to stdout. */
  print: true,
};

/**
 * Runs the benchmark and resolves with {meta, rounds, summary}. Starts the daemon (which starts
 * the app) or the app alone, the bare undici proxy, our proxy and nginx, and stops each by pid
 * before resolving or rejecting.
 */
export async function runProxyBench(opts = {}) {
  const options = { ...defaultProxyBenchOptions, ...opts };
  const tracker = new ChildTracker();
  return bounded("proxy bench", options.timeoutSec, tracker, () => body(options, tracker));
}

async function body(options, tracker) {
  const load = pickLoadGenerator();
  const os = await import("node:os");
  const onCpu = cpuPlacer(options.pin);
  const pin = onCpu.pinned;
  const nginx = options.nginx ? findNginx() : null;
  if (options.nginx && !nginx && options.print) console.error(`${NGINX_MISSING}: the proxy benchmark runs without its nginx target`);
  const loadAvgAtStart = os.loadavg().map((x) => Math.round(x * 100) / 100);
  let daemon = null;
  let nginxServer = null;
  try {
    let app;
    if (options.daemon) {
      // A plain `rollbridge daemon` (no V8 flags), as a user starts it by hand or from a unit
      // without NODE_OPTIONS; its proxied process is the app every other target proxies to.
      daemon = await startBenchDaemon({ tracker, entry: HELLO_APP, health: { path: "/ping" }, place: (command, args) => onCpu(1, command, args) });
      await daemon.deploy("v1");
      app = await daemon.app();
      // The app inherited the daemon's CPU: move it (every thread) to the app's.
      if (pin) spawnSync("taskset", ["-a", "-p", "-c", "0", String(app.pid)], { stdio: "ignore" });
    } else {
      app = await startChild(tracker, onCpu(0, process.execPath, [HELLO_APP]));
    }
    const bare = await startChild(tracker, onCpu(1, process.execPath, [join(here, "bare-undici-proxy.mjs"), String(app.port)]));
    const ours = await startChild(tracker, onCpu(1, process.execPath, [join(here, "run-proxy.mjs"), String(app.port)]));
    if (nginx) nginxServer = await startNginx({ nginx, appPort: app.port, spawnChild: (c, a, o) => tracker.spawn(c, a, o), place: (command, args) => onCpu(1, command, args) });
    const runLoad = (port, o) => load.run(port, o, (command, args) => onCpu(0, command, args));
    // pids: the processes whose CPU time per request is reported (the app itself when direct)
    const targets = [
      { name: "direct", port: app.port, pids: [app.pid] },
      { name: "bare undici", port: bare.port, pids: [bare.pid] },
      { name: "rollbridge", port: ours.port, pids: [ours.pid] },
      ...(daemon ? [{ name: "rollbridge daemon", port: daemon.proxyPort, pids: [daemon.daemonPid] }] : []),
      ...(nginxServer ? [{ name: "nginx", port: nginxServer.port, pids: nginxServer.pids }] : []),
    ];
    for (const target of targets) await checkTarget(target);
    for (const target of targets) await runLoad(target.port, { ...options, durationSec: options.warmupSec });

    const rounds = await loadRounds(targets, options, runLoad, 17);

    const summary = summarize(
      targets.map((t) => t.name),
      rounds,
    );
    const result = {
      meta: {
        date: new Date().toISOString(),
        node: process.version,
        cpus: os.cpus().length,
        pinned: pin,
        loadGenerator: load.name,
        rounds: options.rounds,
        durationSec: options.durationSec,
        connections: options.connections,
        threads: options.threads,
        body: APP_BODY.length,
        daemon: daemon ? { started: "rollbridge daemon (no V8 flags)", pid: daemon.daemonPid, highWaterMarkMB: kbToMB(readMemory(daemon.daemonPid).hwmKB) } : null,
        nginx: nginxServer ? nginxVersion(nginx) : options.nginx ? NGINX_MISSING : "not asked for (--no-nginx)",
        loadAvgAtStart,
      },
      rounds,
      summary,
    };
    if (options.print) printSummary(summary);
    writeResult(result, options.resultsDir, "proxy", result.meta.date, options.print);
    return result;
  } finally {
    await nginxServer?.stop();
    await daemon?.stop();
  }
}

// --- the upstream app: bench/hello-app.cjs ---

export const APP_BODY = "Hello, world!\n";

// --- children ---

// taskset execs the command, so child.pid is the process itself. `children`: an array the child
// is pushed to, or a ChildTracker.
export function startChild(children, [command, args]) {
  return new Promise((resolve, reject) => {
    const options = { stdio: ["ignore", "pipe", "inherit"] };
    const child = typeof children.spawn === "function" ? children.spawn(command, args, options) : spawn(command, args, options);
    if (Array.isArray(children)) children.push(child);
    let out = "";
    const name = args.find((a) => /\.[cm]?js$/.test(a)) ?? command;
    const timer = setTimeout(() => reject(new Error(`${name} did not report READY in 10 s`)), 10_000);
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const match = /READY (\d+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        child.stdout.resume();
        resolve({ pid: child.pid, port: Number(match[1]) });
      }
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited early (${code ?? signal})`));
    });
  });
}

export function checkTarget(target) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port: target.port, path: "/", agent: false }, (res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => (res.statusCode === 200 && body === APP_BODY ? resolve() : reject(new Error(`${target.name}: ${res.statusCode} ${body}`))));
      })
      .on("error", reject);
  });
}

// --- load generators ---

export function pickLoadGenerator() {
  if (spawnSync("sh", ["-c", "command -v wrk"], { stdio: "ignore" }).status === 0) return wrk;
  console.error("wrk not found on PATH: install it with `apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk`.");
  const probe = spawnSync("npx", ["--yes", "autocannon", "--version"], { stdio: "ignore", timeout: 120_000 });
  if (probe.status === 0) {
    console.error("falling back to autocannon (numbers are not comparable with wrk runs)");
    return autocannon;
  }
  throw new Error("no load generator: install wrk (apt-get install -y wrk)");
}

const wrk = {
  name: "wrk",
  run(port, { durationSec, connections, threads }, place) {
    const [command, args] = place("wrk", [`-t${threads}`, `-c${connections}`, `-d${durationSec}s`, "--latency", `http://127.0.0.1:${port}/`]);
    const out = spawnSync(command, args, { encoding: "utf8", timeout: (durationSec + 30) * 1000 });
    if (out.status !== 0) throw new Error(`wrk failed: ${out.stderr || out.stdout}`);
    return parseWrk(out.stdout);
  },
};

const autocannon = {
  name: "autocannon",
  run(port, { durationSec, connections }, place) {
    const [command, args] = place("npx", ["--yes", "autocannon", "-j", "-c", String(connections), "-d", String(durationSec), `http://127.0.0.1:${port}/`]);
    const out = spawnSync(command, args, {
      encoding: "utf8",
      timeout: (durationSec + 60) * 1000,
    });
    if (out.status !== 0) throw new Error(`autocannon failed: ${out.stderr}`);
    const json = JSON.parse(out.stdout);
    return { rps: json.requests.average, p50Ms: json.latency.p50, p99Ms: json.latency.p99, errors: json.errors + json.non2xx };
  },
};

// --- rounds ---

/**
 * `options.rounds` rounds of `runLoad` on every target ({name, port, pids}), the order rotated
 * each round so drift (thermal, noisy neighbours) is shared; each result gets the CPU time its
 * target's pids spent per request. Prints a line per run when `options.print`.
 */
export async function loadRounds(targets, options, runLoad, nameWidth) {
  const rounds = [];
  for (let round = 0; round < options.rounds; round++) {
    const order = targets.map((_, i) => targets[(i + round) % targets.length]);
    for (const target of order) {
      const cpuBefore = sum(target.pids.map(cpuSeconds));
      const result = await runLoad(target.port, options);
      const cpu = sum(target.pids.map(cpuSeconds)) - cpuBefore;
      // CPU per request is robust to other load on the machine, unlike req/s and p99
      result.cpuUsPerReq = (cpu * 1e6) / (result.rps * options.durationSec);
      rounds.push({ round: round + 1, target: target.name, ...result });
      if (options.print) {
        console.error(
          `round ${round + 1} ${target.name.padEnd(nameWidth)} ${fmt(result.rps, 0).padStart(8)} req/s  p99 ${fmt(result.p99Ms, 2)} ms  cpu ${fmt(result.cpuUsPerReq, 1)} us/req${result.errors ? `  errors ${result.errors}` : ""}`,
        );
      }
    }
  }
  return rounds;
}

// --- reporting ---

/**
 * Per target name, the median over its rounds of req/s, p50, p99 and CPU per request, and its
 * errors summed. Median: one disturbed round (a GC storm in wrk, a noisy neighbour) must not
 * decide the comparison. Every round is kept in the JSON.
 */
export function medianByTarget(names, rounds) {
  return Object.fromEntries(
    names.map((name) => {
      const mine = rounds.filter((r) => r.target === name);
      return [name, { rps: median(mine.map((r) => r.rps)), p99Ms: median(mine.map((r) => r.p99Ms)), p50Ms: median(mine.map((r) => r.p50Ms)), cpuUsPerReq: median(mine.map((r) => r.cpuUsPerReq)), errors: sum(mine.map((r) => r.errors)) }];
    }),
  );
}

function summarize(names, rounds) {
  const byName = medianByTarget(names, rounds);
  const { direct, nginx } = byName;
  const bare = byName["bare undici"];
  return names.map((name) => ({
    target: name,
    ...byName[name],
    rpsVsDirect: byName[name].rps / direct.rps,
    rpsVsBare: byName[name].rps / bare.rps,
    p99VsBare: byName[name].p99Ms / bare.p99Ms,
    cpuVsBare: byName[name].cpuUsPerReq / bare.cpuUsPerReq,
    ...(nginx ? { rpsVsNginx: byName[name].rps / nginx.rps, cpuVsNginx: byName[name].cpuUsPerReq / nginx.cpuUsPerReq } : {}),
  }));
}

function printSummary(summary) {
  const withNginx = summary.some((s) => s.target === "nginx");
  const header = ["target", "req/s", "p50 ms", "p99 ms", "vs direct", "vs bare undici", "p99 vs bare", "cpu us/req", "cpu vs bare", ...(withNginx ? ["cpu vs nginx"] : []), "errors"];
  const rows = summary.map((s) => [
    s.target,
    fmt(s.rps, 0),
    fmt(s.p50Ms, 2),
    fmt(s.p99Ms, 2),
    `${fmt(s.rpsVsDirect, 2)}x`,
    `${fmt(s.rpsVsBare, 2)}x`,
    `${fmt(s.p99VsBare, 2)}x`,
    fmt(s.cpuUsPerReq, 1),
    `${fmt(s.cpuVsBare, 2)}x`,
    ...(withNginx ? [`${fmt(s.cpuVsNginx, 2)}x`] : []),
    String(s.errors),
  ]);
  printTable(header, rows);
}

function sum(xs) {
  return xs.reduce((a, b) => a + b, 0);
}

// --- CLI ---

function parseArgs(argv) {
  const opts = parseNumberFlags(argv, { "--rounds": "rounds", "--duration": "durationSec", "--warmup": "warmupSec", "--connections": "connections", "--threads": "threads", "--timeout": "timeoutSec" });
  if (argv.includes("--no-daemon")) opts.daemon = false;
  if (argv.includes("--no-nginx")) opts.nginx = false;
  return opts;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv[2] === "--serve-app") await import("./hello-app.cjs");
  else
    runProxyBench(parseArgs(process.argv.slice(2))).catch((err) => {
      console.error(err);
      process.exitCode = 1;
    });
}
