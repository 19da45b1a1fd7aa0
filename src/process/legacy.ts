// Finding and stopping what ran the app before Rollbridge (config `legacyTakeover`): GNU screen
// sessions by name, and processes whose command line contains every configured string. The
// caller passes the pids that must never be touched (itself, its ancestors, what a daemon
// manages), and anything a Rollbridge daemon started is skipped; command lines are read only
// to match, never printed or stored.
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { stopGroup, type GroupStopResult } from "./group-stop.js";
import { lookupUid } from "../safe-file.js";
import { listProcesses, readCommandLine, readIdentity, readProgramName, readUid } from "./identity.js";

/** A detached or attached GNU screen session of the current user. */
export interface ScreenSession {
  /** "<pid>.<name>", what `screen -S` accepts unambiguously. */
  id: string;
  pid: number;
  name: string;
}

/** A running process that matches a `legacyTakeover.processes[]` entry. */
export interface LegacyProcess {
  /** The entry's `name` label. */
  name: string;
  pid: number;
  pgid: number;
  startTime: number;
  /** With a configured `user`: its uid, so that only that user's processes (of its group, too) are signalled. */
  uid: number | undefined;
  /** The program name (/proc/<pid>/comm): safe to print, unlike the command line. */
  program: string;
  /** Stop the whole group: the process leads its own group and nothing protected is in it. */
  wholeGroup: boolean;
}

export type ScreenQuitOutcome = "quit" | "gone" | "failed";

/** The current user's screen sessions; null when `screen` is not installed. */
export async function listScreens(): Promise<ScreenSession[] | null> {
  const result = await run("screen", ["-ls"]);
  if (result.missing) return null;
  return parseScreenList(result.stdout);
}

/** Parses `screen -ls` output ("\t1234.name\t(Detached)"); names may contain dots. */
export function parseScreenList(text: string): ScreenSession[] {
  const sessions: ScreenSession[] = [];
  for (const line of text.split("\n")) {
    const match = /^\s+(\d+)\.(\S+)\s/.exec(line + " ");
    if (!match?.[1] || !match[2]) continue;
    sessions.push({ id: `${match[1]}.${match[2]}`, pid: Number(match[1]), name: match[2] });
  }
  return sessions;
}

/** `screen -S <id> -X quit`, then waits (up to 5 s) for the session's process to go. */
export async function quitScreen(session: ScreenSession): Promise<ScreenQuitOutcome> {
  if ((await readIdentity(session.pid)) === null) return "gone";
  await run("screen", ["-S", session.id, "-X", "quit"]);
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    if ((await readIdentity(session.pid)) === null) return "quit";
    await sleep(25);
  }
  return "failed";
}

/** One `legacyTakeover.processes[]` entry: a label, the command-line substrings, optionally the user. */
export interface LegacyEntry {
  name: string;
  includes: readonly string[];
  /** Only processes running as this user (name or uid) match. */
  user?: number | string | undefined;
}

/**
 * Processes whose command line contains every string of an entry's `includes` (and that run as
 * its `user`, when it names one), except the `protectedPids` and anything in a protected process group.
 */
export async function findLegacyProcesses(entries: readonly LegacyEntry[], protectedPids: ReadonlySet<number>): Promise<LegacyProcess[]> {
  if (entries.length === 0) return [];
  // A user that does not exist matches nothing (uid -1), never everyone.
  const uids = entries.map((e) => (e.user === undefined ? undefined : (lookupUid(e.user) ?? -1)));
  const all = await listProcesses();
  const protectedGroups = new Set(all.filter((p) => protectedPids.has(p.pid)).map((p) => p.pgid));
  const found: LegacyProcess[] = [];
  for (const proc of all) {
    if (protectedPids.has(proc.pid)) continue;
    const commandLine = await readCommandLine(proc.pid);
    if (!commandLine) continue; // kernel threads, or gone
    const matching = entries.filter((e) => e.includes.length > 0 && e.includes.every((part) => commandLine.includes(part)));
    if (matching.length === 0 || (await startedByRollbridge(proc.pid))) continue;
    const uid = await readUid(proc.pid);
    const entry = matching.find((e) => {
      const wanted = uids[entries.indexOf(e)];
      return wanted === undefined || wanted === uid;
    });
    if (!entry) continue;
    found.push({
      name: entry.name,
      pid: proc.pid,
      pgid: proc.pgid,
      startTime: proc.startTime,
      uid: entry.user === undefined ? undefined : (uid ?? undefined),
      program: (await readProgramName(proc.pid)) ?? "?",
      wholeGroup: proc.pgid === proc.pid && !protectedGroups.has(proc.pgid),
    });
  }
  return found;
}

/** Stops one legacy process (its group when it leads one): SIGTERM, SIGKILL after `graceMs`. */
export async function stopLegacyProcess(proc: LegacyProcess, graceMs: number): Promise<GroupStopResult> {
  return stopGroup(proc, { signal: "SIGTERM", graceMs, group: proc.wholeGroup });
}

/**
 * Whether a process (or an ancestor it inherited its environment from) was started by a
 * Rollbridge daemon: every managed process gets ROLLBRIDGE_INSTANCE_ID. Such a process is
 * never legacy, whatever its command line says. Only the variable's presence is looked at.
 */
async function startedByRollbridge(pid: number): Promise<boolean> {
  try {
    const environ = await readFile(`/proc/${pid}/environ`, "utf8");
    return environ.startsWith("ROLLBRIDGE_INSTANCE_ID=") || environ.includes("\0ROLLBRIDGE_INSTANCE_ID=");
  } catch {
    return false;
  }
}

async function run(command: string, args: string[]): Promise<{ stdout: string; missing: boolean }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 10_000, env: process.env }, (error, stdout) => {
      const missing = (error as NodeJS.ErrnoException | null)?.code === "ENOENT";
      // `screen -ls` exits non-zero both with and without sessions: its output is the answer.
      resolve({ stdout: String(stdout ?? ""), missing });
    });
  });
}
