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

import { execFile, spawn, spawnSync } from "node:child_process";
import { existsSync, promises as fs, readFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { freePort, writeResult } from "./lib.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const CLI = path.join(root, "dist/cli/main.js");
const APP = path.join(root, "examples/app/server.mjs");

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
  if (!existsSync(CLI)) throw new Error(`${path.relative(process.cwd(), CLI)} is missing: run \`npm run build\` first`);
  const log = (text) => options.print && process.stderr.write(`[daemon bench] ${text}\n`);
  const tracker = new ChildTracker();
  const onSigint = () => {
    tracker.killAll("SIGTERM");
    process.exit(130);
  };
  process.once("SIGINT", onSigint);
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`daemon bench exceeded its ${options.timeoutSec} s bound; stopped everything it started`)), options.timeoutSec * 1000);
  });
  try {
    return await Promise.race([body(options, tracker, log), deadline]);
  } finally {
    clearTimeout(timer);
    process.off("SIGINT", onSigint);
    await tracker.stopAll();
  }
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
  const d = await startBenchDaemon({ tracker, intervalMs: options.intervalMs, bootDelayMs: options.bootDelayMs });
  let throughput;
  let rss;
  const switchResults = [];
  try {
    await d.deploy("v1");
    const status = await d.status();
    const daemonPid = status.daemonPid;
    const app = status.processes.find((p) => p.policy === "proxied" && p.state === "running") ?? status.processes[0];
    if (!app?.port) throw new Error(`no running proxied process in status: ${JSON.stringify(status.processes)}`);
    log(`daemon pid ${daemonPid}, proxy 127.0.0.1:${d.proxyPort}, app pid ${app.pid} on 127.0.0.1:${app.port}`);

    await sleep(1000);
    const idle = readMemory(daemonPid);
    rss = { daemonPid, targetMB: options.rssTargetMB, idleAfterFirstDeployMB: kbToMB(idle.rssKB) };

    if (wrkPath) {
      const sampler = startRssSampler(daemonPid, options.rssSampleMs);
      throughput = await measureThroughput({ options, tracker, log, targets: [{ name: "direct", port: app.port }, { name: "proxy", port: d.proxyPort }], sampler });
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
    const d2 = await startBenchDaemon({ tracker, intervalMs: null, bootDelayMs: options.bootDelayMs });
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

function findWrk() {
  const out = spawnSync("sh", ["-c", "command -v wrk"], { encoding: "utf8" });
  return out.status === 0 ? out.stdout.trim() : null;
}

function wrkVersion() {
  const out = spawnSync("wrk", ["-v"], { encoding: "utf8" });
  const line = `${out.stdout}${out.stderr}`.split("\n").find((l) => l.startsWith("wrk"));
  return line ? line.split(" [")[0].trim() : "wrk";
}

function runWrk(tracker, port, { durationSec, connections, threads }) {
  return new Promise((resolve, reject) => {
    const child = tracker.spawn("wrk", [`-t${threads}`, `-c${connections}`, `-d${durationSec}s`, "--latency", `http://127.0.0.1:${port}/`], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (c) => (out += c));
    child.stderr.setEncoding("utf8").on("data", (c) => (err += c));
    const timer = setTimeout(() => child.kill("SIGKILL"), (durationSec + 30) * 1000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`wrk failed (${code ?? signal}): ${err || out}`));
      resolve(parseWrk(out));
    });
  });
}

export function parseWrk(text) {
  const unit = (m) => {
    if (!m) return Number.NaN;
    const v = Number(m[1]);
    return { us: v / 1000, ms: v, s: v * 1000, m: v * 60_000 }[m[2]] ?? Number.NaN;
  };
  const pct = (p) => unit(new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, "m").exec(text));
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(text)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const socketErrors = sock ? sock.slice(1).reduce((n, v) => n + Number(v), 0) : 0;
  return { rps, requests, p50Ms: pct(50), p90Ms: pct(90), p99Ms: pct(99), errors: non2xx + socketErrors, non2xx, socketErrors };
}

// --- memory ---

function readMemory(pid) {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? Number.NaN);
  return { rssKB: kb("VmRSS"), hwmKB: kb("VmHWM") };
}

function startRssSampler(pid, everyMs) {
  const samples = { direct: [], proxy: [], other: [] };
  const sampler = {
    phase: null,
    stop() {
      clearInterval(timer);
      return samples;
    },
  };
  const timer = setInterval(() => {
    try {
      const m = readMemory(pid);
      (samples[sampler.phase] ?? samples.other).push({ t: Date.now(), rssKB: m.rssKB });
    } catch {
      // daemon gone: the run fails elsewhere
    }
  }, everyMs);
  return sampler;
}

const kbToMB = (kb) => Math.round((kb / 1024) * 10) / 10;

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

// A preload for the app (node --import): appends "<releaseId> <pid> <epoch ms>" to
// BENCH_LISTEN_LOG when an http server starts listening, so the bench knows when the app was
// really ready, independently of the daemon's health probes.
const LISTEN_STAMP = `import http from "node:http";
import { appendFileSync } from "node:fs";
const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (...args) {
  this.once("listening", () => {
    if (process.env.BENCH_LISTEN_LOG) appendFileSync(process.env.BENCH_LISTEN_LOG, \`\${process.env.ROLLBRIDGE_RELEASE_ID} \${process.pid} \${Date.now()}\\n\`);
  });
  return listen.apply(this, args);
};
`;

async function startBenchDaemon({ tracker, intervalMs, bootDelayMs }) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "rollbridge-bench-"));
  const proxyPort = await freePort();
  const appPortStart = 30000 + Math.floor(Math.random() * 2000) * 10;
  const socket = path.join(dir, "rollbridge.sock");
  const config = path.join(dir, "rollbridge.yaml");
  const desiredFile = path.join(dir, "desired.yaml");
  const listenLog = path.join(dir, "listen.log");
  const preload = path.join(dir, "listen-stamp.mjs");
  await fs.writeFile(preload, LISTEN_STAMP);
  await fs.writeFile(listenLog, "");
  for (const release of ["v1", "v2"]) {
    await fs.mkdir(path.join(dir, "releases", release), { recursive: true });
    await fs.copyFile(APP, path.join(dir, "releases", release, "server.mjs"));
  }
  const health = intervalMs == null ? "{path: /ping}" : `{path: /ping, intervalMs: ${intervalMs}}`;
  await fs.writeFile(
    config,
    `application: bench
control: {path: ${socket}}
proxy: {host: 127.0.0.1, port: ${proxyPort}, drainTimeoutMs: 3000}
processes:
  - id: web
    policy: proxied
    command: node --import ${preload} server.mjs
    env: {BOOT_DELAY_MS: "${bootDelayMs}", BENCH_LISTEN_LOG: ${listenLog}}
    port: {from: ${appPortStart}, to: ${appPortStart + 9}}
    health: ${health}
    gracefulStopMs: 5000
`,
  );

  // The daemon as ensure-daemon and the systemd example start it (docs/systemd.md#memory);
  // BENCH_DAEMON_NODE_FLAGS="" measures a plain `node … daemon` instead.
  const nodeFlags = (process.env.BENCH_DAEMON_NODE_FLAGS ?? "--max-semi-space-size=2").split(" ").filter(Boolean);
  const child = tracker.spawn(process.execPath, [...nodeFlags, CLI, "daemon", "--config", config], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  const events = [];
  let buffer = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk) => {
    buffer += chunk;
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      try {
        events.push(JSON.parse(line));
      } catch {
        // not an event line
      }
    }
  });
  child.stderr.setEncoding("utf8").on("data", (c) => (stderr += c));

  const cli = (args, timeoutMs = 60_000) => tracker.execCli([...args, "--config", config], { cwd: dir, timeout: timeoutMs });
  const appPids = new Set();
  let listenLinesSeen = 0;

  const d = {
    dir,
    proxyPort,
    events,
    async status() {
      const r = await cli(["status", "--json"], 10_000);
      if (r.code !== 0) throw new Error(`rollbridge status failed: ${r.stderr}`);
      const s = JSON.parse(r.stdout);
      for (const p of s.processes) if (typeof p.pid === "number") appPids.add(p.pid);
      return s;
    },
    /** `rollbridge apply --release-path <release> --wait`, then the deploy's numbers from the events. */
    async deploy(release) {
      const since = events.length ? events.at(-1).seq : 0;
      const startedAt = Date.now();
      const r = await cli(["apply", "--release-path", path.join(dir, "releases", release), "--wait"]);
      const cliWallMs = Date.now() - startedAt;
      if (r.code !== 0) throw new Error(`apply ${release} failed (exit ${r.code}):\n${r.stderr}`);
      const switched = await waitForEvent(events, (e) => e.seq > since && e.type === "traffic-switched", 5000);
      const mine = events.filter((e) => e.seq > since && e.seq <= switched.seq);
      const healthy = mine.filter((e) => e.type === "process-healthy").at(-1);
      const rolloutStarted = mine.find((e) => e.type === "rollout-started");
      const started = mine.filter((e) => e.type === "process-started").at(-1);
      if (started?.data?.pid) appPids.add(started.data.pid);
      const desiredMtime = (await fs.stat(desiredFile)).mtimeMs;
      const switchedAt = Date.parse(switched.at);
      const listenLines = (await fs.readFile(listenLog, "utf8")).split("\n").filter(Boolean);
      const fresh = listenLines.slice(listenLinesSeen).map((l) => l.split(" ")).filter(([id]) => id === release);
      listenLinesSeen = listenLines.length;
      const listenAt = fresh.length ? Number(fresh.at(-1)[2]) : null;
      const bootMs = healthy?.data?.ms ?? null;
      const writeToSwitchedMs = Math.round(switchedAt - desiredMtime);
      return {
        release,
        switchLatencyMs: switched.data?.switchLatencyMs ?? null,
        rolloutMs: switched.data?.rolloutMs ?? null,
        bootMs,
        listenToSwitchedMs: listenAt == null ? null : switchedAt - listenAt,
        writeToSwitchedMs,
        writeToRolloutStartMs: rolloutStarted ? Math.round(Date.parse(rolloutStarted.at) - desiredMtime) : null,
        writeToSwitchedMinusBootMs: bootMs == null ? null : writeToSwitchedMs - bootMs,
        cliWallMs,
      };
    },
    async stop() {
      let pids = [];
      try {
        pids = (await d.status()).processes.map((p) => p.pid).filter((p) => typeof p === "number");
      } catch {
        // daemon already gone
      }
      for (const p of pids) appPids.add(p);
      await tracker.stop(child, 15_000);
      // The daemon stops its process groups on SIGTERM; anything left (it was killed) goes now.
      for (const pid of appPids) {
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          // gone, as it should be
        }
      }
      await fs.rm(dir, { recursive: true, force: true });
    },
  };

  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}: ${stderr}`);
    if (await canConnect(socket)) break;
    if (Date.now() > deadline) {
      await d.stop();
      throw new Error(`daemon did not open its control socket within 15 s: ${stderr}`);
    }
    await sleep(50);
  }
  return d;
}

async function waitForEvent(events, match, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = events.find(match);
    if (found) return found;
    if (Date.now() > deadline) throw new Error("timed out waiting for a traffic-switched event on the daemon's stdout");
    await sleep(20);
  }
}

async function loadDefaultIntervalMs() {
  try {
    const schema = await import(pathToFileURL(path.join(root, "dist/config/constants.js")).href);
    return schema.DEFAULTS?.health?.intervalMs ?? null;
  } catch {
    return null;
  }
}

// --- children, stopped by pid ---

class ChildTracker {
  children = new Set();

  spawn(command, args, options) {
    const child = spawn(command, args, options);
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
    child.once("error", () => this.children.delete(child));
    return child;
  }

  execCli(args, { cwd, timeout }) {
    return new Promise((resolve) => {
      const child = execFile(process.execPath, [CLI, ...args], { cwd, timeout, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
        this.children.delete(child);
        resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr });
      });
      this.children.add(child);
    });
  }

  async stop(child, graceMs) {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    try {
      process.kill(child.pid, "SIGTERM");
    } catch {
      return;
    }
    const timer = new Promise((resolve) => setTimeout(() => resolve("timeout"), graceMs));
    if ((await Promise.race([exited, timer])) === "timeout") {
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }

  killAll(signal) {
    for (const child of this.children) {
      try {
        process.kill(child.pid, signal);
      } catch {
        // gone
      }
    }
  }

  async stopAll() {
    await Promise.all([...this.children].map((c) => this.stop(c, 10_000)));
  }
}

// --- helpers ---


function canConnect(socket) {
  return new Promise((resolve) => {
    const s = net.connect(socket);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function median(xs) {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function stats(xs) {
  if (!xs.length) return { count: 0, min: null, median: null, max: null, mean: null };
  return { count: xs.length, min: Math.min(...xs), median: median(xs), max: Math.max(...xs), mean: Math.round((xs.reduce((a, b) => a + b, 0) / xs.length) * 10) / 10 };
}

function fmt(n, digits) {
  return Number.isFinite(n) ? n.toFixed(digits) : "n/a";
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
