// Daemon upgrade: under keep-alive load through the proxy, with a WebSocket open and a
// singleton running, `rollbridge upgrade` replaces a daemon started by ensure-daemon (detached)
// with a new one from the built code. Measured in one run:
//
//   - failed requests (reset, hang-up), refused connections and 5xx answers (goal: 0 of each);
//   - app restarts (goal 0: same pid and /proc start time) and singleton starts (goal 1);
//   - whether the WebSocket opened before still echoes after, and how it ends (the old daemon
//     keeps it until it closes or proxy.drainTimeoutMs);
//   - how long the upgrade took: the daemon's own figure (request → new daemon ready) and the
//     CLI's wall time; the pid file and the control socket naming the new daemon after.
//
//   npm run build && node bench/daemon-upgrade.mjs [--connections 32] [--before 2] [--after 3]
//
// Every server listens on 127.0.0.1; everything started is stopped by pid; the run is bounded
// by `timeoutSec`. Writes bench/results/daemon-upgrade-<timestamp>.json when run directly.
import { execFile } from "node:child_process";
import { promises as fs, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { WebSocket } from "ws";
import { countedSingleton, startBenchDaemon } from "./bench-daemon.mjs";
import { startKeepAliveLoad } from "./keepalive-load.mjs";
import { loadAverage, parseNumberFlags, printTable, runBench, sleep, writeResult } from "./lib.mjs";
import { CLI, isAlive } from "./proc.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
/** The app: HTTP (/ping, /hello) and a WebSocket echo, with `ws` imported by absolute path (the release lives in a temp dir). */
const WS_MODULE = pathToFileURL(path.join(here, "../node_modules/ws/wrapper.mjs")).href;
const APP_SOURCE = `import http from "node:http";
import { WebSocketServer } from ${JSON.stringify(WS_MODULE)};
const server = http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ pid: process.pid, release: process.env.ROLLBRIDGE_RELEASE_ID }));
});
const wss = new WebSocketServer({ noServer: true });
server.on("upgrade", (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => {
  ws.send("hello " + process.env.ROLLBRIDGE_RELEASE_ID);
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
}));
server.keepAliveTimeout = 65000;
server.listen(Number(process.env.PORT), "127.0.0.1");
process.on("SIGTERM", () => { server.close(); for (const ws of wss.clients) ws.close(1001); setTimeout(() => process.exit(0), 200).unref(); });
`;

export const defaultDaemonUpgradeOptions = {
  connections: 32,
  /** Seconds of load before the upgrade, and after it. */
  beforeSec: 2,
  afterSec: 3,
  /** The old daemon keeps its WebSockets this long at most. */
  drainTimeoutMs: 3000,
  timeoutSec: 120,
  resultsDir: null,
  print: true,
};

/** Resolves with {meta, load, upgrade, app, singleton, websocket, verdict}. */
export function runDaemonUpgradeBench(opts = {}) {
  return runBench("daemon upgrade bench", defaultDaemonUpgradeOptions, opts, body);
}

async function body(options, tracker, log) {
  const loadAvgAtStart = loadAverage();
  const ticker = await countedSingleton(tracker, "rollbridge-upgrade-");
  const entry = path.join(ticker.dir, "app.mjs");
  await fs.writeFile(entry, APP_SOURCE);
  const d = await startBenchDaemon({ tracker, launch: "ensure-daemon", entry, extraProcesses: ticker.yaml, drainTimeoutMs: options.drainTimeoutMs });
  let newPid = null;
  try {
    await d.deploy("v1");
    const before = await d.status();
    const oldPid = before.daemonPid;
    const apps = before.processes.map((p) => ({ instanceId: p.instanceId, pid: p.pid, startTime: startTime(p.pid) }));
    log(`daemon ${oldPid} (ensure-daemon), apps ${apps.map((a) => `${a.instanceId}=${a.pid}`).join(", ")}; ${options.connections} keep-alive connections`);

    const ws = await openEcho(d.proxyPort);
    const wsClosed = new Promise((resolve) => ws.once("close", (code) => resolve({ code, at: Date.now() })));
    const load = startKeepAliveLoad(d.proxyPort, { connections: options.connections, path: "/hello" });
    await sleep(options.beforeSec * 1000);
    const cliStartedAt = Date.now();
    const cli = await run([CLI, "upgrade", "--json", "--config", d.config], 120_000);
    const cliWallMs = Date.now() - cliStartedAt;
    if (cli.code !== 0) throw new Error(`rollbridge upgrade failed: ${cli.stderr}`);
    const answer = JSON.parse(cli.stdout);
    newPid = answer.newPid;
    tracker.adopt(newPid);
    log(`upgrade: daemon ${answer.oldPid} → ${answer.newPid} in ${answer.durationMs} ms (CLI ${cliWallMs} ms)`);
    const echoedAfter = await echo(ws, "after the upgrade").catch((error) => `no echo: ${error.message}`);
    await sleep(options.afterSec * 1000);
    const counts = await load.stop();
    const oldExited = await waitGone(oldPid, options.drainTimeoutMs + 10_000);
    const wsEnd = await Promise.race([wsClosed, sleep(1000).then(() => null)]);

    const after = await d.status();
    const starts = await ticker.starts();
    const appsAfter = after.processes.map((p) => ({ instanceId: p.instanceId, pid: p.pid, startTime: startTime(p.pid), restarts: p.restarts }));
    const appRestarts = apps.filter((a) => {
      const now = appsAfter.find((b) => b.instanceId === a.instanceId);
      return now === undefined || now.pid !== a.pid || now.startTime !== a.startTime || now.restarts > 0;
    }).length;
    const pidFile = await readPidFile(d);
    const result = {
      meta: { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, connections: options.connections, drainTimeoutMs: options.drainTimeoutMs, launch: "ensure-daemon", loadAvgAtStart },
      load: counts,
      upgrade: { oldPid: answer.oldPid, newPid: answer.newPid, durationMs: answer.durationMs, cliWallMs, statusDaemonPid: after.daemonPid, pidFile, oldExitedAfterMs: oldExited === null ? null : oldExited - cliStartedAt },
      app: { restarts: appRestarts, before: apps, after: appsAfter },
      singleton: { starts },
      websocket: { echoedAfter: echoedAfter === "after the upgrade", echo: echoedAfter, closeCode: wsEnd?.code ?? null, closedAfterMs: wsEnd ? wsEnd.at - cliStartedAt : null },
    };
    result.verdict = {
      ok: counts.failed === 0 && counts.refused === 0 && counts.status5xx === 0 && appRestarts === 0 && starts === 1 && result.websocket.echoedAfter && after.daemonPid === newPid && pidFile === newPid,
      failedGoal: 0,
      appRestartsGoal: 0,
      singletonStartsGoal: 1,
    };
    if (options.print) printResult(result);
    writeResult(result, options.resultsDir, "daemon-upgrade", result.meta.date, options.print);
    return result;
  } finally {
    if (newPid !== null) await tracker.stopPid(newPid, 15_000);
    await d.stop();
  }
}

function run(args, timeoutMs) {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { timeout: timeoutMs }, (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr }));
  });
}

/** Field 22 of /proc/<pid>/stat (null when gone). */
function startTime(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(text.slice(text.lastIndexOf(")") + 2).split(" ")[19]);
  } catch {
    return null;
  }
}

async function waitGone(pid, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return Date.now();
    await sleep(50);
  }
  return null;
}

/** The pid the pid file ensure-daemon was given (--daemon-pid-path) names now: it named the old daemon. */
async function readPidFile(d) {
  const text = await fs.readFile(path.join(d.dir, "daemon.pid"), "utf8").catch(() => null);
  return text === null ? null : Number(text.trim());
}

async function openEcho(port) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/socket`, { perMessageDeflate: false });
  ws.on("error", () => undefined);
  await new Promise((resolve, reject) => {
    ws.once("message", (data) => (String(data).startsWith("hello ") ? resolve() : reject(new Error(String(data)))));
    ws.once("close", () => reject(new Error("closed before hello")));
  });
  return ws;
}

function echo(ws, text) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no echo within 5 s")), 5000);
    ws.once("message", (data) => {
      clearTimeout(timer);
      resolve(String(data));
    });
    ws.send(text);
  });
}

function printResult(r) {
  console.log("");
  printTable(
    ["rollbridge upgrade under load", "value", "goal"],
    [
      ["keep-alive connections", String(r.meta.connections), ""],
      ["requests answered 2xx", String(r.load.ok), ""],
      ["failed requests (reset, hang-up)", String(r.load.failed), "0"],
      ["refused connections", String(r.load.refused), "0"],
      ["5xx answers", String(r.load.status5xx), "0"],
      ["app restarts", String(r.app.restarts), "0"],
      ["singleton starts", String(r.singleton.starts), "1"],
      ["WebSocket opened before echoes after", r.websocket.echoedAfter ? "yes" : "no", "yes"],
      ["upgrade (request → new daemon ready)", `${r.upgrade.durationMs} ms`, ""],
      ["rollbridge upgrade wall time", `${r.upgrade.cliWallMs} ms`, ""],
      ["old daemon exited after", r.upgrade.oldExitedAfterMs === null ? "not yet" : `${r.upgrade.oldExitedAfterMs} ms`, `≤ drainTimeoutMs (${r.meta.drainTimeoutMs}) + a little`],
      ["pid file / status name the new daemon", `${r.upgrade.pidFile === r.upgrade.newPid ? "yes" : `no (${r.upgrade.pidFile})`} / ${r.upgrade.statusDaemonPid === r.upgrade.newPid ? "yes" : "no"}`, "yes / yes"],
    ],
  );
  console.log("");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const opts = parseNumberFlags(process.argv.slice(2), { "--connections": "connections", "--before": "beforeSec", "--after": "afterSec", "--timeout": "timeoutSec" });
  runDaemonUpgradeBench({ resultsDir: path.join(here, "results"), ...opts }).catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
