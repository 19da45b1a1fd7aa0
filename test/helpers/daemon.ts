// Starting a real daemon (the built CLI) in a temp dir for integration tests, and stopping
// it and everything it started, by pid.
import { execFile, spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { promises as fs, readFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { releaseDir, writeTestConfig } from "./test-config.js";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const CLI = path.join(ROOT, "dist/cli/main.js");
// Many tests import these from here, next to startDaemon.
export { FIXTURE_APP, FIXTURE_WORKER, freePort, portRange } from "./test-config.js";

export interface TestDaemon {
  dir: string;
  configPath: string;
  socket: string;
  proxyPort: number;
  desiredPath: string;
  child: ChildProcess;
  stdout: string[];
  /** Runs the CLI against this daemon's config. */
  cli(args: string[], options?: { input?: string; timeoutMs?: number }): Promise<CliResult>;
  release(name: string): Promise<string>;
  /** Creates release `name` and applies it with `apply --release-path <dir> --wait`; rejects, with the CLI's output, unless that exits 0. */
  applyRelease(name: string): Promise<string>;
  status(): Promise<any>;
  stop(): Promise<void>;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], options: { cwd?: string; input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], { cwd: options.cwd, timeout: options.timeoutMs ?? 60_000, env: options.env ?? process.env, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as NodeJS.ErrnoException & { code?: unknown }).code === "number" ? (error as unknown as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
    else child.stdin?.end();
  });
}

export interface DaemonSetup {
  /** YAML for the processes list (indented as a list under `processes:`), {{APP}} / {{WORKER}} replaced. */
  processes?: string;
  /** Extra top-level YAML. */
  extra?: string;
  proxy?: Record<string, number | string>;
  /** Initial desired.yaml content (written before the daemon starts). */
  desired?: string;
  startDaemon?: boolean;
  /** Extra environment for the daemon (visible to templates as {{env.NAME}}). */
  daemonEnv?: Record<string, string>;
  /** The periodic resync (default 1000 ms here). */
  resyncIntervalMs?: number;
  /** Extra `control:` fields (mode, owner, group), next to the socket path. */
  control?: Record<string, string | number>;
  /** Runs after the files are written, before the daemon starts (e.g. to leave a stale socket). */
  beforeStart?: (paths: { dir: string; socket: string; configPath: string }) => Promise<void>;
  /** The proxy port (default: a free one). */
  proxyPort?: number;
  /** Starts the daemon's command instead of a plain spawn (e.g. under a socket holder); its stdout/stderr must be pipes. */
  spawnDaemon?: (command: string, args: string[], options: SpawnOptions) => ChildProcess;
  /** Stops the daemon instead of a SIGTERM to the spawned child (which then may not be the daemon). */
  stopDaemon?: () => Promise<void>;
}

export async function startDaemon(setup: DaemonSetup = {}): Promise<TestDaemon> {
  const { dir, configPath, socket, proxyPort } = await writeTestConfig({
    control: setup.control,
    proxyPort: setup.proxyPort,
    proxy: { drainTimeoutMs: 5000, healthTimeoutMs: 10000, forceStopTimeoutMs: 3000, holdTimeoutMs: 5000, ...setup.proxy },
    extra: [`resyncIntervalMs: ${setup.resyncIntervalMs ?? 1000}`, setup.extra ?? ""].join("\n"),
    processes: setup.processes,
  });
  const desiredPath = path.join(dir, "desired.yaml");
  if (setup.desired) await fs.writeFile(desiredPath, setup.desired);
  await setup.beforeStart?.({ dir, socket, configPath });

  const stdout: string[] = [];
  const spawnDaemon = setup.spawnDaemon ?? spawn;
  const child = spawnDaemon(process.execPath, [CLI, "daemon", "--config", configPath], { cwd: dir, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...setup.daemonEnv } });
  let buffered = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split("\n");
    buffered = lines.pop() ?? "";
    stdout.push(...lines);
  });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));

  const daemon: TestDaemon = {
    dir,
    configPath,
    socket,
    proxyPort,
    desiredPath,
    child,
    stdout,
    cli: (args, options = {}) => runCli([...args, "--config", configPath], { cwd: dir, ...options }),
    release: (name: string) => releaseDir(dir, name),
    async applyRelease(name: string) {
      const releasePath = await releaseDir(dir, name);
      const applied = await daemon.cli(["apply", "--release-path", releasePath, "--wait"]);
      if (applied.code !== 0) throw new Error(`apply --wait of ${name} exited ${applied.code}: ${applied.stderr}${applied.stdout}`);
      return releasePath;
    },
    // The same document `rollbridge status --json` prints (it is GET /v1/status verbatim), read
    // straight from the control socket: a CLI start per poll made the suite minutes slower.
    async status() {
      const document = await controlGet(socket, "/status");
      await stdoutCaughtUp(socket, stdout);
      return document;
    },
    async stop() {
      let pids: number[] = [];
      try {
        const s = await daemon.status();
        pids = s.processes.map((p: { pid: number | null }) => p.pid).filter((p: number | null): p is number => typeof p === "number");
      } catch {
        // daemon already gone
      }
      if (setup.stopDaemon) {
        await setup.stopDaemon();
      } else if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const exited = await waitForExit(child, 15_000);
        if (!exited) child.kill("SIGKILL");
      }
      for (const pid of pids) {
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
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}: ${stderr}`);
    if (await canConnect(socket)) return daemon;
    await sleep(50);
  }
  child.kill("SIGKILL");
  throw new Error(`daemon did not open its control socket in time: ${stderr}`);
}

export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Whether a connection to `target` (a unix socket path, or a port on 127.0.0.1) is accepted now. */
export function canConnect(target: string | number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = typeof target === "number" ? net.connect(target, "127.0.0.1") : net.connect(target);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** One event of the daemon's log (a JSON line on its stdout). */
export interface DaemonEvent {
  seq: number;
  type: string;
  message: string;
  at: string;
  releaseId?: string;
  data?: Record<string, unknown>;
}

/** The events the daemon has printed so far, optionally only those of one type. */
export function daemonEvents(d: TestDaemon, type?: string): DaemonEvent[] {
  const all = d.stdout.flatMap((line) => {
    try {
      return [JSON.parse(line) as DaemonEvent];
    } catch {
      return [];
    }
  });
  return type ? all.filter((e) => e.type === type) : all;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Is the process alive? Read from /proc: a zombie (PID 1 here does not reap) counts as gone. */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** One GET of the daemon's control API (JSON), as the CLI sends it. */
/**
 * GET on the control socket. A fresh connection per request by default, as each CLI run makes
 * (Node's global agent would keep one alive and reuse it, also to a daemon killed since);
 * pass a keep-alive `agent` to act as a long-lived client.
 */
export function controlGet(socketPath: string, route: string, timeoutMs = 10_000, agent: http.Agent | false = false): Promise<any> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: `/v1${route}`, timeout: timeoutMs, agent }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => {
        if ((res.statusCode ?? 500) >= 400) return reject(new Error(`GET ${route} answered ${res.statusCode}: ${body}`));
        try {
          resolve(JSON.parse(body));
        } catch (error) {
          reject(error as Error);
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${route} timed out`)));
    req.on("error", reject);
  });
}

/**
 * Waits (briefly) until the daemon's stdout, as read so far, holds every event it had recorded
 * when the status was read, so a test that reads status and then `daemonEvents` sees both agree.
 */
async function stdoutCaughtUp(socketPath: string, stdout: string[]): Promise<void> {
  let latest: number;
  try {
    const { events } = await controlGet(socketPath, "/events?limit=1");
    latest = events.at(-1)?.seq ?? 0;
  } catch {
    return;
  }
  const deadline = Date.now() + 2000;
  while (Date.now() < deadline) {
    for (let i = stdout.length - 1; i >= 0; i--) {
      try {
        const seq = (JSON.parse(stdout[i]!) as { seq?: number }).seq;
        if (typeof seq === "number") {
          if (seq >= latest) return;
          break;
        }
      } catch {
        // not an event line
      }
    }
    await sleep(10);
  }
}

/** Polls the daemon's status until `check` holds for it; returns that status document. */
export function statusWhen(d: Pick<TestDaemon, "status">, check: (s: any) => boolean, timeoutMs = 15_000, what = "status condition"): Promise<any> {
  return until(
    async () => {
      const s = await d.status();
      return check(s) ? s : null;
    },
    timeoutMs,
    what,
  );
}

/** Polls `check` until it returns a truthy value or the time is up. */
export async function until<T>(check: () => Promise<T> | T, timeoutMs = 15_000, what = "condition"): Promise<Exclude<T, null | undefined | false | 0 | "">> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value as Exclude<T, null | undefined | false | 0 | "">;
    } catch (error) {
      last = error;
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

export { execFile };
