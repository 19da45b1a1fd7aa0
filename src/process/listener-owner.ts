// Who listens on a managed process's port, read from /proc (Linux): the socket inodes of the
// LISTEN sockets in /proc/net/tcp{,6}, found among the `socket:[inode]` links of the process
// group's members. Traffic goes only to a port whose every listener belongs to the group
// Rollbridge started; anything else is named by uid (from the socket table) and pid (when its
// /proc/<pid>/fd is readable to the daemon). One check reads two small files and the leader's fd
// directory; the whole-/proc scans run only when the leader does not hold the socket, or to name
// a stranger.
import { lookup } from "node:dns/promises";
import { readdir, readFile, readlink } from "node:fs/promises";
import { groupMembers } from "./identity.js";
import { canonicalAddress, formatEndpoint, listenersFor, parseSocketLink, parseTcpListeners, type TcpListener } from "./proc-net.js";

/** A listener on the port that is not the group's. */
export interface ListenerHolder {
  /** Where it listens ("127.0.0.1:20001", "[::]:20001"). */
  endpoint: string;
  uid: number;
  /** The process holding it, when the daemon may read that process's fds; null otherwise. */
  pid: number | null;
}

/** What a listener check found on host:port. */
export type ListenerCheck =
  /** Every listener that can take a connection to host:port belongs to the group. */
  | { state: "owned" }
  /** At least one listener belongs to someone else (it may share the port with the group's). */
  | { state: "foreign"; holders: ListenerHolder[] }
  /** Nothing listens there (yet, or any more). */
  | { state: "none" };

export interface ListenerCheckTarget {
  /** proxy.upstreamHost: an address or a name (resolved here). */
  host: string;
  port: number;
  /** The process group Rollbridge started (= its leader's pid). */
  pgid: number;
}

/** Checks who holds the LISTEN sockets through which `host:port` is reached. */
export async function checkListener(target: ListenerCheckTarget): Promise<ListenerCheck> {
  const addresses = await resolveHost(target.host);
  const listeners = listenersFor(await readListeners(), addresses, target.port);
  if (listeners.length === 0) return { state: "none" };
  const missing = new Set(listeners.map((l) => l.inode));
  // The leader holds the socket in the common case (node, gunicorn's master): one directory read.
  await removeHeld(target.pgid, missing);
  if (missing.size > 0) {
    for (const member of await groupMembers(target.pgid)) {
      if (member.pid === target.pgid) continue;
      await removeHeld(member.pid, missing);
      if (missing.size === 0) break;
    }
  }
  if (missing.size === 0) return { state: "owned" };
  const strangers = listeners.filter((l) => missing.has(l.inode));
  const pids = await findHolders(new Set(strangers.map((l) => l.inode)));
  return {
    state: "foreign",
    holders: strangers.map((l) => ({ endpoint: formatEndpoint(l.address, l.port), uid: l.uid, pid: pids.get(l.inode) ?? null })),
  };
}

/** "pid 4242 (uid 1001)" or "uid 1001 (pid not visible to the daemon)", for each holder. */
export function describeHolders(holders: readonly ListenerHolder[]): string {
  return holders.map((h) => (h.pid === null ? `uid ${h.uid} (pid not visible to the daemon)` : `pid ${h.pid} (uid ${h.uid})`)).join(", ");
}

/** Every LISTEN socket of this network namespace, IPv4 and IPv6 (a kernel without IPv6 has no tcp6). */
export async function readListeners(): Promise<TcpListener[]> {
  const [v4, v6] = await Promise.all([readFile("/proc/net/tcp", "utf8").catch(() => ""), readFile("/proc/net/tcp6", "utf8").catch(() => "")]);
  return [...parseTcpListeners(v4, 4), ...parseTcpListeners(v6, 6)];
}

/** The uid and pid of whatever listens on host:port (for a port a restart cannot reuse); empty when nothing does. */
export async function portHolders(host: string, port: number): Promise<ListenerHolder[]> {
  const listeners = listenersFor(await readListeners(), await resolveHost(host), port);
  if (listeners.length === 0) return [];
  const pids = await findHolders(new Set(listeners.map((l) => l.inode)));
  return listeners.map((l) => ({ endpoint: formatEndpoint(l.address, l.port), uid: l.uid, pid: pids.get(l.inode) ?? null }));
}

async function resolveHost(host: string): Promise<string[]> {
  const literal = canonicalAddress(host.replace(/^\[(.*)\]$/, "$1"));
  if (literal !== null) return [literal];
  try {
    const found = await lookup(host, { all: true });
    return found.map((a) => canonicalAddress(a.address)).filter((a): a is string => a !== null);
  } catch {
    return [];
  }
}

/** Deletes from `inodes` the sockets `pid` has open; an unreadable or vanished pid holds none. */
async function removeHeld(pid: number, inodes: Set<number>): Promise<void> {
  for (const inode of await socketInodes(pid)) inodes.delete(inode);
}

async function socketInodes(pid: number): Promise<number[]> {
  let fds: string[];
  try {
    fds = await readdir(`/proc/${pid}/fd`);
  } catch {
    return [];
  }
  const inodes: number[] = [];
  for (const fd of fds) {
    try {
      const inode = parseSocketLink(await readlink(`/proc/${pid}/fd/${fd}`));
      if (inode !== null) inodes.push(inode);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

/** Which pid holds each of `inodes`, scanning every /proc/<pid>/fd the daemon may read. */
async function findHolders(inodes: ReadonlySet<number>): Promise<Map<number, number>> {
  const found = new Map<number, number>();
  let entries: string[];
  try {
    entries = await readdir("/proc");
  } catch {
    return found;
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    for (const inode of await socketInodes(Number(name))) {
      if (inodes.has(inode) && !found.has(inode)) found.set(inode, Number(name));
    }
    if (found.size === inodes.size) break;
  }
  return found;
}
