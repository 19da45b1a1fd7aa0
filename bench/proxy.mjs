// Proxy throughput and tail latency, measured side by side in one run: direct to the app,
// through a bare undici proxy, and through Rollbridge's proxy (own process, as in the daemon).
// Rounds alternate the order of the three targets so drift (thermal, noisy neighbours) is shared.
//
//   npm run build && node bench/proxy.mjs [--rounds 3] [--duration 5] [--connections 50] [--threads 2] [--pin]
//
// Load generator: wrk (apt-get install -y wrk); falls back to `npx --yes autocannon` if wrk is
// missing and autocannon can be fetched. Writes bench/results/proxy-<timestamp>.json.

import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import http from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { cpuPlacer, parseNumberFlags, printTable, writeResult } from "./lib.mjs";

const here = dirname(fileURLToPath(import.meta.url));

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
  /** Where to write the JSON result; null to skip writing. */
  resultsDir: join(here, "results"),
  /** Print the table to stdout. */
  print: true,
};

/**
 * Runs the benchmark and resolves with {meta, rounds, summary}. Starts three child processes
 * (app, bare undici proxy, our proxy) and kills each by pid before resolving or rejecting.
 */
export async function runProxyBench(opts = {}) {
  const options = { ...defaultProxyBenchOptions, ...opts };
  const load = pickLoadGenerator();
  const os = await import("node:os");
  const onCpu = cpuPlacer(options.pin);
  const pin = onCpu.pinned;
  const children = [];
  const killAll = () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
  };
  const onSigint = () => {
    killAll();
    process.exit(130);
  };
  process.once("SIGINT", onSigint);
  try {
    const app = await startChild(children, onCpu(0, process.execPath, [join(here, "proxy.mjs"), "--serve-app"]));
    const bare = await startChild(children, onCpu(1, process.execPath, [join(here, "bare-undici-proxy.mjs"), String(app.port)]));
    const ours = await startChild(children, onCpu(1, process.execPath, [join(here, "run-proxy.mjs"), String(app.port)]));
    const runLoad = (port, o) => load.run(port, o, (command, args) => onCpu(0, command, args));
    // pid: the process whose CPU time per request is reported (the app itself when direct)
    const targets = [
      { name: "direct", port: app.port, pid: app.pid },
      { name: "bare undici", port: bare.port, pid: bare.pid },
      { name: "rollbridge", port: ours.port, pid: ours.pid },
    ];
    for (const target of targets) await checkTarget(target);
    for (const target of targets) await runLoad(target.port, { ...options, durationSec: options.warmupSec });

    const rounds = [];
    for (let round = 0; round < options.rounds; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length]);
      for (const target of order) {
        const cpuBefore = cpuSeconds(target.pid);
        const result = await runLoad(target.port, options);
        const cpu = cpuSeconds(target.pid) - cpuBefore;
        // CPU per request is robust to other load on the machine, unlike req/s and p99
        result.cpuUsPerReq = (cpu * 1e6) / (result.rps * options.durationSec);
        rounds.push({ round: round + 1, target: target.name, ...result });
        if (options.print) {
          console.error(`round ${round + 1} ${target.name.padEnd(12)} ${fmt(result.rps, 0).padStart(8)} req/s  p99 ${fmt(result.p99Ms, 2)} ms  cpu ${fmt(result.cpuUsPerReq, 1)} us/req${result.errors ? `  errors ${result.errors}` : ""}`);
        }
      }
    }

    const summary = summarize(targets.map((t) => t.name), rounds);
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
      },
      rounds,
      summary,
    };
    if (options.print) printSummary(summary);
    writeResult(result, options.resultsDir, "proxy", result.meta.date, options.print);
    return result;
  } finally {
    process.off("SIGINT", onSigint);
    killAll();
  }
}

// --- the upstream app (a child process: node bench/proxy.mjs --serve-app) ---

export const APP_BODY = "Hello, world!\n";

function serveApp() {
  const body = Buffer.from(APP_BODY);
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
    res.end(body);
  });
  server.listen(0, "127.0.0.1", () => console.log(`READY ${server.address().port}`));
}

// --- children ---

// taskset execs the command, so child.pid is the process itself.
export function startChild(children, [command, args]) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "inherit"] });
    children.push(child);
    let out = "";
    const name = args.find((a) => a.endsWith(".mjs")) ?? command;
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
        res.on("end", () =>
          res.statusCode === 200 && body === APP_BODY ? resolve() : reject(new Error(`${target.name}: ${res.statusCode} ${body}`)),
        );
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
    const text = out.stdout;
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1]);
    const p99 = /^\s+99%\s+([\d.]+)(us|ms|s)\s*$/m.exec(text);
    const p50 = /^\s+50%\s+([\d.]+)(us|ms|s)\s*$/m.exec(text);
    const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? 0);
    const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
    const errors = non2xx + (socketErrors ? socketErrors.slice(1).reduce((n, v) => n + Number(v), 0) : 0);
    return { rps, p50Ms: toMs(p50), p99Ms: toMs(p99), errors };
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

/** utime + stime of a process in seconds (Linux /proc); NaN elsewhere. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return Number.NaN;
  }
}

function toMs(match) {
  if (!match) return Number.NaN;
  const value = Number(match[1]);
  return match[2] === "us" ? value / 1000 : match[2] === "s" ? value * 1000 : value;
}

// --- reporting ---

// Median over rounds: one disturbed round (a GC storm in wrk, a noisy neighbour) must not
// decide the comparison. Every round is kept in the JSON.
function summarize(names, rounds) {
  const median = (xs) => {
    const sorted = [...xs].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  };
  const byName = Object.fromEntries(
    names.map((name) => {
      const mine = rounds.filter((r) => r.target === name);
      return [name, { rps: median(mine.map((r) => r.rps)), p99Ms: median(mine.map((r) => r.p99Ms)), p50Ms: median(mine.map((r) => r.p50Ms)), cpuUsPerReq: median(mine.map((r) => r.cpuUsPerReq)), errors: mine.reduce((n, r) => n + r.errors, 0) }];
    }),
  );
  const direct = byName.direct;
  const bare = byName["bare undici"];
  return names.map((name) => ({
    target: name,
    ...byName[name],
    rpsVsDirect: byName[name].rps / direct.rps,
    rpsVsBare: byName[name].rps / bare.rps,
    p99VsBare: byName[name].p99Ms / bare.p99Ms,
    cpuVsBare: byName[name].cpuUsPerReq / bare.cpuUsPerReq,
  }));
}

function printSummary(summary) {
  const header = ["target", "req/s", "p50 ms", "p99 ms", "vs direct", "vs bare undici", "p99 vs bare", "cpu us/req", "cpu vs bare", "errors"];
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
    String(s.errors),
  ]);
  printTable(header, rows);
}

export function fmt(n, digits) {
  return Number.isFinite(n) ? n.toFixed(digits) : "n/a";
}

// --- CLI ---

function parseArgs(argv) {
  return parseNumberFlags(argv, { "--rounds": "rounds", "--duration": "durationSec", "--warmup": "warmupSec", "--connections": "connections", "--threads": "threads" });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv[2] === "--serve-app") serveApp();
  else
    runProxyBench(parseArgs(process.argv.slice(2))).catch((err) => {
      console.error(err);
      process.exitCode = 1;
    });
}
