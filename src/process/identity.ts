// Who a pid is right now, read from /proc (Linux). A pid alone names nothing for long:
// the kernel recycles it, so a process is identified by its pid *and* its start time
// (field 22 of /proc/<pid>/stat, clock ticks since boot, as memory.ts readStartTime reads it),
// which no later process can share.
import { readdir, readFile } from "node:fs/promises";
import { fieldsAfterComm, readStatText } from "./proc-stat.js";

/** A live process as /proc describes it; zombies count as gone. */
export interface ProcessIdentity {
  pid: number;
  ppid: number;
  pgid: number;
  startTime: number;
  state: string;
}

/** The identity of `pid`, or null when it is gone (or only a zombie). */
export async function readIdentity(pid: number): Promise<ProcessIdentity | null> {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const text = await readStatText(pid);
  return text === null ? null : parseIdentity(pid, text);
}

/** Parses /proc/<pid>/stat into an identity; null for zombies, dead entries and garbage. */
export function parseIdentity(pid: number, text: string): ProcessIdentity | null {
  const rest = fieldsAfterComm(text);
  if (rest === null) return null;
  const state = rest[0];
  const ppid = Number(rest[4 - 3]);
  const pgid = Number(rest[5 - 3]);
  const startTime = Number(rest[22 - 3]);
  if (state === undefined || !Number.isInteger(ppid) || !Number.isInteger(pgid) || !Number.isFinite(startTime) || rest.length < 20) return null;
  if (state === "Z" || state === "X") return null;
  return { pid, ppid, pgid, startTime, state };
}

/** True only when `pid` is alive and is still the process that started at `startTime`. */
export async function isSameProcess(pid: number, startTime: number): Promise<boolean> {
  const identity = await readIdentity(pid);
  return identity !== null && identity.startTime === startTime;
}

/** `pid` and every ancestor up to PID 1: processes a cleanup must never signal. */
export async function selfAndAncestors(pid: number = process.pid): Promise<Set<number>> {
  const chain = new Set<number>([pid]);
  let current = pid;
  for (let depth = 0; depth < 256; depth += 1) {
    const identity = await readIdentity(current);
    if (identity === null || identity.ppid <= 0 || chain.has(identity.ppid)) break;
    chain.add(identity.ppid);
    current = identity.ppid;
  }
  chain.add(1);
  return chain;
}

/** Live members of process group `pgid` (zombies excluded); empty without /proc. */
export async function groupMembers(pgid: number): Promise<ProcessIdentity[]> {
  const all = await listProcesses();
  return all.filter((p) => p.pgid === pgid);
}

/** Every live process visible in /proc. */
export async function listProcesses(): Promise<ProcessIdentity[]> {
  let entries: string[];
  try {
    entries = await readdir("/proc");
  } catch {
    return [];
  }
  const pids = entries.filter((name) => /^[0-9]+$/.test(name)).map(Number);
  const identities = await Promise.all(pids.map((pid) => readIdentity(pid)));
  return identities.filter((p): p is ProcessIdentity => p !== null);
}

/** The NUL-separated argv of `pid` joined with spaces; null when it is gone or unreadable. */
export async function readCommandLine(pid: number): Promise<string | null> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, "utf8");
    return raw.replace(/\0+$/, "").replace(/\0/g, " ");
  } catch {
    return null;
  }
}

/** The short program name (/proc/<pid>/comm), safe to print: no arguments. */
export async function readProgramName(pid: number): Promise<string | null> {
  // The executable's name from argv[0]: /proc/<pid>/comm is the main *thread's* name, which
  // a program may change (Node 24 calls it "MainThread").
  try {
    const argv0 = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0")[0] ?? "";
    const name = argv0.slice(argv0.lastIndexOf("/") + 1);
    if (name) return name.slice(0, 64);
  } catch {
    return null;
  }
  try {
    return (await readFile(`/proc/${pid}/comm`, "utf8")).trim();
  } catch {
    return null;
  }
}

/** The real uid of `pid` (the `Uid:` line of /proc/<pid>/status); null when it is gone or unreadable. */
export async function readUid(pid: number): Promise<number | null> {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const match = /^Uid:\s+(\d+)/m.exec(status);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/**
 * Whether `pid`'s environment has every one of `vars` (e.g. the ROLLBRIDGE_INSTANCE_ID and
 * ROLLBRIDGE_RELEASE_ID a daemon gives each managed process, which what it spawns inherits). Only
 * those variables are looked at; null when the environment cannot be read (another user's process).
 */
export async function environHas(pid: number, vars: Record<string, string>): Promise<boolean | null> {
  try {
    const entries = new Set((await readFile(`/proc/${pid}/environ`, "utf8")).split("\0"));
    return Object.entries(vars).every(([name, value]) => entries.has(`${name}=${value}`));
  } catch {
    return null;
  }
}
