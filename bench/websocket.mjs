// WebSocket message throughput and round-trip latency, direct to an echo app vs through
// Rollbridge's proxy (its own process, as in the daemon), in alternating rounds so drift is
// shared. N clients each keep one message in flight (send, wait for the echo, send again) for T
// seconds; the clients run in their own process, like wrk does for HTTP.
//
//   npm run build && node bench/websocket.mjs [--rounds 3] [--duration 5] [--clients 50] [--size 64] [--pin] [--timeout 300]
//
// Writes bench/results/websocket-<timestamp>.json when run directly.

import http from "node:http";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { WebSocket, WebSocketServer } from "ws";
import { cpuSeconds, fmt, startChild } from "./proxy.mjs";
import { bounded, cpuPlacer, median, parseNumberFlags, printTable, writeResult } from "./lib.mjs";
import { ChildTracker } from "./proc.mjs";

const here = dirname(fileURLToPath(import.meta.url));

/** Default options; every field may be overridden by runWebSocketBench(opts) or CLI flags. */
export const defaultWebSocketBenchOptions = {
  rounds: 3,
  durationSec: 5,
  warmupSec: 1,
  clients: 50,
  /** Message size in bytes. */
  size: 64,
  /** Pin (taskset, >= 2 cores): our proxy on CPU 1, the app and the clients on CPU 0. */
  pin: false,
  /** Hard bound on the whole run; everything started is stopped when it passes. */
  timeoutSec: 300,
  /** Where to write websocket-<timestamp>.json; null to skip. */
  resultsDir: join(here, "results"),
  print: true,
};

/**
 * Runs the benchmark and resolves with {meta, rounds, summary}; summary[].ratio is messages/s
 * through the proxy over direct. Starts the echo app, our proxy and one client process per run,
 * and stops each by pid.
 */
export async function runWebSocketBench(opts = {}) {
  const options = { ...defaultWebSocketBenchOptions, ...opts };
  const tracker = new ChildTracker();
  return bounded("websocket bench", options.timeoutSec, tracker, () => body(options, tracker));
}

async function body(options, tracker) {
  const onCpu = cpuPlacer(options.pin);
  const pin = onCpu.pinned;
  const app = await startChild(tracker, onCpu(0, process.execPath, [fileURLToPath(import.meta.url), "--serve-app"]));
  const ours = await startChild(tracker, onCpu(1, process.execPath, [join(here, "run-proxy.mjs"), String(app.port)]));
  const targets = [
    { name: "direct", port: app.port, pid: app.pid },
    { name: "rollbridge", port: ours.port, pid: ours.pid },
  ];
  const drive = (port, durationSec) => runClients(tracker, onCpu(0, process.execPath, [fileURLToPath(import.meta.url), "--clients", String(port), String(options.clients), String(durationSec), String(options.size)]));
  for (const target of targets) await drive(target.port, options.warmupSec);

  const rounds = [];
  for (let round = 0; round < options.rounds; round++) {
    const order = round % 2 === 0 ? targets : [...targets].reverse();
    for (const target of order) {
      const cpuBefore = cpuSeconds(target.pid);
      const result = await drive(target.port, options.durationSec);
      result.cpuUsPerMsg = ((cpuSeconds(target.pid) - cpuBefore) * 1e6) / result.messages;
      rounds.push({ round: round + 1, target: target.name, ...result });
      if (options.print)
        console.error(`round ${round + 1} ${target.name.padEnd(10)} ${fmt(result.perSec, 0).padStart(8)} msg/s  p99 ${fmt(result.p99Ms, 2)} ms  cpu ${fmt(result.cpuUsPerMsg, 1)} us/msg${result.errors ? `  errors ${result.errors}` : ""}`);
    }
  }
  const summary = summarize(
    targets.map((t) => t.name),
    rounds,
  );
  const result = {
    meta: { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, pinned: pin, rounds: options.rounds, durationSec: options.durationSec, clients: options.clients, size: options.size },
    rounds,
    summary,
  };
  if (options.print) printSummary(summary);
  writeResult(result, options.resultsDir, "websocket", result.meta.date, options.print);
  return result;
}

// --- child: the echo app ---

function serveApp() {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/plain", "content-length": 14 });
    res.end("Hello, world!\n");
  });
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  wss.on("connection", (ws) => ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary })));
  server.listen(0, "127.0.0.1", () => console.log(`READY ${server.address().port}`));
}

// --- child: the clients; prints one JSON line with the counts ---

async function driveClients(port, clients, durationSec, size) {
  const payload = Buffer.alloc(size, 0x61);
  const latencies = [];
  let messages = 0;
  let errors = 0;
  const sockets = await Promise.all(
    Array.from(
      { length: clients },
      () =>
        new Promise((resolve) => {
          const ws = new WebSocket(`ws://127.0.0.1:${port}/bench`, { perMessageDeflate: false });
          ws.once("open", () => resolve(ws));
          ws.once("error", () => {
            errors++;
            resolve(null);
          });
        }),
    ),
  );
  const started = performance.now();
  const endAt = started + durationSec * 1000;
  await Promise.all(
    sockets.filter(Boolean).map(
      (ws) =>
        new Promise((resolve) => {
          let sentAt = 0;
          const send = () => {
            sentAt = performance.now();
            ws.send(payload);
          };
          ws.on("message", () => {
            const now = performance.now();
            messages++;
            if (latencies.length < 200_000) latencies.push(now - sentAt);
            if (now < endAt) send();
            else resolve();
          });
          ws.on("close", resolve);
          ws.on("error", () => {
            errors++;
            resolve();
          });
          send();
        }),
    ),
  );
  const elapsed = (performance.now() - started) / 1000;
  for (const ws of sockets) ws?.terminate();
  latencies.sort((a, b) => a - b);
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN;
  console.log(JSON.stringify({ messages, perSec: messages / elapsed, p50Ms: at(0.5), p99Ms: at(0.99), errors }));
  process.exit(0);
}

function runClients(tracker, [command, args]) {
  return new Promise((resolve, reject) => {
    const child = tracker.spawn(command, args, { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk) => (out += chunk));
    child.on("exit", (code) => {
      try {
        resolve(JSON.parse(out.trim().split("\n").pop()));
      } catch {
        reject(new Error(`the client process exited ${code} without a result: ${out}`));
      }
    });
  });
}

// --- reporting ---

function summarize(names, rounds) {
  const byName = Object.fromEntries(
    names.map((name) => {
      const mine = rounds.filter((r) => r.target === name);
      return [
        name,
        { perSec: median(mine.map((r) => r.perSec)), p50Ms: median(mine.map((r) => r.p50Ms)), p99Ms: median(mine.map((r) => r.p99Ms)), cpuUsPerMsg: median(mine.map((r) => r.cpuUsPerMsg)), errors: mine.reduce((n, r) => n + r.errors, 0) },
      ];
    }),
  );
  return names.map((name) => ({ target: name, ...byName[name], ratio: byName[name].perSec / byName.direct.perSec, p99VsDirect: byName[name].p99Ms / byName.direct.p99Ms }));
}

function printSummary(summary) {
  const header = ["target", "msg/s", "p50 ms", "p99 ms", "msg/s vs direct", "p99 vs direct", "cpu us/msg", "errors"];
  const rows = summary.map((s) => [s.target, fmt(s.perSec, 0), fmt(s.p50Ms, 2), fmt(s.p99Ms, 2), `${fmt(s.ratio, 2)}x`, `${fmt(s.p99VsDirect, 2)}x`, fmt(s.cpuUsPerMsg, 1), String(s.errors)]);
  printTable(header, rows);
}

// --- CLI ---

function parseArgs(argv) {
  return parseNumberFlags(argv, { "--rounds": "rounds", "--duration": "durationSec", "--warmup": "warmupSec", "--clients": "clients", "--size": "size", "--timeout": "timeoutSec" });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [mode, ...rest] = process.argv.slice(2);
  if (mode === "--serve-app") serveApp();
  else if (mode === "--clients") driveClients(Number(rest[0]), Number(rest[1]), Number(rest[2]), Number(rest[3]));
  else
    runWebSocketBench(parseArgs(process.argv.slice(2))).catch((err) => {
      console.error(err);
      process.exitCode = 1;
    });
}
