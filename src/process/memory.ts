// Memory, CPU time and identity of a process group, read from /proc (Linux). Every reader
// tolerates processes vanishing mid-scan: a group is a moving target.
import { execFile } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import { fieldsAfterComm, readStatText } from "./proc-stat.js";

export interface GroupMemberMemory {
  pid: number;
  command: string;
  rssBytes: number;
}

export interface GroupMemory {
  rssBytes: number;
  children: GroupMemberMemory[];
}

/** A group's memory and the CPU time its members have used (what `status` shows per process). */
export interface GroupUsage extends GroupMemory {
  /**
   * CPU seconds of the live members plus what they have reaped of their children (utime +
   * stime + cutime + cstime): it only grows while the group runs, so two samples give a CPU %.
   */
  cpuSeconds: number;
}

/** RSS of every live member of process group `pgid` (leader included); null without /proc. */
export async function sampleGroupMemory(pgid: number): Promise<GroupMemory | null> {
  const members = await readGroupMembers(pgid);
  if (members === null) return null;
  const pageSize = await pageSizeBytes();
  const children: GroupMemberMemory[] = [];
  for (const member of members) {
    if (!member.live) continue;
    const command = await readCommand(member.pid);
    // A member that vanished between the stat and the cmdline read is skipped.
    if (command === null) continue;
    children.push({ pid: member.pid, command, rssBytes: member.rssPages * pageSize });
  }
  children.sort((a, b) => a.pid - b.pid);
  return { rssBytes: children.reduce((sum, child) => sum + child.rssBytes, 0), children };
}

/**
 * RSS and CPU time of several process groups from ONE scan of /proc (the supervisor samples
 * every managed process each pass: one scan per group would cost O(groups × processes)).
 * Null without /proc.
 */
export async function sampleGroupsMemory(pgids: readonly number[]): Promise<Map<number, GroupUsage> | null> {
  const wanted = new Set(pgids);
  const stats = await readAllStats();
  if (stats === null) return null;
  const pageSize = await pageSizeBytes();
  const ticks = await clockTicksPerSecond();
  const result = new Map<number, GroupUsage>();
  for (const pgid of wanted) result.set(pgid, { rssBytes: 0, children: [], cpuSeconds: 0 });
  const seen = new Set<number>();
  for (const stat of stats) {
    const group = result.get(stat.pgrp);
    if (!group) continue;
    // A zombie's times still count until its parent reaps it (then they move to the parent's cutime).
    group.cpuSeconds += stat.cpuTicks / ticks;
    if (stat.state === "Z" || stat.state === "X") continue;
    seen.add(stat.pid);
    // A command line does not change for a given process (pid + start time): read it once.
    let cached = commandCache.get(stat.pid);
    if (cached?.startTime !== stat.startTime) {
      const command = await readCommand(stat.pid);
      if (command === null) continue;
      cached = { startTime: stat.startTime, command };
      commandCache.set(stat.pid, cached);
    }
    const command = cached.command;
    const rssBytes = stat.rssPages * pageSize;
    group.children.push({ pid: stat.pid, command, rssBytes });
    group.rssBytes += rssBytes;
  }
  for (const group of result.values()) group.children.sort((a, b) => a.pid - b.pid);
  for (const pid of commandCache.keys()) if (!seen.has(pid)) commandCache.delete(pid);
  return result;
}

const commandCache = new Map<number, { startTime: number; command: string }>();

/** Start time of `pid` in clock ticks since boot (stat field 22); null when the process is gone. */
export async function readStartTime(pid: number): Promise<number | null> {
  const stat = await readStat(pid);
  return stat === null ? null : stat.startTime;
}

/**
 * Whether group `pgid` has a member that is not a zombie; null without /proc.
 * Zombies count as gone: an orphan reparented to a PID 1 that never reaps
 * (common in containers) stays a zombie forever, yet holds nothing.
 */
export async function groupHasLiveMembers(pgid: number): Promise<boolean | null> {
  const members = await readGroupMembers(pgid);
  if (members === null) return null;
  return members.some((member) => member.live);
}

export interface ProcStat {
  pid: number;
  state: string;
  pgrp: number;
  startTime: number;
  rssPages: number;
  /** utime + stime + cutime + cstime (fields 14-17), in clock ticks. */
  cpuTicks: number;
}

interface GroupMember {
  pid: number;
  live: boolean;
  rssPages: number;
}

const statBuffer = Buffer.alloc(4096);

/**
 * Every readable /proc/<pid>/stat; null without /proc. Synchronous on purpose: /proc reads
 * never block on I/O, and a few hundred async reads cost ~20x the CPU of sync ones
 * (bench/memory.mjs), which is what the sampler pays every pass.
 */
async function readAllStats(): Promise<ProcStat[] | null> {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return null;
  }
  if (!entries.includes("self")) return null;
  const stats: ProcStat[] = [];
  for (const name of entries) {
    const first = name.charCodeAt(0);
    if (first < 48 || first > 57) continue;
    let fd: number | undefined;
    try {
      fd = openSync(`/proc/${name}/stat`, "r");
      const length = readSync(fd, statBuffer, 0, statBuffer.length, 0);
      const stat = parseStat(Number(name), statBuffer.toString("latin1", 0, length));
      if (stat !== null) stats.push(stat);
    } catch {
      // vanished mid-scan: normal
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
  return stats;
}

async function readGroupMembers(pgid: number): Promise<GroupMember[] | null> {
  const stats = await readAllStats();
  if (stats === null) return null;
  const members: GroupMember[] = [];
  for (const stat of stats) {
    if (stat.pgrp !== pgid) continue;
    // Z = zombie, X = dead: exited, only an entry waiting to be reaped.
    const live = stat.state !== "Z" && stat.state !== "X";
    members.push({ pid: stat.pid, live, rssPages: stat.rssPages });
  }
  return members;
}

async function readStat(pid: number): Promise<ProcStat | null> {
  const text = await readStatText(pid);
  return text === null ? null : parseStat(pid, text);
}

/** Parses /proc/<pid>/stat; null for garbage. */
export function parseStat(pid: number, text: string): ProcStat | null {
  const rest = fieldsAfterComm(text);
  if (rest === null) return null;
  const state = rest[0];
  const pgrp = Number(rest[5 - 3]);
  const startTime = Number(rest[22 - 3]);
  const rssPages = Number(rest[24 - 3]);
  const cpuTicks = [14, 15, 16, 17].reduce((sum, field) => sum + Number(rest[field - 3]), 0);
  if (state === undefined || !Number.isFinite(pgrp) || !Number.isFinite(startTime) || !Number.isFinite(rssPages)) {
    return null;
  }
  return { pid, state, pgrp, startTime, rssPages, cpuTicks: Number.isFinite(cpuTicks) ? cpuTicks : 0 };
}

async function readCommand(pid: number): Promise<string | null> {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return raw.replace(/\0+$/, "").replace(/\0/g, " ").slice(0, 200);
  } catch {
    return null;
  }
}

let pageSize: Promise<number> | undefined;
let clockTicks: Promise<number> | undefined;

function pageSizeBytes(): Promise<number> {
  pageSize ??= getconf("PAGESIZE", 4096);
  return pageSize;
}

/** USER_HZ, the unit of the /proc/<pid>/stat times (100 on Linux almost everywhere). */
function clockTicksPerSecond(): Promise<number> {
  clockTicks ??= getconf("CLK_TCK", 100);
  return clockTicks;
}

function getconf(name: string, fallback: number): Promise<number> {
  return new Promise((resolve) => {
    execFile("getconf", [name], { timeout: 2000 }, (error, stdout) => {
      const value = Number(String(stdout).trim());
      resolve(!error && Number.isInteger(value) && value > 0 ? value : fallback);
    });
  });
}
