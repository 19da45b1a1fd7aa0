// Whether a control socket is the daemon's, checked before the CLI connects to it: whoever binds
// the path first would otherwise receive the desired document (with its env secrets). The socket
// must be owned by root, by the CLI's own user or by control.owner, and no directory on its path
// may let other users replace it. Also: which process holds a listening unix socket
// (/proc/net/unix inode ↔ /proc/<pid>/fd), so ensure-daemon records only a pid it verified.
import { realpath, lstat, stat, readFile, readdir, readlink } from "node:fs/promises";
import type { Stats } from "node:fs";
import path from "node:path";
import { RollbridgeError } from "../errors.js";
import { describeOwner, euid, fileKind, lookupUid } from "../safe-file.js";

/** A control socket and the extra owner the CLI trusts for it (control.owner). */
export interface ControlEndpoint {
  path: string;
  owner?: number | string | undefined;
}

/** A socket path (trusting root and this user only) or an endpoint with its control.owner. */
export type ControlTarget = string | ControlEndpoint;

/** The endpoint of a target. */
export function endpointOf(target: ControlTarget): ControlEndpoint {
  return typeof target === "string" ? { path: target } : target;
}

/**
 * Throws DAEMON_NOT_RUNNING when nothing is at the path, UNTRUSTED_SOCKET when what is there
 * (or a directory above it) could belong to another user. Sends nothing: it only looks.
 */
export async function verifyControlSocket(target: ControlTarget): Promise<void> {
  const endpoint = endpointOf(target);
  const socket = path.resolve(endpoint.path);
  const trusted = trustedOwners(endpoint);
  let info: Stats;
  try {
    info = await lstat(socket);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw noDaemon(socket, cause);
    if (code === "EACCES") throw permissionDenied(socket, cause);
    throw cause;
  }
  if (!info.isSocket()) {
    throw untrusted(socket, `it is ${fileKind(info)} owned by ${describeOwner(info.uid)}, not a socket`, `remove it (rm ${socket}) if you did not put it there, then start the daemon (rollbridge ensure-daemon), or check control.path`);
  }
  if (!trusted.includes(info.uid)) {
    const owner = describeOwner(info.uid);
    throw untrusted(
      socket,
      `it is owned by ${owner}, not by ${trustedText(endpoint)}`,
      `your daemon did not create it: remove it (rm ${socket}) and start the daemon again; if the daemon really runs as ${owner}, set control.owner to that user`,
    );
  }
  if ((info.mode & 0o002) !== 0) {
    throw untrusted(socket, `every user may connect to it (mode ${(info.mode & 0o777).toString(8)})`, "set control.mode to 660 (and control.group), then restart the daemon");
  }
  for (const dir of await directoriesOf(socket)) {
    let dirInfo: Stats;
    try {
      dirInfo = await stat(dir);
    } catch (cause) {
      throw untrusted(socket, `its directory ${dir} cannot be inspected (${(cause as NodeJS.ErrnoException).code ?? String(cause)})`, "check the permissions of the socket's directories");
    }
    if (!trusted.includes(dirInfo.uid)) {
      throw untrusted(
        socket,
        `its directory ${dir} is owned by ${describeOwner(dirInfo.uid)}, who could replace the socket`,
        `put control.path in a directory owned by root or by the daemon's user (the default is private), or chown ${dir}`,
      );
    }
    // The sticky bit (/tmp) keeps others from renaming or removing what they do not own.
    if ((dirInfo.mode & 0o002) !== 0 && (dirInfo.mode & 0o1000) === 0) {
      throw untrusted(
        socket,
        `its directory ${dir} is writable by every user (mode ${(dirInfo.mode & 0o7777).toString(8)}), so anyone could replace the socket`,
        `chmod o-w ${dir}, or move control.path into a private directory (the default)`,
      );
    }
  }
}

/**
 * Whether process `pid` holds the listening unix socket bound at `socketPath`: true or false,
 * or null when this user cannot tell (another user's process: its fds are not readable).
 */
export async function socketHeldBy(socketPath: string, pid: number): Promise<boolean | null> {
  let table: string;
  try {
    table = await readFile("/proc/net/unix", "utf8");
  } catch {
    return null;
  }
  const inodes = listeningInodes(table, path.resolve(socketPath));
  if (inodes.size === 0) return false;
  let fds: string[];
  try {
    fds = await readdir(`/proc/${pid}/fd`);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === "ENOENT" ? false : null;
  }
  for (const fd of fds) {
    const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
    const match = /^socket:\[(\d+)\]$/.exec(link);
    if (match && inodes.has(Number(match[1]))) return true;
  }
  return false;
}

/** The inodes of listening unix sockets bound at `socketPath`, from the text of /proc/net/unix. */
export function listeningInodes(table: string, socketPath: string): Set<number> {
  const inodes = new Set<number>();
  for (const line of table.split("\n").slice(1)) {
    // Num RefCount Protocol Flags Type St Inode Path — the path may contain spaces.
    const match = /^\s*[0-9a-fA-F]+:\s+[0-9a-fA-F]+\s+[0-9a-fA-F]+\s+([0-9a-fA-F]+)\s+[0-9a-fA-F]+\s+[0-9a-fA-F]+\s+(\d+)\s(.*)$/.exec(line);
    if (!match) continue;
    const flags = Number.parseInt(match[1]!, 16);
    // __SO_ACCEPTCON: the socket listens.
    if ((flags & 0x10000) === 0 || match[3] !== socketPath) continue;
    inodes.add(Number(match[2]));
  }
  return inodes;
}

/** "no daemon answers on S" with how to start one. */
export function noDaemon(socketPath: string, cause: unknown): RollbridgeError {
  return new RollbridgeError("DAEMON_NOT_RUNNING", `no daemon answers on ${socketPath}`, {
    cause,
    fix: "start one with `rollbridge daemon` (foreground) or `rollbridge ensure-daemon`, or check control.path",
  });
}

/** The socket exists but this user may not connect (control.mode / control.group). */
export function permissionDenied(socketPath: string, cause: unknown): RollbridgeError {
  return new RollbridgeError("DAEMON_NOT_RUNNING", `permission denied on control socket ${socketPath}`, { cause, fix: "run as a user in the socket's group (control.group / control.mode)" });
}

function untrusted(socket: string, why: string, fix: string): RollbridgeError {
  return new RollbridgeError("UNTRUSTED_SOCKET", `refusing to talk to control socket ${socket}: ${why}; nothing was sent`, { fix, details: { path: socket } });
}

function trustedOwners(endpoint: ControlEndpoint): number[] {
  const owners = [0, euid()];
  const configured = endpoint.owner === undefined ? null : lookupUid(endpoint.owner);
  if (configured !== null) owners.push(configured);
  return owners;
}

function trustedText(endpoint: ControlEndpoint): string {
  const me = euid();
  const parts = ["root"];
  if (me !== 0) parts.push(`you (${describeOwner(me)})`);
  parts.push(endpoint.owner === undefined ? "control.owner (not set)" : `control.owner (${endpoint.owner})`);
  return parts.join(", ");
}

/** Every directory whose entries decide what the path names: along the path as written and along its real path. */
async function directoriesOf(socket: string): Promise<string[]> {
  const dirs = new Set<string>();
  const addChain = (start: string) => {
    for (let dir = start; ; dir = path.dirname(dir)) {
      dirs.add(dir);
      if (path.dirname(dir) === dir) break;
    }
  };
  const parent = path.dirname(socket);
  addChain(parent);
  const real = await realpath(parent).catch(() => parent);
  if (real !== parent) addChain(real);
  return [...dirs];
}
