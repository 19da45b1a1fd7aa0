// The proxy's unix-socket listener, created so that no other local user can redirect or hijack
// it: the socket goes into a directory only the daemon's user (or root) can write, reached
// without symlinks; a symlink or any other file already at the path is refused, a stale socket
// replaced, a live one refused; connections are accepted only once mode and group are applied.

import { promises as fs } from "node:fs";
import type { Stats } from "node:fs";
import net from "node:net";
import path from "node:path";
import { RollbridgeError } from "../errors.js";

export interface UnixSocketOptions {
  /** Absolute path of the socket. */
  path: string;
  /** Permission bits of the socket (who may connect: write permission). */
  mode: number;
  /** Group of the socket (and of its directory when created here). */
  gid?: number | undefined;
}

export interface BoundUnixSocket {
  /** The path bound, with symlinks in its directory resolved. */
  path: string;
  /** Problems that do not stop the daemon but will stop nginx (a directory it cannot traverse). */
  warnings: string[];
  /** Removes the socket file if it is still the one bound here. */
  unlink(): Promise<void>;
}

/**
 * Binds `server` on `options.path`. Until the returned promise resolves, every connection it
 * accepts is closed at once (the socket's permissions are not in place yet).
 */
export async function listenUnix(server: net.Server, options: UnixSocketOptions): Promise<BoundUnixSocket> {
  const directory = await ensureDirectory(path.dirname(options.path), options.gid);
  const socketPath = path.join(directory, path.basename(options.path));
  await checkDirectoryChain(directory);
  await clearStaleSocket(socketPath);
  let ready = false;
  const gate = (socket: net.Socket) => {
    if (!ready) socket.destroy();
  };
  server.prependListener("connection", gate);
  await bind(server, socketPath);
  try {
    if (options.gid !== undefined) await fs.lchown(socketPath, -1, options.gid);
    // chmod follows links, which is safe here: nobody else can write the directory (checked above).
    await fs.chmod(socketPath, options.mode);
  } catch (cause) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw new RollbridgeError("CONFIG_INVALID", `cannot set the group or mode of proxy socket ${socketPath}: ${(cause as Error).message}`, {
      cause,
      fix: "run the daemon as root or as a member of proxy.socket.group, or drop proxy.socket.group",
    });
  }
  const bound = await fs.lstat(socketPath);
  ready = true;
  server.off("connection", gate);
  return {
    path: socketPath,
    warnings: await reachabilityWarnings(directory, options),
    async unlink() {
      const now = await fs.lstat(socketPath).catch(() => null);
      if (now !== null && now.isSocket() && now.ino === bound.ino && now.dev === bound.dev) await fs.unlink(socketPath).catch(() => undefined);
    },
  };
}

// The socket's directory, created 0750 (group: the socket's) when missing; returned with
// symlinks resolved, so that everything below works on the real path.
async function ensureDirectory(directory: string, gid: number | undefined): Promise<string> {
  try {
    await fs.mkdir(directory, { mode: 0o750 });
    if (gid !== undefined) await fs.lchown(directory, -1, gid);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new RollbridgeError("CONFIG_INVALID", `proxy.socket.path: the directory ${path.dirname(directory)} does not exist`, {
        cause,
        fix: `create ${path.dirname(directory)} first (Rollbridge creates only the socket's own directory), or choose another path`,
      });
    }
    if (code !== "EEXIST") throw socketError(`cannot create the proxy socket's directory ${directory}`, cause);
  }
  return fs.realpath(directory);
}

// Nobody but root and the daemon's user may be able to rename or replace anything on the way to
// the socket: its directory is writable by them only, and every ancestor is too (or sticky).
async function checkDirectoryChain(directory: string): Promise<void> {
  const uid = process.getuid?.() ?? 0;
  let current = directory;
  for (;;) {
    const stat = await fs.lstat(current);
    const isSocketDir = current === directory;
    const owned = stat.uid === 0 || stat.uid === uid;
    const writableByOthers = (stat.mode & 0o022) !== 0;
    const sticky = (stat.mode & 0o1000) !== 0;
    if (!stat.isDirectory()) throw socketError(`${current} is not a directory`);
    if (!owned || (writableByOthers && (isSocketDir || !sticky))) {
      const who = owned ? `is writable by other users (mode ${modeText(stat)})` : `belongs to uid ${stat.uid}, not to root or the daemon's user (uid ${uid})`;
      throw new RollbridgeError("CONFIG_INVALID", `proxy.socket.path: ${current} ${who}, so another user could replace the socket`, {
        fix: "put the socket in a directory only the daemon's user can write, e.g. /run/rollbridge-proxy/ (created 0750 when missing)",
      });
    }
    const parent = path.dirname(current);
    if (parent === current) return;
    current = parent;
  }
}

// A socket nobody answers on is a leftover of a daemon that died: replaced. Anything else at the
// path is refused as it is (never followed, never removed).
async function clearStaleSocket(socketPath: string): Promise<void> {
  const stat = await fs.lstat(socketPath).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return null;
    throw error;
  });
  if (stat === null) return;
  if (!stat.isSocket()) {
    throw new RollbridgeError("CONFIG_INVALID", `proxy.socket.path ${socketPath} exists and is ${kindOf(stat)}, not a socket: refusing to replace it`, {
      fix: "remove it if it is yours, or choose another proxy.socket.path",
    });
  }
  if (await answers(socketPath)) {
    throw new RollbridgeError("DAEMON_ALREADY_RUNNING", `something is already listening on proxy.socket.path ${socketPath} (another rollbridge daemon?)`, {
      fix: "stop that daemon first (rollbridge shutdown), or give this one another proxy.socket.path",
    });
  }
  await fs.unlink(socketPath);
}

async function reachabilityWarnings(directory: string, options: UnixSocketOptions): Promise<string[]> {
  const forOthers = (options.mode & 0o002) !== 0;
  const forGroup = (options.mode & 0o020) !== 0;
  if (!forOthers && !forGroup) return [];
  for (let current = directory; ; current = path.dirname(current)) {
    const stat = await fs.stat(current);
    const traversable = (stat.mode & 0o001) !== 0 || (!forOthers && (stat.mode & 0o010) !== 0 && (options.gid === undefined || stat.gid === options.gid));
    if (!traversable) {
      const who = forOthers ? "other users" : `group ${options.gid ?? "of the socket"}`;
      return [`proxy socket ${path.join(directory, path.basename(options.path))} is open to ${who}, but ${current} (mode ${modeText(stat)}) does not let them through: nginx will get "permission denied"`];
    }
    if (path.dirname(current) === current) return [];
  }
}

function bind(server: net.Server, socketPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => reject(socketError(`cannot listen on proxy socket ${socketPath}`, error));
    server.once("error", onError);
    server.listen(socketPath, () => {
      server.off("error", onError);
      resolve();
    });
  });
}

function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(socketPath);
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

function socketError(message: string, cause?: unknown): RollbridgeError {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  return new RollbridgeError("CONFIG_INVALID", code === undefined ? message : `${message}: ${code}`, { cause, fix: "check proxy.socket.path" });
}

function kindOf(stat: Stats): string {
  if (stat.isSymbolicLink()) return "a symbolic link";
  if (stat.isDirectory()) return "a directory";
  if (stat.isFIFO()) return "a FIFO";
  if (stat.isFile()) return "a regular file";
  return "a special file";
}

function modeText(stat: Stats): string {
  return (stat.mode & 0o7777).toString(8).padStart(4, "0");
}
