// A lifecycle hook: `/bin/sh -c command` in its own process group, bounded by a
// timeout after which the whole group is SIGKILLed. Its result is data (never an
// exception), so a broken or hanging hook can never wedge the stop it belongs to.
import type { Readable } from "node:stream";
import { execa } from "execa";

/** How a hook ended: ran to exit 0, exited otherwise, hit its bound, never started, or was cut short by its caller. */
export type HookOutcome = "ok" | "failed" | "timedOut" | "spawnFailed" | "cancelled";

export interface HookResult {
  outcome: HookOutcome;
  /** Exit code of the hook's shell (null when killed or never started). */
  code: number | null;
  signal: string | null;
  ms: number;
  /** The last few lines of stdout and stderr, interleaved as they arrived, each capped. */
  tail: string[];
  /** Why it could not start: an errno code (never the command line). */
  spawnError?: string;
}

export interface HookOptions {
  command: string;
  cwd: string;
  /** The complete environment of the hook (nothing is inherited). */
  env: Record<string, string>;
  timeoutMs: number;
  /** Aborting kills the hook's group at once (outcome "cancelled"). */
  signal?: AbortSignal;
}

/**
 * Runs one hook to completion, its timeout, or cancellation. Whatever the hook
 * leaves running in its process group is killed when it ends, so a hook never
 * outlives its step; only a member stuck in uninterruptible sleep could.
 */
export async function runHook(options: HookOptions): Promise<HookResult> {
  const startedAt = Date.now();
  const tail = new OutputTail();
  let child: ReturnType<typeof execa>;
  try {
    child = execa("/bin/sh", ["-c", options.command], {
      cwd: options.cwd,
      env: options.env,
      extendEnv: false,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      // Own process group (pgid = pid), so the timeout reaches everything the hook starts.
      detached: true,
      reject: false,
      buffer: false,
      forceKillAfterDelay: false,
    });
  } catch (error) {
    return { outcome: "spawnFailed", code: null, signal: null, ms: Date.now() - startedAt, tail: [], spawnError: errnoOf(error) };
  }
  child.on("error", () => {
    // Spawn failures arrive through the result below.
  });
  const pid = child.pid;
  const streams = [child.stdout, child.stderr];
  const read = Promise.all(streams.map((stream) => readInto(stream, tail)));
  const ended = new Promise<{ code: number | null; signal: string | null; spawnError?: string }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
    child.then(
      (result) => resolve({ code: result.exitCode ?? null, signal: result.signal ?? null, spawnError: errnoOf(result) }),
      (error: unknown) => resolve({ code: null, signal: null, spawnError: errnoOf(error) }),
    );
  });

  let timedOut = false;
  let cancelled = false;
  let killedAt: number | undefined;
  let giveUp: () => void = () => undefined;
  const gaveUp = new Promise<undefined>((resolve) => {
    giveUp = () => resolve(undefined);
  });
  let giveUpTimer: NodeJS.Timeout | undefined;
  const killGroup = (): void => {
    if (pid === undefined || killedAt !== undefined) return;
    killedAt = Date.now();
    signalGroup(pid, "SIGKILL");
    // SIGKILL ends the group at once unless a member is stuck in the kernel; do not wait on that forever.
    giveUpTimer = setTimeout(giveUp, KILL_WAIT_MS);
  };
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, clampTimerMs(options.timeoutMs));
  const onAbort = (): void => {
    cancelled = true;
    killGroup();
  };
  if (options.signal?.aborted === true) onAbort();
  else options.signal?.addEventListener("abort", onAbort, { once: true });

  const end = await Promise.race([ended, gaveUp]);
  clearTimeout(timer);
  clearTimeout(giveUpTimer);
  options.signal?.removeEventListener("abort", onAbort);
  // Background leftovers of the hook go with it (the group is empty after a normal exit).
  if (pid !== undefined) signalGroup(pid, "SIGKILL");
  // Output can trail the exit; a member that escaped the group could hold the pipes open, so bound the wait.
  let drainTimer: NodeJS.Timeout | undefined;
  await Promise.race([read, new Promise((resolve) => (drainTimer = setTimeout(resolve, STREAM_DRAIN_MS)))]);
  clearTimeout(drainTimer);
  for (const stream of streams) stream?.destroy();

  const ms = Date.now() - startedAt;
  const code = end?.code ?? null;
  const signal = end?.signal ?? null;
  if (pid === undefined) return { outcome: "spawnFailed", code, signal, ms, tail: tail.lines(), spawnError: end?.spawnError ?? "unknown" };
  const outcome: HookOutcome = cancelled ? "cancelled" : timedOut ? "timedOut" : code === 0 ? "ok" : "failed";
  return { outcome, code, signal, ms, tail: tail.lines() };
}

const TAIL_LINES = 3;
const TAIL_LINE_CHARS = 200;
const TAIL_BUFFER_CHARS = 4_096;
const KILL_WAIT_MS = 1_000;
const STREAM_DRAIN_MS = 200;
/** setTimeout fires at once for delays above 2^31-1 ms; a longer bound is as good as none. */
const MAX_TIMER_MS = 2_147_483_647;

/** A delay setTimeout honours: non-negative and at most ~24.8 days. */
export function clampTimerMs(ms: number): number {
  if (!Number.isFinite(ms)) return ms > 0 ? MAX_TIMER_MS : 0;
  return Math.min(MAX_TIMER_MS, Math.max(0, ms));
}

/** Signals a whole process group; a group that is already gone is not an error. */
function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: nothing left; EPERM: not ours to kill.
  }
}

function readInto(stream: Readable | null | undefined, tail: OutputTail): Promise<void> {
  if (stream == null) return Promise.resolve();
  const decoder = new TextDecoder();
  return new Promise((resolve) => {
    stream.on("data", (chunk: Buffer | string) => tail.push(typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true })));
    stream.once("error", () => resolve());
    stream.once("close", () => resolve());
  });
}

/** The errno code of a spawn failure ("ENOENT"), never its message: execa's messages quote the command line. */
function errnoOf(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const direct = (value as { code?: unknown }).code;
  if (typeof direct === "string") return direct;
  const cause = (value as { cause?: unknown }).cause;
  const nested = typeof cause === "object" && cause !== null ? (cause as { code?: unknown }).code : undefined;
  return typeof nested === "string" ? nested : undefined;
}

/** The end of a hook's output: a bounded character buffer cut into its last non-empty lines. */
class OutputTail {
  #text = "";

  push(chunk: string): void {
    this.#text = (this.#text + chunk).slice(-TAIL_BUFFER_CHARS);
  }

  lines(): string[] {
    return this.#text
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line.length > 0)
      .slice(-TAIL_LINES)
      .map((line) => (line.length > TAIL_LINE_CHARS ? `${line.slice(0, TAIL_LINE_CHARS)}…` : line));
  }
}
