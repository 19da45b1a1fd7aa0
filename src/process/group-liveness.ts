// Whether a spawned process group still has live members, and waiting until it
// has none. Zombies do not count: an unreaping PID 1 may keep them forever.
import { setTimeout as sleep } from "node:timers/promises";
import { groupHasLiveMembers } from "./memory.js";

/**
 * True once no live member of the group is left; false when it gave up on a member that survives
 * SIGKILL (D state), GIVE_UP_AFTER_KILL_MS after `killAt` (the last SIGKILL, or now if earlier or unset).
 */
export async function waitForGroupGone(pgid: number, killAt: number | undefined): Promise<boolean> {
  const giveUpAt = Math.max(killAt ?? 0, Date.now()) + GIVE_UP_AFTER_KILL_MS;
  while (await groupAlive(pgid)) {
    if (Date.now() >= giveUpAt) return false;
    await sleep(POLL_MS);
  }
  return true;
}

const POLL_MS = 10;
/** After the last SIGKILL, how long to wait for the group before reporting the exit anyway (a member stuck in D state). */
const GIVE_UP_AFTER_KILL_MS = 5_000;

/** Whether any non-zombie member of the group is left. */
async function groupAlive(pgid: number): Promise<boolean> {
  try {
    process.kill(-pgid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
  }
  // kill(2) also finds zombies, which an unreaping PID 1 may keep forever.
  return (await groupHasLiveMembers(pgid)) ?? true;
}
