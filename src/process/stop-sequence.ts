// The graceful stop of a managed process, driven by its lifecycle hooks:
//
//   quiet   run lifecycle.quietCommand (bounded by gracefulStopMs)
//   drain   when drainTimeoutMs > 0: run drainCommand bounded by drainTimeoutMs, or else
//           wait up to drainTimeoutMs for the process to exit by itself
//   stop    if still running: run stopCommand (bounded by gracefulStopMs) and give the
//           process the rest of gracefulStopMs, or send stopMessage / stopSignal
//   kill    SIGKILL to the whole group once gracefulStopMs has passed since the stop step began
//
// Hooks get the process's environment plus ROLLBRIDGE_PID (the group leader). A hook
// that fails, hangs or cannot start is reported and skipped past; SIGKILL is always
// the last resort, so the whole sequence is bounded by
// gracefulStopMs (quiet) + drainTimeoutMs + gracefulStopMs (stop) + a few seconds.
import { clampTimerMs, runHook, type HookResult } from "./hook-command.js";
import type { ManagedProcess } from "./managed-process.js";
import type { ExitInfo } from "./types.js";

/** The steps of a graceful stop, in the order they can happen. */
export type StopPhase = "quiet" | "drain" | "stop" | "kill";

/** One finished step, for events and logs: never a command line or an environment value. */
export interface StopStep {
  phase: StopPhase;
  /** What happened, e.g. "exit 0", "timed out after 300 ms; hook killed", "sent SIGTERM; exited after 41 ms". */
  detail: string;
  /** False when the step did not do its job (a failing or hanging hook, a process that outlived its grace). */
  ok: boolean;
  /** How long the step took. */
  ms: number;
}

/** What a graceful stop needs: the process's resolved lifecycle, stop settings, environment and directory. */
export interface StopSequenceOptions {
  lifecycle: { quietCommand?: string | undefined; drainCommand?: string | undefined; drainTimeoutMs: number; stopCommand?: string | undefined };
  stopSignal: NodeJS.Signals;
  /** IPC message sent instead of the signal (SIGKILL after gracefulStopMs still follows). */
  stopMessage?: string | undefined;
  gracefulStopMs: number;
  /** The process's environment; hooks get it plus ROLLBRIDGE_PID=<group leader pid>. */
  env: Record<string, string>;
  cwd: string;
  onStep?: (step: StopStep) => void;
}

const sequences = new WeakMap<ManagedProcess, Promise<ExitInfo>>();

/**
 * Stops `proc` through its lifecycle hooks, then its stop signal, then SIGKILL,
 * and resolves once the whole group is gone. Idempotent per process (a second
 * call returns the first call's promise, whatever its options) and never
 * rejects. An exit that happens after the sequence began (say, the quiet hook
 * made the worker finish) is reported with `requested: true`.
 */
export function stopGracefully(proc: ManagedProcess, options: StopSequenceOptions): Promise<ExitInfo> {
  const running = sequences.get(proc);
  if (running !== undefined) return running;
  const sequence = runSequence(proc, options).catch(() => lastResort(proc));
  sequences.set(proc, sequence);
  return sequence;
}

async function runSequence(proc: ManagedProcess, options: StopSequenceOptions): Promise<ExitInfo> {
  if (proc.exitInfo !== undefined) return proc.exitInfo;
  const pid = proc.pid;
  const grace = Math.max(0, options.gracefulStopMs);
  const signalStop = { signal: options.stopSignal, message: options.stopMessage, graceMs: grace };
  // Never spawned (or failed to), or a plain stop is already under way: there is nothing for hooks to act on.
  if (pid === undefined || proc.phase === "stopping") return proc.stop(signalStop);
  // From here on the process shows as stopping, and an exit during the hooks is not a crash.
  proc.markStopping();

  const report = reporter(options.onStep);
  const exit = exitOf(proc);
  let exited = false;
  void exit.then(() => (exited = true));
  const hook = { cwd: options.cwd, env: { ...options.env, ROLLBRIDGE_PID: String(pid) } };
  const { lifecycle } = options;

  if (lifecycle.quietCommand !== undefined) {
    const result = await runHook({ ...hook, command: lifecycle.quietCommand, timeoutMs: grace });
    report({ phase: "quiet", ...describeHook(result) });
    if (exited) return asRequested(await exit);
  }

  const drainMs = Math.max(0, lifecycle.drainTimeoutMs);
  if (drainMs > 0) {
    if (lifecycle.drainCommand !== undefined) {
      // Nothing is left to drain once the process is gone: stop waiting for the hook then.
      const gone = new AbortController();
      void exit.then(() => gone.abort());
      const result = await runHook({ ...hook, command: lifecycle.drainCommand, timeoutMs: drainMs, signal: gone.signal });
      report({ phase: "drain", ...describeHook(result) });
    } else {
      const startedAt = Date.now();
      const done = await settlesWithin(exit, drainMs);
      const ms = Date.now() - startedAt;
      report({ phase: "drain", ok: done, ms, detail: done ? `process exited by itself after ${ms} ms` : `still running after ${ms} ms` });
    }
    if (exited) return asRequested(await exit);
  }

  const stopStartedAt = Date.now();
  if (lifecycle.stopCommand === undefined) {
    const stopping = proc.stop(signalStop);
    const sent = options.stopMessage !== undefined && proc.spec.ipc === true ? "IPC stop message" : proc.spec.stopSignalTarget === "process" ? `${options.stopSignal} to the main process` : options.stopSignal;
    const inTime = await settlesWithin(stopping, grace);
    const ms = Date.now() - stopStartedAt;
    report({ phase: "stop", ok: inTime, ms, detail: inTime ? `sent ${sent}; exited after ${ms} ms` : `sent ${sent}; still running after ${ms} ms` });
    const final = await stopping;
    if (!inTime) report({ phase: "kill", ok: true, ms: Date.now() - stopStartedAt - ms, detail: "SIGKILL sent to the process group" });
    return asRequested(final);
  }

  const result = await runHook({ ...hook, command: lifecycle.stopCommand, timeoutMs: grace });
  report({ phase: "stop", ...describeHook(result) });
  const remaining = stopStartedAt + grace - Date.now();
  if (await settlesWithin(exit, Math.max(0, remaining))) return asRequested(await exit);
  const killStartedAt = Date.now();
  const final = await proc.stop({ signal: "SIGKILL", graceMs: 0 });
  report({ phase: "kill", ok: true, ms: Date.now() - killStartedAt, detail: `still running ${killStartedAt - stopStartedAt} ms after the stop command; SIGKILL sent to the process group` });
  return asRequested(final);
}

/** Something unexpected went wrong: end the group the bluntest way, and still answer with its exit. */
async function lastResort(proc: ManagedProcess): Promise<ExitInfo> {
  try {
    return asRequested(await proc.stop({ signal: "SIGKILL", graceMs: 0 }));
  } catch {
    return asRequested(await exitOf(proc));
  }
}

function exitOf(proc: ManagedProcess): Promise<ExitInfo> {
  return new Promise((resolve) => proc.onExit(resolve));
}

function asRequested(exit: ExitInfo): ExitInfo {
  return exit.requested ? exit : { ...exit, requested: true };
}

/** True when `promise` settles within `ms`; the timer does not outlive the answer. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), clampTimerMs(ms))));
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A step listener that cannot break the sequence. */
function reporter(onStep: ((step: StopStep) => void) | undefined): (step: StopStep) => void {
  return (step) => {
    try {
      onStep?.(step);
    } catch {
      // An event sink failing must not leave a process half-stopped.
    }
  };
}

/** A hook's result as a step: its status and the last lines it printed. */
function describeHook(result: HookResult): Omit<StopStep, "phase"> {
  const output = result.tail.length > 0 ? `; output: ${result.tail.join(" | ")}` : "";
  const ended = result.signal !== null ? `killed by ${result.signal}` : `exit ${String(result.code)}`;
  switch (result.outcome) {
    case "ok":
      return { ok: true, ms: result.ms, detail: `exit 0${output}` };
    case "failed":
      return { ok: false, ms: result.ms, detail: `${ended}${output}` };
    case "timedOut":
      return { ok: false, ms: result.ms, detail: `timed out after ${result.ms} ms; hook killed${output}` };
    case "cancelled":
      return { ok: true, ms: result.ms, detail: `process exited; hook stopped${output}` };
    case "spawnFailed":
      return { ok: false, ms: result.ms, detail: `could not start the hook (${result.spawnError ?? "unknown error"})` };
    default: {
      const exhaustive: never = result.outcome;
      return exhaustive;
    }
  }
}
