// Soak: a real daemon (dist/) deploying a new release every 10 s for minutes, under keep-alive
// HTTP load and WebSocket load (clients that send a message every 250 ms and reconnect when a
// drain closes them). Reports failed requests (target 0) and the daemon's open file descriptors
// and RSS at the start and the end (target: no growth).
//
//   npm run build && node bench/soak.mjs [--duration 180] [--interval 10] [--connections 8] [--websockets 50]
//
// The daemon runs with --max-semi-space-size=4, as ensure-daemon and the systemd example start it
// (unless NODE_OPTIONS sets it). The app is test/fixtures/app.mjs (HTTP + WebSocket echo, graceful
// stop). Everything listens on 127.0.0.1 in a temp dir; the daemon is stopped by pid (SIGTERM,
// then SIGKILL to it and to its apps' process groups). Writes bench/results/soak-<timestamp>.json
// when run directly.

import { execFile, spawn } from "node:child_process";
import { existsSync, promises as fs, readdirSync, readFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { WebSocket } from "ws";
import { freePort, writeResult } from "./lib.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const CLI = path.join(root, "dist/cli/main.js");
const APP = path.join(root, "test/fixtures/app.mjs");

/** Default options; every field may be overridden by runSoak(opts) or CLI flags. */
export const defaultSoakOptions = {
  durationSec: 180,
  /** A deploy starts every this many seconds (the next one right away if a deploy took longer). */
  deployEverySec: 10,
  /** Keep-alive HTTP connections, each sending its next request as soon as the last is answered. */
  connections: 8,
  websockets: 50,
  wsMessageMs: 250,
  /** proxy.drainTimeoutMs: WebSockets of a retired release are closed (and reconnect) after this. */
  drainTimeoutMs: 4000,
  sampleEverySec: 5,
  /** Where to write soak-<timestamp>.json; null to skip. */
  resultsDir: path.join(here, "results"),
  print: true,
};

/** Runs the soak and resolves with {meta, http, websocket, deploys, daemon, samples, verdict}. */
export async function runSoak(opts = {}) {
  const options = { ...defaultSoakOptions, ...opts };
  if (!existsSync(CLI)) throw new Error("dist/cli/main.js is missing: run `npm run build` first");
  const log = (text) => options.print && process.stderr.write(`[soak] ${text}\n`);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "rb-soak-"));
  const proxyPort = await freePort();
  const from = 20_000 + Math.floor(Math.random() * 800) * 50;
  const config = [
    "application: soak",
    `control: {path: ${path.join(dir, "control.sock")}}`,
    `proxy: {host: 127.0.0.1, port: ${proxyPort}, drainTimeoutMs: ${options.drainTimeoutMs}, holdTimeoutMs: 10000}`,
    "resyncIntervalMs: 1000",
    "processes:",
    "  - id: web",
    "    policy: proxied",
    `    command: node ${APP}`,
    `    port: {from: ${from}, to: ${from + 49}}`,
    '    env: {GRACEFUL_MS: "3000"}',
    "    health: {path: /ping, intervalMs: 50}",
    "    gracefulStopMs: 5000",
  ].join("\n");
  const configPath = path.join(dir, "rollbridge.yaml");
  await fs.writeFile(configPath, `${config}\n`);
  // As ensure-daemon and the systemd example run it: a small V8 young generation (docs/systemd.md).
  const nodeFlags = process.env.NODE_OPTIONS?.includes("--max-semi-space-size") ? [] : ["--max-semi-space-size=4"];
  const daemon = spawn(process.execPath, [...nodeFlags, CLI, "daemon", "--config", configPath], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  let daemonStderr = "";
  daemon.stderr.on("data", (chunk) => (daemonStderr += chunk));
  const cli = (args, timeout = 90_000) =>
    new Promise((resolve) => {
      execFile(process.execPath, [CLI, ...args, "--config", configPath], { cwd: dir, timeout, maxBuffer: 8 * 1024 * 1024 }, (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr }),
      );
    });
  let appPids = [];
  const stopEverything = async () => {
    if (daemon.exitCode === null && daemon.signalCode === null) {
      daemon.kill("SIGTERM");
      const exited = await Promise.race([new Promise((resolve) => daemon.once("exit", () => resolve(true))), sleep(15_000).then(() => false)]);
      if (!exited) daemon.kill("SIGKILL");
    }
    for (const pid of appPids) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // stopped with the daemon, as it should be
      }
    }
    await fs.rm(dir, { recursive: true, force: true });
  };
  const onSigint = () => {
    daemon.kill("SIGKILL");
    for (const pid of appPids) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    process.exit(130);
  };
  process.once("SIGINT", onSigint);

  const deploys = [];
  let release = 0;
  const deploy = async () => {
    const id = `r${++release}`;
    const releasePath = path.join(dir, "releases", id);
    await fs.mkdir(releasePath, { recursive: true });
    const started = Date.now();
    const result = await cli(["apply", "--release-path", releasePath, "--wait", "--timeout", "60000"]);
    const entry = { release: id, ok: result.code === 0, ms: Date.now() - started, ...(result.code === 0 ? {} : { error: result.stderr.slice(0, 500) }) };
    deploys.push(entry);
    const status = await cli(["status", "--json"])
      .then((r) => JSON.parse(r.stdout))
      .catch(() => null);
    if (status) appPids = [...new Set([...appPids, ...status.processes.map((p) => p.pid).filter((pid) => typeof pid === "number")])];
    log(`deploy ${id}: ${entry.ok ? "ok" : "FAILED"} in ${entry.ms} ms`);
    return status;
  };

  try {
    const deadline = Date.now() + 15_000;
    while (!(await canConnectUnix(path.join(dir, "control.sock")))) {
      if (daemon.exitCode !== null) throw new Error(`daemon exited: ${daemonStderr}`);
      if (Date.now() > deadline) throw new Error(`daemon did not open its control socket: ${daemonStderr}`);
      await sleep(50);
    }
    const first = await deploy();
    if (!first?.converged) throw new Error(`the first deploy did not converge: ${JSON.stringify(deploys[0])}`);
    const daemonPid = first.daemonPid;
    await sleep(1000);
    const quietStart = probe(daemonPid);
    log(`daemon ${daemonPid}: ${quietStart.fds} fds, ${quietStart.rssMB} MB RSS before load`);

    const httpLoad = startHttpLoad(proxyPort, options.connections);
    const wsLoad = startWebSockets(proxyPort, options.websockets, options.wsMessageMs);
    await sleep(3000);
    const startedAt = Date.now();
    const samples = [];
    const sample = () => samples.push({ atSec: Math.round((Date.now() - startedAt) / 1000), ...probe(daemonPid), requests: httpLoad.stats.sent, wsOpen: wsLoad.stats.open });
    sample();
    const start = samples[0];
    const sampler = setInterval(sample, options.sampleEverySec * 1000);
    const endAt = startedAt + options.durationSec * 1000;
    let next = startedAt + options.deployEverySec * 1000;
    while (next < endAt) {
      await sleep(Math.max(0, next - Date.now()));
      await deploy();
      next = Math.max(next + options.deployEverySec * 1000, Date.now());
    }
    await sleep(Math.max(0, endAt - Date.now()));
    clearInterval(sampler);
    sample();
    const end = samples[samples.length - 1];
    const http_ = await httpLoad.stop();
    const websocket = await wsLoad.stop();
    // Idle keep-alive sockets (client and upstream) time out after 5 s; then nothing should be left.
    await sleep(6000);
    const quietEnd = probe(daemonPid);
    log(`daemon ${daemonPid}: ${quietEnd.fds} fds, ${quietEnd.rssMB} MB RSS after load`);

    const failedRequests = http_.errors + http_.non2xx;
    // V8 grows its heap for a while under new load; a leak keeps growing once it has settled.
    const half = samples.find((s) => s.atSec >= options.durationSec / 2) ?? start;
    const rssGrowthSecondHalfMB = Math.round((end.rssMB - half.rssMB) * 10) / 10;
    const result = {
      meta: { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, loadavg: os.loadavg(), ...options, resultsDir: undefined, print: undefined },
      http: http_,
      websocket,
      deploys: { count: deploys.length, failed: deploys.filter((d) => !d.ok).length, medianMs: median(deploys.map((d) => d.ms)), maxMs: Math.max(...deploys.map((d) => d.ms)), list: deploys },
      daemon: { pid: daemonPid, quietStart, quietEnd, underLoadStart: pick(start), underLoadEnd: pick(end) },
      samples,
      verdict: {
        failedRequests,
        failedWebSocketConnects: websocket.connectFailures,
        lostEchoes: websocket.lostEchoes,
        fdGrowthQuiet: quietEnd.fds - quietStart.fds,
        rssGrowthMB: Math.round((end.rssMB - start.rssMB) * 10) / 10,
        rssGrowthSecondHalfMB,
        ok:
          failedRequests === 0 &&
          websocket.connectFailures === 0 &&
          websocket.lostEchoes === 0 &&
          deploys.every((d) => d.ok) &&
          quietEnd.fds <= quietStart.fds + 2 &&
          end.fds <= start.fds + 2 &&
          rssGrowthSecondHalfMB <= Math.max(5, half.rssMB * 0.05),
      },
    };
    if (options.print) printReport(result);
    writeResult(result, options.resultsDir, "soak", result.meta.date, options.print);
    return result;
  } finally {
    process.off("SIGINT", onSigint);
    await stopEverything();
  }
}

// --- load ---

function startHttpLoad(port, connections) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const stats = { sent: 0, ok: 0, non2xx: 0, errors: 0, samples: [] };
  let running = true;
  const one = () =>
    new Promise((resolve) => {
      stats.sent++;
      const req = http.get({ host: "127.0.0.1", port, path: "/soak", agent, timeout: 20_000 }, (res) => {
        res.resume();
        res.on("end", () => {
          if (res.statusCode >= 200 && res.statusCode < 300) stats.ok++;
          else {
            stats.non2xx++;
            if (stats.samples.length < 20) stats.samples.push(`HTTP ${res.statusCode}`);
          }
          resolve();
        });
        res.on("error", (error) => {
          stats.errors++;
          if (stats.samples.length < 20) stats.samples.push(`response: ${error.message}`);
          resolve();
        });
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (error) => {
        stats.errors++;
        if (stats.samples.length < 20) stats.samples.push(`request: ${error.message}`);
        resolve();
      });
    });
  const workers = Array.from({ length: connections }, async () => {
    while (running) await one();
  });
  return {
    stats,
    async stop() {
      running = false;
      await Promise.all(workers);
      agent.destroy();
      return stats;
    },
  };
}

// Each client sends a numbered message every `everyMs` and expects it back; a close by the server
// (a drain deadline) is followed by a reconnect. Failures: handshakes that fail, echoes that never
// come while the socket stays open.
function startWebSockets(port, count, everyMs) {
  const stats = { open: 0, connects: 0, connectFailures: 0, closedByServer: 0, sent: 0, echoed: 0, cutByClose: 0, lostEchoes: 0, samples: [] };
  let running = true;
  const clients = [];
  const connect = (slot) => {
    if (!running) return;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/soak`);
    clients[slot] = ws;
    const pending = new Map();
    let timer = null;
    let opened = false;
    ws.on("open", () => {
      opened = true;
      stats.open++;
      stats.connects++;
      let n = 0;
      timer = setInterval(() => {
        const now = Date.now();
        for (const [, at] of pending) if (now - at > 5000) stats.lostEchoes++;
        for (const [key, at] of pending) if (now - at > 5000) pending.delete(key);
        const message = `m${slot}-${++n}`;
        pending.set(message, now);
        stats.sent++;
        ws.send(message);
      }, everyMs);
    });
    ws.on("message", (data) => {
      if (pending.delete(String(data))) stats.echoed++;
    });
    ws.on("error", (error) => {
      if (!opened) {
        stats.connectFailures++;
        if (stats.samples.length < 20) stats.samples.push(`connect: ${error.message}`);
      }
    });
    ws.on("close", () => {
      if (timer) clearInterval(timer);
      stats.cutByClose += pending.size;
      if (opened) {
        stats.open--;
        if (running) stats.closedByServer++;
      }
      if (running) setTimeout(() => connect(slot), 50);
    });
  };
  for (let i = 0; i < count; i++) connect(i);
  return {
    stats,
    async stop() {
      running = false;
      for (const ws of clients) ws?.close();
      await sleep(500);
      for (const ws of clients) ws?.terminate();
      return stats;
    },
  };
}

// --- probes ---

function probe(pid) {
  const fds = readdirSync(`/proc/${pid}/fd`).length;
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? Number.NaN);
  return { fds, rssMB: Math.round(rssKb / 102.4) / 10 };
}

function pick({ fds, rssMB }) {
  return { fds, rssMB };
}

// --- reporting ---

function printReport(r) {
  const rows = [
    ["HTTP requests (ok / sent)", `${r.http.ok} / ${r.http.sent}`],
    ["failed requests (errors + non-2xx)", `${r.verdict.failedRequests}${r.http.samples.length ? `  (${r.http.samples.slice(0, 3).join("; ")})` : ""}`],
    ["WebSocket messages (echoed / sent)", `${r.websocket.echoed} / ${r.websocket.sent}  (cut by a drain close: ${r.websocket.cutByClose})`],
    ["WebSocket connects (failed)", `${r.websocket.connects} (${r.websocket.connectFailures}), closed by drains ${r.websocket.closedByServer}`],
    ["echoes lost on open sockets", String(r.websocket.lostEchoes)],
    ["deploys (failed), median / max", `${r.deploys.count} (${r.deploys.failed}), ${r.deploys.medianMs} / ${r.deploys.maxMs} ms`],
    ["daemon fds, quiet: start → end", `${r.daemon.quietStart.fds} → ${r.daemon.quietEnd.fds}`],
    ["daemon fds, under load: start → end", `${r.daemon.underLoadStart.fds} → ${r.daemon.underLoadEnd.fds}`],
    ["daemon RSS MB, under load: start → end", `${r.daemon.underLoadStart.rssMB} → ${r.daemon.underLoadEnd.rssMB} (second half: ${r.verdict.rssGrowthSecondHalfMB >= 0 ? "+" : ""}${r.verdict.rssGrowthSecondHalfMB})`],
    ["daemon RSS MB, quiet: start → end", `${r.daemon.quietStart.rssMB} → ${r.daemon.quietEnd.rssMB}`],
    ["verdict", r.verdict.ok ? "ok" : "NOT OK"],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
}

function median(xs) {
  if (xs.length === 0) return Number.NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : Math.round((sorted[mid - 1] + sorted[mid]) / 2);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function canConnectUnix(socketPath) {
  return new Promise((resolve) => {
    const socket = net.connect(socketPath);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

// --- CLI ---

function parseArgs(argv) {
  const opts = {};
  const names = { "--duration": "durationSec", "--interval": "deployEverySec", "--connections": "connections", "--websockets": "websockets", "--drain": "drainTimeoutMs" };
  for (let i = 0; i < argv.length; i++) {
    const key = names[argv[i]];
    if (key) opts[key] = Number(argv[++i]);
  }
  return opts;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runSoak(parseArgs(process.argv.slice(2))).then(
    (result) => {
      process.exitCode = result.verdict.ok ? 0 : 1;
    },
    (err) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
