// Helpers for tests that drive a ManagedProcess directly: waiting for its output, checking
// pids the way the process layer does (zombies count as gone), and cleaning up by pid.
import { readFile } from "node:fs/promises";
import type { ManagedProcess } from "../../src/process/managed-process.js";

/** The first retained output line matching `pattern`, polled until `timeoutMs`. */
export async function waitForLine(proc: ManagedProcess, pattern: RegExp, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = proc.output().find((l) => pattern.test(l.line));
    if (found !== undefined) return found.line;
    if (Date.now() > deadline) throw new Error(`no output line matching ${pattern}; got ${JSON.stringify(proc.output())}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Alive = exists and is not a zombie (an orphaned zombie may never be reaped in a container). */
export async function isAlive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** SIGKILL a pid (or a group, with a negative pid), ignoring one that is already gone. */
export function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}
