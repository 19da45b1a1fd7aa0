// Helpers for tests that drive a ManagedProcess directly: starting one (the fixture app, say),
// waiting for its output, checking pids the way the process layer does (zombies count as gone),
// and cleaning up by pid.
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { ManagedProcess } from "../../src/process/managed-process.js";
import type { SpawnSpec } from "../../src/process/types.js";
import { FIXTURE_APP, FIXTURE_WORKER } from "./test-config.js";

/** The fixture app and worker as a ManagedProcess's shell command (node by its full path). */
export const APP_COMMAND = `"${process.execPath}" "${FIXTURE_APP}"`;
export const WORKER_COMMAND = `"${process.execPath}" "${FIXTURE_WORKER}"`;

const tracked: ManagedProcess[] = [];

/** Remembers `proc` for killTracked(). */
export function track(proc: ManagedProcess): ManagedProcess {
  tracked.push(proc);
  return proc;
}

/** Starts a tracked ManagedProcess whose environment is PATH, PORT=0 (any free port) and `spec.env`. */
export function startManaged(spec: Omit<SpawnSpec, "env"> & { env?: Record<string, string> }): ManagedProcess {
  const proc = track(new ManagedProcess({ ...spec, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", PORT: "0", ...spec.env } }));
  proc.start();
  return proc;
}

/** The fixture app as `web` (20 output lines, 2 s to stop) with `env`, once it listens, and its port. */
export async function startFixtureApp(env: Record<string, string> = {}): Promise<{ proc: ManagedProcess; port: number }> {
  const proc = startManaged({ instanceId: "web", command: APP_COMMAND, cwd: tmpdir(), env, outputLines: 20, stopSignal: "SIGTERM", gracefulStopMs: 2_000 });
  const line = await waitForLine(proc, /^listening on /);
  return { proc, port: Number(line.slice("listening on ".length)) };
}

/** SIGKILLs the group of every tracked process that has not exited (for an afterEach), and forgets them. */
export function killTracked(): void {
  for (const proc of tracked.splice(0)) {
    if (proc.pid !== undefined && proc.exitInfo === undefined) killQuietly(-proc.pid);
  }
}

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
