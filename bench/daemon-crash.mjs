// Daemon crash: under keep-alive load through the proxy, `kill -9` of the daemon, and a new
// daemon started on the same config right away (what systemd's Restart=always or the next
// `rollbridge ensure-daemon` does). The new daemon adopts the running processes from the
// state file. Measured in one run:
//
//   - refused connections (ECONNREFUSED while no daemon listens: expected without a socket
//     holder), failed requests (reset, hang-up or a 5xx answer), and requests in flight at the kill;
//   - time from the kill until the proxy serves again (the first 2xx answer after it);
//   - app restarts (goal 0: the web process keeps its pid) and singleton starts (goal 1: the
//     singleton is started once, never again by the new daemon).
//
//   npm run build && node bench/daemon-crash.mjs [--connections 32] [--before 2] [--after 3] [--restart-delay 100]
//
// `restart` (option) starts the next daemon; the default spawns `rollbridge daemon`. A socket
// holder (socket activation stand-in) can pass its own to keep the port open across the gap.
// Every server listens on 127.0.0.1; everything started is stopped by pid; the run is bounded
// by `timeoutSec`. Writes bench/results/daemon-crash-<timestamp>.json when run directly.
import { closeSync, openSync, promises as fs } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { canConnect, startBenchDaemon } from "./bench-daemon.mjs";
import { bounded, parseNumberFlags, printTable, sleep, writeResult } from "./lib.mjs";
import { ChildTracker, CLI, isAlive } from "./proc.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));

export const defaultDaemonCrashOptions = {
  connections: 32,
  /** Seconds of load before the kill, and after the proxy serves again. */
  beforeSec: 2,
  afterSec: 3,
  /** Delay before the next daemon is started (systemd's RestartSec of the example unit). */
  restartDelayMs: 100,
  /** Give up waiting for the proxy to serve again after this long. */
  serveAgainTimeoutSec: 30,
  timeoutSec: 120,
  resultsDir: null,
  print: true,
  /** (ctx) => Promise<{pid, stop()}>: starts the next daemon; ctx = {d, tracker, log}. */
  restart: null,
};

/** Resolves with {meta, load, serveAgainMs, app, singleton, verdict}. */
export async function runDaemonCrashBench(opts = {}) {
  const options = { ...defaultDaemonCrashOptions, ...opts };
  const tracker = new ChildTracker();
  return bounded("daemon crash bench", options.timeoutSec, tracker, () => body(options, tracker));
}

async function body(options, tracker) {
  const log = (text) => options.print && process.stderr.write(`[daemon-crash bench] ${text}\n`);
  const loadAvgAtStart = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const startsDir = tracker.tempDir(await fs.mkdtemp(path.join(os.tmpdir(), "rollbridge-crash-")));
  const startsFile = path.join(startsDir, "singleton-starts");
  const singleton = `  - id: ticker\n    policy: singleton\n    command: sh -c 'echo start >> ${startsFile}; while :; do echo tick; sleep 0.05; done'\n    gracefulStopMs: 1000\n`;
  const d = await startBenchDaemon({ tracker, extraProcesses: singleton, drainTimeoutMs: 2000 });
  let next = null;
  try {
    await d.deploy("v1");
    const before = await d.status();
    const web = before.processes.find((p) => p.instanceId === "web");
    const ticker = before.processes.find((p) => p.instanceId === "ticker");
    await waitForState(d, web.pid);
    log(`daemon ${d.daemonPid}, web pid ${web.pid}, ticker pid ${ticker.pid}; ${options.connections} keep-alive connections`);

    const load = startLoad(d.proxyPort, options.connections);
    await sleep(options.beforeSec * 1000);
    const killedAt = Date.now();
    const inFlightAtKill = load.inFlight();
    process.kill(d.daemonPid, "SIGKILL");
    log(`SIGKILLed daemon ${d.daemonPid} with ${inFlightAtKill} requests in flight`);
    await sleep(options.restartDelayMs);
    next = await (options.restart ?? spawnDaemon)({ d, tracker, log });
    const servedAt = await load.firstSuccessAfter(killedAt, options.serveAgainTimeoutSec * 1000);
    log(servedAt === null ? "the proxy did not serve again in time" : `serving again ${servedAt - killedAt} ms after the kill (daemon ${next.pid})`);
    await sleep(options.afterSec * 1000);
    const counts = await load.stop();

    const after = await d.status();
    const webAfter = after.processes.find((p) => p.instanceId === "web");
    const tickerAfter = after.processes.find((p) => p.instanceId === "ticker");
    const starts = (await fs.readFile(startsFile, "utf8")).split("\n").filter(Boolean).length;
    const appRestarts = (webAfter?.pid === web.pid ? 0 : 1) + (webAfter?.restarts ?? 0);
    const result = {
      meta: {
        date: new Date().toISOString(),
        node: process.version,
        cpus: os.cpus().length,
        connections: options.connections,
        restartDelayMs: options.restartDelayMs,
        restart: options.restart ? "custom" : "rollbridge daemon",
        loadAvgAtStart,
      },
      load: { ...counts, inFlightAtKill },
      serveAgainMs: servedAt === null ? null : servedAt - killedAt,
      app: { pidBefore: web.pid, pidAfter: webAfter?.pid ?? null, restarts: appRestarts, alive: isAlive(web.pid) },
      singleton: { starts, pidBefore: ticker.pid, pidAfter: tickerAfter?.pid ?? null },
      orphans: after.orphans?.length ?? 0,
      // What the next daemon did, in ms after the kill (its first events).
      timeline: d.events
        .filter((e) => Date.parse(e.at) >= killedAt)
        .slice(0, 20)
        .map((e) => ({ ms: Date.parse(e.at) - killedAt, type: e.type, message: e.message.slice(0, 120) })),
    };
    result.verdict = { ok: appRestarts === 0 && starts === 1 && servedAt !== null, appRestartsGoal: 0, singletonStartsGoal: 1 };
    if (options.print) printResult(result);
    if (options.print) for (const e of result.timeline) log(`  +${e.ms} ms ${e.type}: ${e.message}`);
    writeResult(result, options.resultsDir, "daemon-crash", result.meta.date, options.print);
    return result;
  } finally {
    if (next) await next.stop();
    await d.stop();
  }
}

/** The next daemon as systemd (Restart=always) or ensure-daemon would start it: `rollbridge daemon` on the same config. */
async function spawnDaemon({ d, tracker }) {
  const fd = openSync(path.join(d.dir, "daemon.log"), "a");
  let child;
  try {
    child = tracker.spawn(process.execPath, [CLI, "daemon", "--config", d.config], { cwd: d.dir, stdio: ["ignore", fd, fd] });
  } finally {
    closeSync(fd);
  }
  const deadline = Date.now() + 15_000;
  while (!(await canConnect(path.join(d.dir, "rollbridge.sock")))) {
    if (child.exitCode !== null) throw new Error(`the next daemon exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error("the next daemon did not open its control socket within 15 s");
    await sleep(20);
  }
  return { pid: child.pid, stop: () => tracker.stop(child, 15_000) };
}

/** Waits until the state file lists the web process (it is written right after the pass that started it). */
async function waitForState(d, pid) {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const text = await fs.readFile(stateFileOf(d), "utf8").catch(() => "");
    if (text.includes(`"pid": ${pid}`)) return;
    await sleep(50);
  }
  throw new Error(`the state file never listed pid ${pid}`);
}

function stateFileOf(d) {
  const application = `bench-${path.basename(d.dir).slice(-6).toLowerCase()}`;
  const base = process.getuid?.() === 0 ? "/var/lib/rollbridge" : path.join(process.env.XDG_STATE_HOME || path.join(os.homedir(), ".local/state"), "rollbridge");
  return path.join(base, application, "state.json");
}

/**
 * `connections` loops, each one request at a time on its own keep-alive connection. A refused
 * connect is counted apart from a failed request (one that was sent and got a reset, a hang-up
 * or a 5xx); every outcome is timestamped so the first success after the kill can be found.
 */
function startLoad(port, connections) {
  const counts = { ok: 0, refused: 0, failed: 0, status5xx: 0 };
  const successes = [];
  let inFlight = 0;
  let running = true;
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const one = () =>
    new Promise((resolve) => {
      inFlight += 1;
      const sentAt = Date.now();
      const done = (outcome) => {
        inFlight -= 1;
        if (outcome === "ok") successes.push({ sentAt, at: Date.now() });
        counts[outcome] += 1;
        resolve(outcome);
      };
      const req = http.get({ host: "127.0.0.1", port, path: "/", agent, timeout: 10_000 }, (res) => {
        res.resume();
        res.on("end", () => done(res.statusCode >= 200 && res.statusCode < 300 ? "ok" : res.statusCode >= 500 ? "status5xx" : "failed"));
        res.on("error", () => done("failed"));
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (error) => done(error.code === "ECONNREFUSED" ? "refused" : "failed"));
    });
  const loops = Array.from({ length: connections }, async () => {
    while (running) {
      // A refused connect is retried at once in a tight loop otherwise: pace it a little.
      if ((await one()) === "refused") await sleep(5);
    }
  });
  return {
    inFlight: () => inFlight,
    /** When the first request sent after `at` was answered 2xx (answers the dying daemon still wrote do not count). */
    async firstSuccessAfter(at, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const found = successes.find((s) => s.sentAt > at);
        if (found !== undefined) return found.at;
        await sleep(5);
      }
      return null;
    },
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return { ...counts };
    },
  };
}

function printResult(r) {
  console.log("");
  printTable(
    ["kill -9 of the daemon under load", "value", "goal"],
    [
      ["keep-alive connections", String(r.meta.connections), ""],
      ["requests answered 2xx", String(r.load.ok), ""],
      ["refused connections", String(r.load.refused), "0 with a socket holder"],
      ["failed requests (reset, hang-up)", String(r.load.failed), `≤ in flight at the kill (${r.load.inFlightAtKill})`],
      ["5xx answers", String(r.load.status5xx), ""],
      ["kill → serving again", r.serveAgainMs === null ? "never" : `${r.serveAgainMs} ms`, ""],
      ["app restarts", String(r.app.restarts), "0"],
      ["singleton starts", String(r.singleton.starts), "1"],
    ],
  );
  console.log("");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const opts = parseNumberFlags(process.argv.slice(2), { "--connections": "connections", "--before": "beforeSec", "--after": "afterSec", "--restart-delay": "restartDelayMs", "--timeout": "timeoutSec" });
  runDaemonCrashBench({ resultsDir: path.join(here, "results"), ...opts }).catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
