// Where Rollbridge keeps what it creates by default: never in a world-writable directory.
// As root, `/run/rollbridge/<application>/` (state in `/var/lib/rollbridge/<application>/`);
// otherwise `$XDG_RUNTIME_DIR/rollbridge/<application>/` when that directory is really the
// user's, else `$XDG_STATE_HOME/rollbridge/<application>/` (default `~/.local/state`), which
// also holds the state. The private directory holds the control socket (control.sock), the
// ensure-daemon lock (control.sock.lock), the pid file (daemon.pid) and the daemon log
// (daemon.log); the base directory holds one record per running daemon's config file, so the
// CLI finds the daemon even when that file no longer parses.
import { createHash } from "node:crypto";
import { statSync, type Stats } from "node:fs";
import { chmod, chown, lstat, mkdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { RollbridgeError } from "../errors.js";
import { describeOwner, euid, fileKind } from "../safe-file.js";

/** Who is asking and with which environment: the inputs of every default path. */
export interface PathContext {
  uid: number;
  env: Record<string, string | undefined>;
  home: string;
}

/** The runtime base of a root daemon; non-root CLIs look here too (a root daemon with control.group). */
export const ROOT_RUNTIME_BASE = "/run/rollbridge";

/** The state base of a root daemon. */
export const ROOT_STATE_BASE = "/var/lib/rollbridge";

/** The file names inside the private directory. */
export const RUNTIME_FILES = { socket: "control.sock", log: "daemon.log", pid: "daemon.pid", state: "state.json" } as const;

// This process: its effective uid, its environment, its home directory.
export function currentPathContext(): PathContext {
  return { uid: euid(), env: process.env, home: os.homedir() };
}

/** The directory that holds the private directories (and the config records). */
export function runtimeBase(ctx: PathContext = currentPathContext()): string {
  if (ctx.uid === 0) return ROOT_RUNTIME_BASE;
  const xdg = usableRuntimeDir(ctx);
  return xdg === null ? stateBase(ctx) : path.join(xdg, "rollbridge");
}

/** Where persistent state lives by default (statePath: true). */
export function stateBase(ctx: PathContext = currentPathContext()): string {
  if (ctx.uid === 0) return ROOT_STATE_BASE;
  const home = ctx.env["XDG_STATE_HOME"];
  return path.join(home && path.isAbsolute(home) ? home : path.join(ctx.home, ".local", "state"), "rollbridge");
}

/** The private runtime directory of an application. */
export function runtimeDir(application: string, ctx: PathContext = currentPathContext()): string {
  return path.join(runtimeBase(ctx), application);
}

/** The private state directory of an application. */
export function stateDir(application: string, ctx: PathContext = currentPathContext()): string {
  return path.join(stateBase(ctx), application);
}

// The control socket when control.path is not set.
export function defaultControlPath(application: string, ctx: PathContext = currentPathContext()): string {
  return path.join(runtimeDir(application, ctx), RUNTIME_FILES.socket);
}

// Where ensure-daemon appends the daemon's output when --daemon-log-path is not given.
export function defaultDaemonLogPath(application: string, ctx: PathContext = currentPathContext()): string {
  return path.join(runtimeDir(application, ctx), RUNTIME_FILES.log);
}

// Where ensure-daemon records the daemon's pid when --daemon-pid-path is not given.
export function defaultPidPath(application: string, ctx: PathContext = currentPathContext()): string {
  return path.join(runtimeDir(application, ctx), RUNTIME_FILES.pid);
}

// The state file of `statePath: true`.
export function defaultStatePath(application: string, ctx: PathContext = currentPathContext()): string {
  return path.join(stateDir(application, ctx), RUNTIME_FILES.state);
}

/**
 * Where the default control socket may be, most likely first: this user's runtime directory,
 * the fallback under ~/.local/state (a daemon started without XDG_RUNTIME_DIR), and, for a
 * user other than root, a root daemon's (/run/rollbridge, reachable with control.group).
 */
export function defaultControlCandidates(application: string, ctx: PathContext = currentPathContext()): string[] {
  const candidates = [defaultControlPath(application, ctx)];
  if (ctx.uid !== 0) {
    candidates.push(path.join(stateBase(ctx), application, RUNTIME_FILES.socket));
    candidates.push(path.join(ROOT_RUNTIME_BASE, application, RUNTIME_FILES.socket));
  }
  return [...new Set(candidates)];
}

/** The record a daemon keeps for its config file (which socket it serves), keyed by the file's absolute path. */
export function configRecordPath(configPath: string, ctx: PathContext = currentPathContext()): string {
  return path.join(runtimeBase(ctx), configRecordName(configPath));
}

/** The record's file name: `config-<hash of the absolute config path>.json`. */
export function configRecordName(configPath: string): string {
  return `config-${createHash("sha256").update(path.resolve(configPath)).digest("hex").slice(0, 16)}.json`;
}

/** Where a CLI looks for the record of a config path: its own runtime base, then a root daemon's. */
export function configRecordCandidates(configPath: string, ctx: PathContext = currentPathContext()): string[] {
  const name = configRecordName(configPath);
  const bases = [runtimeBase(ctx)];
  if (ctx.uid !== 0) bases.push(stateBase(ctx), ROOT_RUNTIME_BASE);
  return [...new Set(bases.map((base) => path.join(base, name)))];
}

export interface PrivateDirOptions {
  /** Group that may enter the directory (control.group, as a gid): mode 0750 instead of 0700. */
  gid?: number | undefined;
  /** Mode of the base directory when it has to be created (the parent of `dir`). */
  baseMode?: number;
}

/**
 * Creates (or checks) a private directory: its parent (the base) and the directory itself must be
 * directories owned by this user (or root) that others cannot write; the directory is set to 0700,
 * or 0750 and group-owned by `gid`. An existing directory of another owner, a symlink in its
 * place, or a world-writable one is refused with UNSAFE_PATH.
 */
export async function ensurePrivateDir(dir: string, options: PrivateDirOptions = {}): Promise<void> {
  const me = euid();
  await ensureBaseDir(path.dirname(dir), options.baseMode);
  await mkdirIfMissing(dir, 0o700);
  const stat = await lstat(dir);
  checkDirectory(dir, stat, me);
  if (stat.uid !== me) return; // root's directory, entered by a group member: not ours to change
  if (options.gid !== undefined && stat.gid !== options.gid) {
    try {
      await chown(dir, -1, options.gid);
    } catch (cause) {
      throw new RollbridgeError("UNSAFE_PATH", `cannot give ${dir} to group ${options.gid} (control.group): ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`, {
        cause,
        fix: "run the daemon as root or as a member of control.group, or drop control.group",
      });
    }
  }
  const mode = options.gid === undefined ? 0o700 : 0o750;
  if ((stat.mode & 0o7777) !== mode) await chmod(dir, mode);
}

/**
 * Creates (or checks) a base directory such as /run/rollbridge: 0755 as root (group members must
 * pass through it to their application's directory), else 0700; missing parents are created 0700.
 */
export async function ensureBaseDir(base: string, mode?: number): Promise<void> {
  const me = euid();
  await mkdir(path.dirname(base), { recursive: true, mode: 0o700 });
  await mkdirIfMissing(base, mode ?? (me === 0 ? 0o755 : 0o700));
  checkDirectory(base, await lstat(base), me);
}

/** Refuses a path that is not a directory owned by `uid` or root, or that others may write. */
export function checkDirectory(dir: string, stat: Stats, uid: number): void {
  if (!stat.isDirectory()) {
    throw new RollbridgeError("UNSAFE_PATH", `refusing ${dir}: it is ${fileKind(stat)} owned by ${describeOwner(stat.uid)}, not a directory`, {
      fix: `remove it (rm ${dir}) if you did not create it; Rollbridge creates the directory itself`,
      details: { path: dir },
    });
  }
  if (stat.uid !== uid && stat.uid !== 0) {
    throw new RollbridgeError("UNSAFE_PATH", `refusing ${dir}: it is owned by ${describeOwner(stat.uid)}, not by ${describeOwner(uid)}${uid === 0 ? "" : " or root"}`, {
      fix: `another user created it: remove it (rm -r ${dir}) and let Rollbridge create it, or set an explicit path elsewhere`,
      details: { path: dir },
    });
  }
  if ((stat.mode & 0o002) !== 0) {
    throw new RollbridgeError("UNSAFE_PATH", `refusing ${dir}: it is world-writable (mode ${(stat.mode & 0o7777).toString(8)}), so any user could plant files in it`, {
      fix: `chmod 700 ${dir}`,
      details: { path: dir },
    });
  }
}

async function mkdirIfMissing(dir: string, mode: number): Promise<void> {
  try {
    await mkdir(dir, { mode });
    // The umask may have narrowed the mode; the base must be traversable as asked.
    await chmod(dir, mode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
}

/** $XDG_RUNTIME_DIR when it is an absolute path to a directory this user owns that nobody else may write. */
function usableRuntimeDir(ctx: PathContext): string | null {
  const dir = ctx.env["XDG_RUNTIME_DIR"];
  if (!dir || !path.isAbsolute(dir)) return null;
  try {
    const stat = statSync(dir);
    // `sudo -u deploy` keeps the caller's XDG_RUNTIME_DIR (/run/user/0): not this user's.
    if (!stat.isDirectory() || stat.uid !== ctx.uid || (stat.mode & 0o022) !== 0) return null;
    return dir;
  } catch {
    return null;
  }
}
