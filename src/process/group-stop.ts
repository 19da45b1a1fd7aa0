// Stopping a process group this process did not spawn (an orphan left by a crashed daemon):
// the identity is checked before every signal, so a recycled pid is never signalled.
import { setTimeout as sleep } from "node:timers/promises";
import { groupMembers, readIdentity } from "./identity.js";

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
  /** Members still alive after SIGKILL (stuck in uninterruptible sleep, or not ours to signal). */
  | "survived";

export interface GroupStopTarget {
  pid: number;
  pgid: number;
  startTime: number;
}

export interface GroupStopResult {
  outcome: GroupStopOutcome;
  /** Live members of the group when the stop began (leader included). */
  members: number;
  /** Whether the whole group was signalled (false: the leader had left its group, only it was). */
  wholeGroup: boolean;
  ms: number;
}

const POLL_MS = 25;
const AFTER_KILL_MS = 5_000;

/**
 * Sends `signal` to the target's whole group (or, with `group: false`, to the target alone),
 * SIGKILL after `graceMs`; resolves when what was signalled is gone.
 */
export async function stopGroup(target: GroupStopTarget, options: { signal: NodeJS.Signals; graceMs: number; group?: boolean }): Promise<GroupStopResult> {
  const startedAt = Date.now();
  const identity = await readIdentity(target.pid);
  if (identity === null) return { outcome: "gone", members: 0, wholeGroup: false, ms: 0 };
  if (identity.startTime !== target.startTime) return { outcome: "changed", members: 0, wholeGroup: false, ms: 0 };
  // A leader that moved to another group (setsid by the app) is signalled alone; its old group is not ours to guess at.
  const wholeGroup = options.group !== false && identity.pgid === target.pgid && target.pgid > 1;
  const members = wholeGroup ? (await groupMembers(target.pgid)).length : 1;
  const destination = wholeGroup ? -target.pgid : target.pid;
  const alive = async (): Promise<boolean> => {
    // kill(0) is cheap but also finds zombies; /proc is scanned only while it says "exists".
    if (wholeGroup) return groupExists(target.pgid) && (await groupMembers(target.pgid)).length > 0;
    const now = await readIdentity(target.pid);
    return now !== null && now.startTime === target.startTime;
  };

  signal(destination, options.signal);
  const graceEnds = Date.now() + Math.max(0, options.graceMs);
  while (Date.now() < graceEnds) {
    if (!(await alive())) return { outcome: "exited", members, wholeGroup, ms: Date.now() - startedAt };
    await sleep(POLL_MS);
  }
  if (!(await alive())) return { outcome: "exited", members, wholeGroup, ms: Date.now() - startedAt };
  // While any member is left the kernel cannot hand the group id to a new group, so -pgid still names ours.
  signal(destination, "SIGKILL");
  const killEnds = Date.now() + AFTER_KILL_MS;
  while (Date.now() < killEnds) {
    if (!(await alive())) return { outcome: "killed", members, wholeGroup, ms: Date.now() - startedAt };
    await sleep(POLL_MS);
  }
  return { outcome: "survived", members, wholeGroup, ms: Date.now() - startedAt };
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

function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ESRCH";
  }
}
