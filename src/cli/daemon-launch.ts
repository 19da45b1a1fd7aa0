// `ensure-daemon` and `deploy --ensure-daemon`: start a detached daemon unless one answers on
// the control socket. A lock file (`<socket>.lock`, created with O_EXCL) makes concurrent
// callers start at most one daemon; a lock left by a dead caller is taken over.
import { spawn } from "node:child_process";
import { closeSync, openSync, promises as fs } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { LoadedConfig } from "../config/load.js";
import { request } from "../control/client.js";
import { socketAnswers } from "../control/socket.js";
import { RollbridgeError, errorMessage } from "../errors.js";

export interface EnsureOptions {
  /** Where the detached daemon's stdout/stderr are appended (default /tmp/rollbridge-<application>.log). */
  logPath?: string | undefined;
  /** Write the daemon's pid here (also when it was already running). */
  pidPath?: string | undefined;
  /** How long to wait for a started daemon to answer. */
  startTimeoutMs?: number;
}

export interface EnsureResult {
  started: boolean;
  pid: number;
  socket: string;
  logPath: string;
  pidPath: string | null;
}

const LOCK_STALE_MS = 60_000;
const MAIN = fileURLToPath(new URL("./main.js", import.meta.url));

export function defaultLogPath(application: string): string {
  return `/tmp/rollbridge-${application}.log`;
}

/** Makes sure a daemon answers on the config's control socket; starts one when none does. */
export async function ensureDaemon(loaded: LoadedConfig, options: EnsureOptions = {}): Promise<EnsureResult> {
  const socket = loaded.config.control.path;
  const logPath = path.resolve(options.logPath ?? defaultLogPath(loaded.config.application));
  const pidPath = options.pidPath ? path.resolve(options.pidPath) : null;
  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  const lockPath = `${socket}.lock`;
  await fs.mkdir(path.dirname(socket), { recursive: true });

  for (;;) {
    const running = await runningPid(socket);
    if (running !== null) return finish({ started: false, pid: running, socket, logPath, pidPath });
    if (await takeLock(lockPath)) {
      try {
        // Someone may have started it between our check and the lock.
        const again = await runningPid(socket);
        if (again !== null) return await finish({ started: false, pid: again, socket, logPath, pidPath });
        const pid = await startDetached(loaded, logPath, socket, deadline);
        return await finish({ started: true, pid, socket, logPath, pidPath });
      } finally {
        await fs.unlink(lockPath).catch(() => undefined);
      }
    }
    // Another ensure-daemon holds the lock: wait for its daemon (or for the lock to go).
    if (Date.now() > deadline) {
      throw new RollbridgeError("DAEMON_START_FAILED", `timed out waiting for another ensure-daemon (lock ${lockPath})`, { fix: `if no rollbridge command is running, remove ${lockPath}` });
    }
    await sleep(100);
  }
}

async function finish(result: EnsureResult): Promise<EnsureResult> {
  if (result.pidPath) {
    await fs.mkdir(path.dirname(result.pidPath), { recursive: true });
    const tmp = `${result.pidPath}.${process.pid}.tmp`;
    await fs.writeFile(tmp, `${result.pid}\n`);
    await fs.rename(tmp, result.pidPath);
  }
  return result;
}

/** The pid of the daemon answering on `socket`, or null when none answers. */
export async function runningPid(socket: string): Promise<number | null> {
  if (!(await socketAnswers(socket, 1000))) return null;
  try {
    const status = await request<{ daemonPid: number }>(socket, "GET", "/status", undefined, 5000);
    return status.daemonPid;
  } catch {
    return null;
  }
}

async function takeLock(lockPath: string): Promise<boolean> {
  try {
    const handle = await fs.open(lockPath, "wx", 0o600);
    await handle.writeFile(`${process.pid}\n`);
    await handle.close();
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  // Held: take it over only when its owner is gone or it is very old.
  try {
    const [text, stat] = await Promise.all([fs.readFile(lockPath, "utf8"), fs.stat(lockPath)]);
    const owner = Number(text.trim());
    const ownerAlive = Number.isInteger(owner) && owner > 0 && isAlive(owner);
    if (!ownerAlive || Date.now() - stat.mtimeMs > LOCK_STALE_MS) {
      await fs.unlink(lockPath).catch(() => undefined);
      return takeLock(lockPath);
    }
  } catch {
    // vanished between open and read: try again on the next round
  }
  return false;
}

async function startDetached(loaded: LoadedConfig, logPath: string, socket: string, deadline: number): Promise<number> {
  await fs.mkdir(path.dirname(logPath), { recursive: true });
  const fd = openSync(logPath, "a", 0o640);
  let child;
  try {
    // A smaller V8 young generation keeps the daemon's RSS under proxy load ~15 MB lower at
    // the same throughput (docs/systemd.md); it can only be set when Node starts.
    const nodeFlags = process.env.NODE_OPTIONS?.includes("--max-semi-space-size") ? [] : ["--max-semi-space-size=2"];
    child = spawn(process.execPath, [...nodeFlags, MAIN, "daemon", "--config", loaded.path], {
      detached: true,
      stdio: ["ignore", fd, fd],
      cwd: loaded.dir,
      env: process.env,
    });
  } finally {
    closeSync(fd);
  }
  let exited: string | null = null;
  child.once("exit", (code, signal) => (exited = signal ? `signal ${signal}` : `code ${code}`));
  child.once("error", (error) => (exited = errorMessage(error)));
  child.unref();
  const pid = child.pid;
  while (Date.now() < deadline && exited === null) {
    if (pid !== undefined && (await runningPid(socket)) === pid) return pid;
    await sleep(100);
  }
  const tail = await lastLines(logPath, 15);
  const why = exited !== null ? `the daemon exited (${exited})` : `no answer on ${socket} in time`;
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

/** The last `n` non-empty lines of a (possibly large) log file: reads only its last 64 KiB. */
async function lastLines(file: string, n: number): Promise<string[]> {
  try {
    const handle = await fs.open(file, "r");
    try {
      const { size } = await handle.stat();
      const length = Math.min(size, 64 * 1024);
      const buffer = Buffer.alloc(length);
      await handle.read(buffer, 0, length, size - length);
      return buffer.toString("utf8").split("\n").filter((l) => l.trim() !== "").slice(-n);
    } finally {
      await handle.close();
    }
  } catch {
    return [];
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
