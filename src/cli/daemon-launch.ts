// `ensure-daemon` and `deploy --ensure-daemon`: start a detached daemon unless one answers on
// the control socket. A lock file (`<socket>.lock`, created with O_EXCL) makes concurrent
// callers start at most one daemon; a lock of ours whose owner is gone is taken over, a lock of
// another user (or from the future) is reported and left alone. The defaults — socket, lock, log
// and pid file — are in the private runtime directory; every file is opened through safe-file.ts.
// The pid file only ever holds a pid this command started, or one verified to hold the socket.
import { spawn } from "node:child_process";
import { lstat, mkdir, unlink } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { LoadedConfig } from "../config/load.js";
import { defaultDaemonLogPath, defaultPidPath, ensurePrivateDir, runtimeDir } from "../config/runtime-dir.js";
import { probe, request, socketHeldBy, type ControlEndpoint } from "../control/client.js";
import { RollbridgeError, errorMessage } from "../errors.js";
import { readIdentity } from "../process/identity.js";
import { createExclusive, describeOwner, euid, fileKind, lookupGid, openAppend, openTrustedRead, readTrusted, unsafe, writeAtomic } from "../safe-file.js";
import { endpointFor } from "./context.js";
import { daemonEnvironment } from "./daemon-env.js";
import { missingHeapFlags } from "./daemon-heap.js";

export interface EnsureOptions {
  /** Where the detached daemon's stdout/stderr are appended (default: daemon.log in the private runtime directory). */
  logPath?: string | undefined;
  /** Where the daemon's pid is recorded (default: daemon.pid in the private runtime directory). */
  pidPath?: string | undefined;
  /** Pass this process's whole environment to the daemon instead of the minimal one (daemon-env.ts). */
  inheritEnv?: boolean;
  /** How long to wait for a started daemon to answer. */
  startTimeoutMs?: number;
}

export interface EnsureResult {
  started: boolean;
  pid: number;
  socket: string;
  logPath: string;
  pidPath: string;
  /** Whether `pid` was written to `pidPath`: always when started; otherwise only when it was verified to hold the socket. */
  pidRecorded: boolean;
  /** Why the pid was not recorded, when it was not. */
  note: string | null;
}

const LOCK_STALE_MS = 60_000;
/** A lock's mtime this far ahead of our clock is not a clock skew of a few ms: it is not trusted. */
const LOCK_FUTURE_SLACK_MS = 5_000;
const MAIN = fileURLToPath(new URL("./main.js", import.meta.url));

/** Makes sure a daemon answers on the config's control socket; starts one when none does. */
export async function ensureDaemon(loaded: LoadedConfig, options: EnsureOptions = {}): Promise<EnsureResult> {
  const config = loaded.config;
  const application = config.application;
  const own: ControlEndpoint = { path: config.control.path, owner: config.control.owner };
  // A socket at one of the default places (a root daemon's, for a group member) counts as running.
  const found = await endpointFor(config);
  const logPath = path.resolve(options.logPath ?? defaultDaemonLogPath(application));
  const pidPath = path.resolve(options.pidPath ?? defaultPidPath(application));
  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  const lockPath = `${own.path}.lock`;
  // The private directory is created (or checked) only when something default goes into it.
  const privateDir = runtimeDir(application);
  const gid = config.control.group === undefined ? undefined : (lookupGid(config.control.group) ?? undefined);
  const prepare = async (file: string) => {
    if (path.dirname(file) === privateDir) await ensurePrivateDir(privateDir, { gid });
    else await mkdir(path.dirname(file), { recursive: true });
  };
  await prepare(lockPath);

  for (;;) {
    const running = (await runningPid(found)) ?? (found.path === own.path ? null : await runningPid(own));
    if (running !== null) return finish({ started: false, pid: running.pid, socket: running.socket, logPath, pidPath }, prepare);
    if (await takeLock(lockPath)) {
      try {
        // Someone may have started it between our check and the lock.
        const again = await runningPid(own);
        if (again !== null) return await finish({ started: false, pid: again.pid, socket: again.socket, logPath, pidPath }, prepare);
        await prepare(logPath);
        const pid = await startDetached(loaded, logPath, pidPath, own, deadline, options.inheritEnv === true);
        return await finish({ started: true, pid, socket: own.path, logPath, pidPath }, prepare);
      } finally {
        await unlink(lockPath).catch(() => undefined);
      }
    }
    // Another ensure-daemon holds the lock: wait for its daemon (or for the lock to go).
    if (Date.now() > deadline) {
      throw new RollbridgeError("DAEMON_START_FAILED", `timed out waiting for another ensure-daemon (lock ${lockPath})`, { fix: `if no rollbridge command is running, remove ${lockPath}` });
    }
    await sleep(100);
  }
}

/** The pid of the daemon answering on `endpoint`, or null when none answers. */
export async function runningPid(endpoint: ControlEndpoint): Promise<{ pid: number; socket: string } | null> {
  if (!(await probe(endpoint, 1000))) return null;
  try {
    const status = await request<{ daemonPid: number }>(endpoint, "GET", "/status", undefined, 5000);
    return { pid: status.daemonPid, socket: endpoint.path };
  } catch {
    return null;
  }
}

/** Records the pid: one this command started, or one verified (through /proc) to hold the socket. */
async function finish(result: { started: boolean; pid: number; socket: string; logPath: string; pidPath: string }, prepare: (file: string) => Promise<void>): Promise<EnsureResult> {
  let note: string | null = null;
  if (!result.started) {
    const held = Number.isInteger(result.pid) && result.pid > 0 ? await socketHeldBy(result.socket, result.pid) : false;
    if (held === false) note = `the daemon on ${result.socket} says it is pid ${result.pid}, but that process does not hold the socket: not recorded in ${result.pidPath}`;
    if (held === null) note = `cannot check that pid ${result.pid} holds ${result.socket} (it runs as another user): not recorded in ${result.pidPath}`;
  }
  if (note === null) {
    await prepare(result.pidPath);
    await writeAtomic(result.pidPath, `${result.pid}\n`, { mode: 0o644, purpose: "write the pid file" });
  }
  return { ...result, pidRecorded: note === null, note };
}

/**
 * Creates the lock, or decides about the one that is there: ours and its owner gone (or very old) →
 * taken over; another user's, not a regular file, or an mtime in the future → UNSAFE_PATH (never
 * taken over, never trusted as "stale"); ours and alive → false (wait).
 */
async function takeLock(lockPath: string): Promise<boolean> {
  try {
    const handle = await createExclusive(lockPath, 0o600);
    await handle.writeFile(`${process.pid}\n`);
    await handle.close();
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  const stat = await lstat(lockPath).catch(() => null);
  if (stat === null) return false; // vanished: try again on the next round
  if (!stat.isFile()) throw unsafe(lockPath, `the ensure-daemon lock is ${fileKind(stat)} owned by ${describeOwner(stat.uid)}, not a lock file Rollbridge wrote`, `remove it (rm ${lockPath}), then run ensure-daemon again`);
  if (stat.uid !== euid()) {
    throw unsafe(
      lockPath,
      `the ensure-daemon lock is owned by ${describeOwner(stat.uid)}, not by ${describeOwner(euid())}: not trusted and not taken over`,
      `if no rollbridge command of that user is running, remove it (rm ${lockPath}); keep control.path in a directory only the daemon's user can write (the default)`,
    );
  }
  if (stat.mtimeMs > Date.now() + LOCK_FUTURE_SLACK_MS) {
    throw unsafe(
      lockPath,
      `the ensure-daemon lock has a modification time in the future (${new Date(stat.mtimeMs).toISOString()}): not trusted and not taken over`,
      `check the clock, then remove it (rm ${lockPath}) if no rollbridge command is running`,
    );
  }
  const read = await readTrusted(lockPath, { purpose: "read the ensure-daemon lock", maxBytes: 4096 }).catch(() => null);
  if (read === null) return false;
  const owner = Number(read.text.trim());
  const ownerAlive = Number.isInteger(owner) && owner > 0 && (await readIdentity(owner)) !== null;
  if (!ownerAlive || Date.now() - read.stat.mtimeMs > LOCK_STALE_MS) {
    await unlink(lockPath).catch(() => undefined);
    return takeLock(lockPath);
  }
  return false;
}

async function startDetached(loaded: LoadedConfig, logPath: string, pidPath: string, socket: ControlEndpoint, deadline: number, inheritEnv: boolean): Promise<number> {
  const log = await openAppend(logPath, { mode: 0o600, purpose: "append the daemon's output to" });
  let child;
  try {
    // The daemon's V8 flags (daemon-heap.ts, docs/systemd.md): they can only be set when Node
    // starts, so passing them here saves the daemon starting again; NODE_OPTIONS' own win.
    const nodeFlags = missingHeapFlags([], process.env.NODE_OPTIONS);
    child = spawn(process.execPath, [...nodeFlags, MAIN, "daemon", "--config", loaded.path], {
      detached: true,
      stdio: ["ignore", log.fd, log.fd],
      cwd: loaded.dir,
      // The pid file goes with the daemon, so a new daemon started by `upgrade` takes it over.
      env: { ...daemonEnvironment(process.env, loaded.config, inheritEnv), ROLLBRIDGE_DAEMON_PID_FILE: pidPath },
    });
  } finally {
    await log.close();
  }
  let exited: string | null = null;
  child.once("exit", (code, signal) => (exited = signal ? `signal ${signal}` : `code ${code}`));
  child.once("error", (error) => (exited = errorMessage(error)));
  child.unref();
  const pid = child.pid;
  while (Date.now() < deadline && exited === null) {
    if (pid !== undefined && (await runningPid(socket).catch(() => null))?.pid === pid) return pid;
    await sleep(100);
  }
  const tail = await lastLines(logPath, 15);
  const why = exited !== null ? `the daemon exited (${exited})` : `no answer on ${socket.path} in time`;
  if (exited === null && pid !== undefined) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // already gone
    }
  }
  throw new RollbridgeError("DAEMON_START_FAILED", `could not start the daemon: ${why}; its log ${logPath} ends with:\n${tail.map((l) => `  | ${l}`).join("\n") || "  (empty)"}`, {
    fix: "run `rollbridge doctor` to check the socket, ports and config",
    details: { logPath, tail },
  });
}

/** The last `n` non-empty lines of a (possibly large) log file: reads only its last 64 KiB, never through a link. */
async function lastLines(file: string, n: number): Promise<string[]> {
  try {
    const opened = await openTrustedRead(file, { purpose: "read the daemon log" });
    if (opened === null) return [];
    try {
      const { size } = opened.stat;
      const length = Math.min(size, 64 * 1024);
      const buffer = Buffer.alloc(length);
      await opened.handle.read(buffer, 0, length, size - length);
      return buffer
        .toString("utf8")
        .split("\n")
        .filter((l) => l.trim() !== "")
        .slice(-n);
    } finally {
      await opened.handle.close();
    }
  } catch {
    return [];
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
