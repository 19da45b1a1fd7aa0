// Stopping a process group this process did not spawn (an orphan left by a crashed daemon, a
// legacy process): the identity is checked before every signal, so a recycled pid is never
// signalled, and with a recorded uid only processes of that uid are: when other users' processes
// share the group, its members of that uid are signalled one by one instead of the whole group.
import { setTimeout as sleep } from "node:timers/promises";
import { groupMembers, readIdentity, readUid, type ProcessIdentity } from "./identity.js";

/** What a stop found and did. */
export type GroupStopOutcome =
  /** The group ended after the stop signal, within the grace period. */
  | "exited"
  /** It outlived the grace period and was SIGKILLed; nothing is left. */
  | "killed"
  /** Already gone when we looked: nothing was signalled. */
  | "gone"
  /** The pid now belongs to another process (different start time): nothing was signalled. */
  | "changed"
  /** The process runs as another user than the one recorded: nothing was signalled. */
  | "other-user"
  /** Members still alive after SIGKILL (stuck in uninterruptible sleep, or not ours to signal). */
  | "survived";

export interface GroupStopTarget {
  pid: number;
  pgid: number;
  startTime: number;
  /** The uid the process was recorded with: nothing of another uid is signalled. */
  uid?: number | undefined;
}

export interface GroupStopResult {
  outcome: GroupStopOutcome;
  /** Live members signalled when the stop began (leader included). */
  members: number;
  /** Whether the whole group was signalled (false: the leader alone, or its members of the recorded uid one by one). */
  wholeGroup: boolean;
  /** Live members of the group left alone because they run as another user. */
  othersLeft: number;
  ms: number;
}

export interface StopOptions {
  signal: NodeJS.Signals;
  graceMs: number;
  /** false: signal the target alone, not its group. */
  group?: boolean;
  /**
   * true (stopSignalTarget: process): the stop signal goes to the target alone, a pre-fork
   * server that stops its own workers; SIGKILL and the wait still cover the whole group.
   */
  signalLeaderOnly?: boolean;
}

const POLL_MS = 25;
const AFTER_KILL_MS = 5_000;

/**
 * Sends `signal` to the target's whole group (or, with `group: false`, to the target alone),
 * SIGKILL after `graceMs`; resolves when what was signalled is gone.
 */
export async function stopGroup(target: GroupStopTarget, options: StopOptions): Promise<GroupStopResult> {
  const identity = await readIdentity(target.pid);
  if (identity === null) return nothing("gone");
  if (identity.startTime !== target.startTime) return nothing("changed");
  if (target.uid !== undefined && (await readUid(target.pid)) !== target.uid) return nothing("other-user");
  // A leader that moved to another group (setsid by the app) is signalled alone; its old group is not ours to guess at.
  const wholeGroup = options.group !== false && identity.pgid === target.pgid && target.pgid > 1;
  if (!wholeGroup) return stopProcesses([identity], options, 0);
  const members = await groupMembers(target.pgid);
  if (target.uid !== undefined) {
    const ours = await ofUid(members, target.uid);
    if (ours.length !== members.length) return stopProcesses(ours, options, members.length - ours.length, target.pid);
  }
  return stopWholeGroup(target.pgid, members.length, options, target.pid);
}

/**
 * Stops these processes one by one (each re-identified by pid and start time before every
 * signal): the members of a group whose leader is gone, or those of the recorded uid.
 */
export async function stopProcesses(processes: readonly ProcessIdentity[], options: StopOptions, othersLeft = 0, leader?: number): Promise<GroupStopResult> {
  const startedAt = Date.now();
  if (processes.length === 0) return nothing("gone");
  const alive = async (): Promise<ProcessIdentity[]> => {
    const now = await Promise.all(processes.map((p) => readIdentity(p.pid)));
    return processes.filter((p, i) => now[i] !== null && now[i]!.startTime === p.startTime);
  };
  const send = async (name: NodeJS.Signals) => {
    const now = await alive();
    // With signalLeaderOnly the stop signal reaches the leader alone (while it lives); SIGKILL reaches everyone.
    const leaderOnly = options.signalLeaderOnly === true && name !== "SIGKILL" && now.some((p) => p.pid === leader);
    for (const p of now) if (!leaderOnly || p.pid === leader) signal(p.pid, name);
  };
  const result = (outcome: GroupStopOutcome): GroupStopResult => ({ outcome, members: processes.length, wholeGroup: false, othersLeft, ms: Date.now() - startedAt });
  await send(options.signal);
  const graceEnds = Date.now() + Math.max(0, options.graceMs);
  while (Date.now() < graceEnds) {
    if ((await alive()).length === 0) return result("exited");
    await sleep(POLL_MS);
  }
  if ((await alive()).length === 0) return result("exited");
  await send("SIGKILL");
  const killEnds = Date.now() + AFTER_KILL_MS;
  while (Date.now() < killEnds) {
    if ((await alive()).length === 0) return result("killed");
    await sleep(POLL_MS);
  }
  return result("survived");
}

/** The processes among `processes` whose real uid is `uid`. */
export async function ofUid(processes: readonly ProcessIdentity[], uid: number): Promise<ProcessIdentity[]> {
  const uids = await Promise.all(processes.map((p) => readUid(p.pid)));
  return processes.filter((_, i) => uids[i] === uid);
}

/** Signals a pid or (negative) group; one that vanished meanwhile is not an error. */
export function signal(destination: number, name: NodeJS.Signals): void {
  try {
    process.kill(destination, name);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "ESRCH") throw error;
  }
}

async function stopWholeGroup(pgid: number, members: number, options: StopOptions, leader: number): Promise<GroupStopResult> {
  const startedAt = Date.now();
  // kill(0) is cheap but also finds zombies; /proc is scanned only while it says "exists".
  const alive = async (): Promise<boolean> => groupExists(pgid) && (await groupMembers(pgid)).length > 0;
  const result = (outcome: GroupStopOutcome): GroupStopResult => ({ outcome, members, wholeGroup: true, othersLeft: 0, ms: Date.now() - startedAt });
  signal(options.signalLeaderOnly === true ? leader : -pgid, options.signal);
  const graceEnds = Date.now() + Math.max(0, options.graceMs);
  while (Date.now() < graceEnds) {
    if (!(await alive())) return result("exited");
    await sleep(POLL_MS);
  }
  if (!(await alive())) return result("exited");
  // While any member is left the kernel cannot hand the group id to a new group, so -pgid still names ours.
  signal(-pgid, "SIGKILL");
  const killEnds = Date.now() + AFTER_KILL_MS;
  while (Date.now() < killEnds) {
    if (!(await alive())) return result("killed");
    await sleep(POLL_MS);
  }
  return result("survived");
}

function nothing(outcome: GroupStopOutcome): GroupStopResult {
  return { outcome, members: 0, wholeGroup: false, othersLeft: 0, ms: 0 };
}

function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ESRCH";
  }
}
