// A real Rollbridge daemon (dist/) in a fresh temp directory for the benchmarks: one proxied
// process `web`, release directories v1 and v2, started either as a plain `rollbridge daemon`
// (our child) or through `rollbridge ensure-daemon` (detached, as deploy scripts start it).
// Its JSON event lines are read from its log file; everything is stopped by pid.
import { closeSync, createWriteStream, existsSync, openSync, promises as fs, readSync, statSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { freePort, sleep } from "./lib.mjs";
import { CLI } from "./proc.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const EXAMPLE_APP = path.join(root, "examples/app/server.mjs");

/** How a bench daemon is started: `rollbridge daemon` with `nodeFlags`, or `rollbridge ensure-daemon`. */
export const LAUNCHES = ["daemon", "ensure-daemon"];

/**
 * Starts a daemon and resolves once its control socket answers. Options:
 * - tracker (ChildTracker, required); launch ("daemon" | "ensure-daemon"); nodeFlags for "daemon"
 * - entry: the app file (absolute) copied into each release as `server.mjs` (or `.cjs`, after its extension)
 * - env (the process's env), health ({path, intervalMs?}), replicas, drainTimeoutMs, gracefulStopMs
 * - stampListen: run the app with a preload that records when it starts listening (listen.log)
 * - place(command, args): wraps the daemon's command (taskset) when pinning
 * - extraProcesses: YAML list items appended to `processes:` (e.g. a singleton)
 * - proxyYaml: more fields of `proxy:` in flow style (e.g. "affinity: {query: sid}, drainCloseCode: 1012")
 * - extraConfig: top-level YAML appended to the config (e.g. a `rollout:` section)
 * - proxyPort: the proxy's port (default: a free one); with launch "daemon":
 *   spawnDaemon(command, args, {cwd, env}) → a ChildProcess whose stdout and stderr are pipes,
 *   started instead of the daemon (e.g. a socket holder's restart loop), and stopDaemon() to
 *   stop it instead of a SIGTERM to that child
 */
export async function startBenchDaemon(opts) {
  const {
    tracker,
    launch = "daemon",
    nodeFlags = [],
    entry = EXAMPLE_APP,
    env = {},
    health = { path: "/ping" },
    replicas,
    drainTimeoutMs = 3000,
    gracefulStopMs = 5000,
    stampListen = false,
    place = (c, a) => [c, a],
    extraProcesses = "",
    extraConfig = "",
    proxyYaml = "",
    spawnDaemon = null,
    stopDaemon = null,
  } = opts;
  if (!existsSync(CLI)) throw new Error(`${path.relative(process.cwd(), CLI)} is missing: run \`npm run build\` first`);
  const dir = tracker.tempDir(await fs.mkdtemp(path.join(os.tmpdir(), "rollbridge-bench-")));
  const proxyPort = opts.proxyPort ?? (await freePort());
  // Below the kernel's ephemeral range (32768+), where any client socket may take a port between
  // the daemon choosing it and the app listening on it (doctor warns about such a range).
  const appPortStart = 10000 + Math.floor(Math.random() * 1000) * 10;
  const socket = path.join(dir, "rollbridge.sock");
  const config = path.join(dir, "rollbridge.yaml");
  const desiredFile = path.join(dir, "desired.yaml");
  const listenLog = path.join(dir, "listen.log");
  const daemonLog = path.join(dir, "daemon.log");
  const preload = path.join(dir, "listen-stamp.mjs");
  const appFile = `server${path.extname(entry)}`;
  await fs.writeFile(preload, LISTEN_STAMP);
  await fs.writeFile(listenLog, "");
  await fs.writeFile(daemonLog, "");
  for (const release of ["v1", "v2"]) {
    await fs.mkdir(path.join(dir, "releases", release), { recursive: true });
    await fs.copyFile(entry, path.join(dir, "releases", release, appFile));
  }
  const healthYaml = `{path: ${health.path}${health.intervalMs != null ? `, intervalMs: ${health.intervalMs}` : ""}}`;
  const envYaml = JSON.stringify({ ...env, ...(stampListen ? { BENCH_LISTEN_LOG: listenLog } : {}) });
  await fs.writeFile(
    config,
    `application: bench-${path.basename(dir).slice(-6).toLowerCase()}
control: {path: ${socket}}
proxy: {host: 127.0.0.1, port: ${proxyPort}, drainTimeoutMs: ${drainTimeoutMs}${proxyYaml ? `, ${proxyYaml}` : ""}}
processes:
  - id: web
    policy: proxied
    command: node ${stampListen ? `--import ${preload} ` : ""}${appFile}
    env: ${envYaml}
    port: {from: ${appPortStart}, to: ${appPortStart + 9}}
    health: ${healthYaml}
    gracefulStopMs: ${gracefulStopMs}
${replicas ? `    replicas: ${replicas}\n` : ""}${extraProcesses}${extraConfig}`,
  );

  const cli = (args, timeoutMs = 60_000) => tracker.execCli([...args, "--config", config], { cwd: dir, timeout: timeoutMs });
  const events = new EventLog(daemonLog);
  const appPids = new Set();
  let listenLinesSeen = 0;
  let child = null;
  let daemonPid = null;

  const d = {
    dir,
    config,
    proxyPort,
    launch,
    nodeFlags: launch === "daemon" ? nodeFlags : null,
    get daemonPid() {
      return daemonPid;
    },
    get events() {
      return events.read();
    },
    cli,
    async status() {
      const r = await cli(["status", "--json"], 10_000);
      if (r.code !== 0) throw new Error(`rollbridge status failed: ${r.stderr}`);
      const s = JSON.parse(r.stdout);
      for (const p of s.processes) if (typeof p.pid === "number") appPids.add(p.pid);
      return s;
    },
    /** The first running proxied instance: {pid, port, instanceId}. */
    async app() {
      const status = await d.status();
      const app = status.processes.find((p) => p.policy === "proxied" && p.state === "running") ?? status.processes[0];
      if (!app?.port) throw new Error(`no running proxied process in status: ${JSON.stringify(status.processes)}`);
      return app;
    },
    /**
     * `rollbridge apply --release-path <release> --wait`, then the deploy's numbers from the
     * events: the CLI's wall time (from its spawn to its exit) and where the switch fell in it.
     */
    async deploy(release) {
      const since = events.lastSeq();
      const cliStartedAt = Date.now();
      const r = await cli(["apply", "--release-path", path.join(dir, "releases", release), "--wait"]);
      const cliExitedAt = Date.now();
      if (r.code !== 0) throw new Error(`apply ${release} failed (exit ${r.code}):\n${r.stderr}`);
      const switched = await waitForEvent(events, (e) => e.seq > since && e.type === "traffic-switched", 5000);
      const mine = events.read().filter((e) => e.seq > since && e.seq <= switched.seq);
      const healthy = mine.filter((e) => e.type === "process-healthy").at(-1);
      const rolloutStarted = mine.find((e) => e.type === "rollout-started");
      const started = mine.filter((e) => e.type === "process-started").at(-1);
      if (started?.data?.pid) appPids.add(started.data.pid);
      const desiredMtime = statSync(desiredFile).mtimeMs;
      const switchedAt = Date.parse(switched.at);
      let listenAt = null;
      if (stampListen) {
        const listenLines = (await fs.readFile(listenLog, "utf8")).split("\n").filter(Boolean);
        const fresh = listenLines
          .slice(listenLinesSeen)
          .map((l) => l.split(" "))
          .filter(([id]) => id === release);
        listenLinesSeen = listenLines.length;
        listenAt = fresh.length ? Number(fresh.at(-1)[2]) : null;
      }
      const bootMs = healthy?.data?.ms ?? null;
      const writeToSwitchedMs = Math.round(switchedAt - desiredMtime);
      return {
        release,
        switchLatencyMs: switched.data?.switchLatencyMs ?? null,
        rolloutMs: switched.data?.rolloutMs ?? null,
        bootMs,
        listenToSwitchedMs: listenAt == null ? null : switchedAt - listenAt,
        // the app's own boot inside the deploy: the daemon's spawn to the app's listen
        spawnToListenMs: listenAt == null || !started ? null : listenAt - Date.parse(started.at),
        writeToSwitchedMs,
        writeToRolloutStartMs: rolloutStarted ? Math.round(Date.parse(rolloutStarted.at) - desiredMtime) : null,
        writeToSwitchedMinusBootMs: bootMs == null ? null : writeToSwitchedMs - bootMs,
        cliWallMs: cliExitedAt - cliStartedAt,
        cliStartToRolloutStartMs: rolloutStarted ? Date.parse(rolloutStarted.at) - cliStartedAt : null,
        cliStartToSwitchedMs: switchedAt - cliStartedAt,
        switchedToCliExitMs: cliExitedAt - switchedAt,
      };
    },
    async stop() {
      try {
        for (const p of (await d.status()).processes) if (typeof p.pid === "number") appPids.add(p.pid);
      } catch {
        // daemon already gone
      }
      if (stopDaemon) await stopDaemon();
      else if (child) await tracker.stop(child, 15_000);
      else if (daemonPid) await tracker.stopPid(daemonPid, 15_000);
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

  try {
    if (launch === "daemon") {
      const [command, args] = place(process.execPath, [...nodeFlags, CLI, "daemon", "--config", config]);
      if (spawnDaemon) {
        child = spawnDaemon(command, args, { cwd: dir, env: process.env });
        const log = createWriteStream(daemonLog, { flags: "a" });
        child.stdout.pipe(log, { end: false });
        child.stderr.pipe(log, { end: false });
      } else {
        const fd = openSync(daemonLog, "a");
        try {
          child = tracker.spawn(command, args, { cwd: dir, stdio: ["ignore", fd, fd] });
        } finally {
          closeSync(fd);
        }
      }
      daemonPid = child.pid;
      const deadline = Date.now() + 15_000;
      while (!(await canConnect(socket))) {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`daemon exited with ${child.exitCode ?? child.signalCode}: ${events.tail()}`);
        if (Date.now() > deadline) throw new Error(`daemon did not open its control socket within 15 s: ${events.tail()}`);
        await sleep(50);
      }
      // The process that serves: started without V8 flags, the daemon starts again with its own
      // (src/cli/daemon-heap.ts), as a child of this one where Node lacks process.execve.
      daemonPid = (await d.status()).daemonPid;
    } else if (launch === "ensure-daemon") {
      const pidFile = path.join(dir, "daemon.pid");
      const r = await cli(["ensure-daemon", "--daemon-log-path", daemonLog, "--daemon-pid-path", pidFile], 40_000);
      if (existsSync(pidFile)) daemonPid = Number((await fs.readFile(pidFile, "utf8")).trim());
      tracker.adopt(daemonPid);
      if (r.code !== 0) throw new Error(`rollbridge ensure-daemon failed (exit ${r.code}): ${r.stderr}`);
    } else {
      throw new Error(`unknown launch ${launch}: one of ${LAUNCHES.join(", ")}`);
    }
  } catch (error) {
    await d.stop();
    throw error;
  }
  return d;
}

/**
 * A singleton `ticker` (YAML for `extraProcesses`) that appends a line to a file at each start,
 * so a benchmark can tell it never ran twice: {dir, yaml, starts()}; `dir` is a temp directory
 * of the tracker's, free for the run's other files.
 */
export async function countedSingleton(tracker, prefix) {
  const dir = tracker.tempDir(await fs.mkdtemp(path.join(os.tmpdir(), prefix)));
  const file = path.join(dir, "singleton-starts");
  const yaml = `  - id: ticker\n    policy: singleton\n    command: sh -c 'echo start >> ${file}; while :; do echo tick; sleep 0.05; done'\n    gracefulStopMs: 1000\n`;
  return { dir, yaml, starts: async () => (await fs.readFile(file, "utf8")).split("\n").filter(Boolean).length };
}

/** Waits until an event matching `match` appears in the daemon's log. */
export async function waitForEvent(events, match, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = events.read().find(match);
    if (found) return found;
    if (Date.now() > deadline) throw new Error("timed out waiting for an event in the daemon's log");
    await sleep(20);
  }
}

/** The default health interval of the built daemon (dist/config/constants.js), or null. */
export async function loadDefaultIntervalMs() {
  try {
    const constants = await import(pathToFileURL(path.join(root, "dist/config/constants.js")).href);
    return constants.DEFAULTS?.health?.intervalMs ?? null;
  } catch {
    return null;
  }
}

export function canConnect(socket) {
  return new Promise((resolve) => {
    const s = typeof socket === "number" ? net.connect(socket, "127.0.0.1") : net.connect(socket);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

// The daemon's log (stdout and stderr): JSON event lines, read incrementally; other lines are
// kept for error messages.
class EventLog {
  #file;
  #offset = 0;
  #partial = "";
  #events = [];
  #other = [];

  constructor(file) {
    this.#file = file;
  }

  read() {
    let fd;
    try {
      fd = openSync(this.#file, "r");
    } catch {
      return this.#events;
    }
    try {
      const buffer = Buffer.alloc(64 * 1024);
      for (;;) {
        const n = readSync(fd, buffer, 0, buffer.length, this.#offset);
        if (n <= 0) break;
        this.#offset += n;
        this.#partial += buffer.toString("utf8", 0, n);
      }
    } finally {
      closeSync(fd);
    }
    let nl;
    while ((nl = this.#partial.indexOf("\n")) >= 0) {
      const line = this.#partial.slice(0, nl);
      this.#partial = this.#partial.slice(nl + 1);
      try {
        this.#events.push(JSON.parse(line));
      } catch {
        this.#other.push(line);
      }
    }
    return this.#events;
  }

  lastSeq() {
    return this.read().at(-1)?.seq ?? 0;
  }

  tail() {
    this.read();
    return [...this.#other.slice(-10), this.#partial].join("\n");
  }
}

// A preload for the app (node --import): appends "<releaseId> <pid> <epoch ms>" to
// BENCH_LISTEN_LOG when an http server starts listening, so a bench knows when the app was
// really ready, independently of the daemon's health probes.
export const LISTEN_STAMP = `import http from "node:http";
import { appendFileSync } from "node:fs";
const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (...args) {
  this.once("listening", () => {
    if (process.env.BENCH_LISTEN_LOG) appendFileSync(process.env.BENCH_LISTEN_LOG, \`\${process.env.ROLLBRIDGE_RELEASE_ID} \${process.pid} \${Date.now()}\\n\`);
  });
  return listen.apply(this, args);
};
`;
