// Daemon crash: under keep-alive load through the proxy, `kill -9` of the daemon, and a new
// daemon started on the same config (what systemd's Restart=always or the next `rollbridge
// ensure-daemon` does). The new daemon adopts the running processes from the state file. Two
// ways to start it, one per run (`holder`):
//
//   - through the socket-activation stand-in (bench/socket-holder.mjs, as systemd's
//     rollbridge.socket + Restart=always, RestartSec=100ms): the stand-in holds the listening
//     socket and starts the daemon with it as fd 3 (LISTEN_FDS=1, LISTEN_PID, LISTEN_FDNAMES=proxy),
//     again 100 ms after it exits, so connections made in the gap wait in the backlog;
//   - without a holder: the daemon binds the port itself, and `rollbridge daemon` is started
//     again `restartDelayMs` after the kill, so connections in the gap are refused.
//
// Measured in one run:
//
//   - refused connections (goal 0 through the holder), failed requests (reset, hang-up or a
//     timeout; goal: at most those in flight at the kill), 5xx answers;
//   - time from the kill until the proxy serves again (the first 2xx answer to a request sent
//     after it);
//   - app restarts (goal 0: the web process keeps its pid) and singleton starts (goal 1: the
//     singleton is started once, never again by the new daemon).
//
//   npm run build && node bench/daemon-crash.mjs [--holder] [--connections 32] [--before 2] [--after 3] [--restart-delay 100]
//
// Every server listens on 127.0.0.1; everything started is stopped by pid; the run is bounded
// by `timeoutSec`. Writes bench/results/daemon-crash-<timestamp>.json when run directly.
import { closeSync, openSync, promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { canConnect, countedSingleton, startBenchDaemon } from "./bench-daemon.mjs";
import { startKeepAliveLoad } from "./keepalive-load.mjs";
import { loadAverage, parseNumberFlags, printTable, runBench, sleep, writeResult } from "./lib.mjs";
import { CLI, isAlive } from "./proc.mjs";
import { holdSocket } from "./socket-holder.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));

export const defaultDaemonCrashOptions = {
  connections: 32,
  /** Through the socket-activation stand-in (true) or with the daemon binding the port itself (false). */
  holder: false,
  /** Seconds of load before the kill, and after the proxy serves again. */
  beforeSec: 2,
  afterSec: 3,
  /** Without a holder: the delay before the next daemon is started (the holder's is its own 100 ms, systemd's RestartSec of the example unit). */
  restartDelayMs: 100,
  /** Give up waiting for the proxy to serve again after this long. */
  serveAgainTimeoutSec: 30,
  timeoutSec: 120,
  resultsDir: null,
  print: true,
};

/** Resolves with {meta, load, serveAgainMs, app, singleton, orphans, timeline, verdict}. */
export function runDaemonCrashBench(opts = {}) {
  const name = opts.holder ? "daemon crash bench (socket holder)" : "daemon crash bench";
  return runBench(name, defaultDaemonCrashOptions, opts, body);
}

async function body(options, tracker, log) {
  const loadAvgAtStart = loadAverage();
  const ticker = await countedSingleton(tracker, "rollbridge-crash-");
  const holder = options.holder ? await holdSocket() : null;
  let next = null;
  let d = null;
  try {
    const through = holder
      ? {
          proxyPort: holder.port,
          spawnDaemon: (command, args, spawnOptions) => {
            const loop = holder.spawn(command, args, spawnOptions);
            tracker.adopt(loop.pid);
            return loop;
          },
          stopDaemon: () => holder.stop(),
        }
      : {};
    d = await startBenchDaemon({ tracker, extraProcesses: ticker.yaml, drainTimeoutMs: 2000, ...through });
    await d.deploy("v1");
    const before = await d.status();
    const web = before.processes.find((p) => p.instanceId === "web");
    const singleton = before.processes.find((p) => p.instanceId === "ticker");
    await waitForState(d, web.pid);
    log(`daemon ${d.daemonPid}${holder ? ` (started by the socket holder on port ${holder.port})` : ""}, web pid ${web.pid}, ticker pid ${singleton.pid}; ${options.connections} keep-alive connections`);

    const load = startKeepAliveLoad(d.proxyPort, { connections: options.connections });
    await sleep(options.beforeSec * 1000);
    const killedAt = Date.now();
    let restartedAt = Number.POSITIVE_INFINITY;
    const inFlightAtKill = load.inFlight();
    process.kill(d.daemonPid, "SIGKILL");
    log(`SIGKILLed daemon ${d.daemonPid} with ${inFlightAtKill} requests in flight`);
    if (holder) {
      const pid = await holder.started(2, options.serveAgainTimeoutSec * 1000);
      tracker.adopt(pid);
    } else {
      await sleep(options.restartDelayMs);
      restartedAt = Date.now();
      next = await spawnDaemon({ d, tracker });
    }
    const servedAt = await load.firstSuccessAfter(killedAt, options.serveAgainTimeoutSec * 1000);
    await sleep(options.afterSec * 1000);
    const counts = await load.stop();
    // Without a holder: connections opened after the kill that failed before the next daemon was
    // even started. Only the dying daemon's listening socket can have taken them (the kernel
    // completes handshakes into its backlog until the process's teardown closes it, then resets
    // them), so they are no request that was in flight, and a held socket has none.
    const resetInBacklog = holder ? 0 : load.failures().filter((f) => f.newConnection && f.sentAt >= killedAt && f.at < restartedAt).length;

    const after = await d.status();
    log(servedAt === null ? "the proxy did not serve again in time" : `serving again ${servedAt - killedAt} ms after the kill (daemon ${after.daemonPid})`);
    const webAfter = after.processes.find((p) => p.instanceId === "web");
    const singletonAfter = after.processes.find((p) => p.instanceId === "ticker");
    const starts = await ticker.starts();
    const appRestarts = (webAfter?.pid === web.pid ? 0 : 1) + (webAfter?.restarts ?? 0);
    const result = {
      meta: {
        date: new Date().toISOString(),
        node: process.version,
        cpus: os.cpus().length,
        connections: options.connections,
        holder: Boolean(holder),
        restart: holder ? "socket holder: the daemon started again 100 ms after it exits, on the held socket (fd 3)" : `rollbridge daemon started again ${options.restartDelayMs} ms after the kill`,
        loadAvgAtStart,
      },
      load: { ...counts, inFlightAtKill, resetInBacklog },
      serveAgainMs: servedAt === null ? null : servedAt - killedAt,
      daemon: { pidBefore: d.daemonPid, pidAfter: after.daemonPid },
      app: { pidBefore: web.pid, pidAfter: webAfter?.pid ?? null, restarts: appRestarts, alive: isAlive(web.pid) },
      singleton: { starts, pidBefore: singleton.pid, pidAfter: singletonAfter?.pid ?? null },
      orphans: after.orphans?.length ?? 0,
      // What the next daemon did, in ms after the kill (its first events).
      timeline: d.events
        .filter((e) => Date.parse(e.at) >= killedAt)
        .slice(0, 20)
        .map((e) => ({ ms: Date.parse(e.at) - killedAt, type: e.type, message: e.message.slice(0, 120) })),
    };
    result.verdict = {
      ok: appRestarts === 0 && starts === 1 && servedAt !== null && counts.failed - resetInBacklog <= inFlightAtKill && (!holder || counts.refused === 0),
      refusedGoal: holder ? 0 : null,
      failedGoal: inFlightAtKill,
      appRestartsGoal: 0,
      singletonStartsGoal: 1,
    };
    if (options.print) printResult(result);
    if (options.print) for (const e of result.timeline) log(`  +${e.ms} ms ${e.type}: ${e.message}`);
    writeResult(result, options.resultsDir, holder ? "daemon-crash-holder" : "daemon-crash", result.meta.date, options.print);
    return result;
  } finally {
    if (next) await next.stop();
    await d?.stop();
    await holder?.stop();
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

function printResult(r) {
  console.log("");
  printTable(
    [`kill -9 of the daemon under load, ${r.meta.holder ? "through the socket holder" : "no socket holder"}`, "value", "goal"],
    [
      ["keep-alive connections", String(r.meta.connections), ""],
      ["requests answered 2xx", String(r.load.ok), ""],
      ["refused connections", String(r.load.refused), r.meta.holder ? "0" : "(expected without a holder)"],
      ["failed requests (reset, hang-up, timeout)", String(r.load.failed), `≤ in flight at the kill (${r.load.inFlightAtKill})${r.meta.holder ? "" : ", plus the resets below"}`],
      ...(r.meta.holder ? [] : [["… of them new connections reset in the dying daemon's backlog", String(r.load.resetInBacklog ?? 0), "(expected without a holder)"]]),
      ["5xx answers", String(r.load.status5xx), ""],
      ["kill → serving again", r.serveAgainMs === null ? "never" : `${r.serveAgainMs} ms`, ""],
      ["app restarts", String(r.app.restarts), "0"],
      ["singleton starts", String(r.singleton.starts), "1"],
    ],
  );
  console.log("");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const argv = process.argv.slice(2);
  const opts = parseNumberFlags(argv, { "--connections": "connections", "--before": "beforeSec", "--after": "afterSec", "--restart-delay": "restartDelayMs", "--timeout": "timeoutSec" });
  runDaemonCrashBench({ resultsDir: path.join(here, "results"), holder: argv.includes("--holder"), ...opts }).catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
