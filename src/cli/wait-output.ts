// Following a rollout for `apply --wait`, `deploy` and `stop`: each step as it happens.
import { stream, type ControlTarget } from "../control/client.js";
import { MAX_TIMEOUT_MS, type ApplyResponse, type ApplyWarning, type WaitOutcome, type WaitProgress } from "../control/protocol.js";
import type { DaemonEvent } from "../control/protocol.js";
import type { CommandContext } from "./command.js";
import { dim, formatMs, green, printJson, red, usageError, yellow } from "./output.js";

export interface WaitResult {
  outcome: WaitOutcome;
  events: DaemonEvent[];
}

export interface WaitQuery {
  generation?: string | null;
  stopped?: boolean;
  since: number;
  timeoutMs?: number;
  /** --wait-drained: also wait until the older releases have drained and stopped. */
  drained?: boolean;
}

export async function followRollout(ctx: CommandContext, socketPath: ControlTarget, query: WaitQuery): Promise<WaitResult> {
  const params = new URLSearchParams({ since: String(query.since) });
  if (query.generation) params.set("generation", query.generation);
  if (query.stopped) params.set("stopped", "true");
  if (query.drained) params.set("drained", "true");
  if (query.timeoutMs) {
    params.set("timeoutMs", String(query.timeoutMs));
    // A rollout not ready by then is abandoned and the previous release kept.
    params.set("abort", "true");
  }
  const started = Date.now();
  const events: DaemonEvent[] = [];
  let outcome: WaitOutcome | null = null;
  const stamp = () => dim(`+${formatMs(Date.now() - started).padStart(8)}`);
  await stream(socketPath, `/wait?${params}`, (line) => {
    const value = line as { event?: DaemonEvent; outcome?: WaitOutcome; progress?: WaitProgress };
    if (value.event) {
      events.push(value.event);
      if (!ctx.json) ctx.stdout(`${stamp()}  ${value.event.message}\n`);
    }
    if (value.progress && !ctx.json) ctx.stdout(`${stamp()}  ${dim(value.progress.message)}\n`);
    if (value.outcome) outcome = value.outcome;
  });
  const final: WaitOutcome = outcome ?? { outcome: "failed", message: "the daemon closed the wait stream early", releaseId: null };
  if (!ctx.json) {
    if (final.outcome === "converged") {
      ctx.stdout(`${green("✓")} ${final.message} (${formatMs(Date.now() - started)})\n`);
      // The old release finishes its connections on its own; say so, and how long at most.
      if (final.draining) ctx.stdout(`${final.draining.message} (in the background; --wait-drained waits until it has stopped)\n`);
    } else {
      ctx.stderr(`${red("✗")} ${final.outcome}: ${final.message}\n`);
      const output = final.failure?.output ?? [];
      if (output.length) {
        ctx.stderr(`last output of ${final.failure?.instanceId ?? "the process"}:\n`);
        for (const line of output) ctx.stderr(`  | ${line}\n`);
      }
    }
  }
  return { outcome: final, events };
}

/** `--timeout MS`: a positive whole number of milliseconds, or undefined when not given. */
export function parseTimeoutFlag(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw usageError(`--timeout ${String(value)}: expected a positive number of milliseconds`);
  if (n > MAX_TIMEOUT_MS) throw usageError(`--timeout ${String(value)}: at most ${MAX_TIMEOUT_MS} ms (about 24.8 days), the longest a timer can wait`, "pass a shorter timeout, or leave --timeout out to wait without one");
  return n;
}

/**
 * After a desired state was written (apply, deploy, rollback): return at once, or follow the
 * rollout to its outcome; prints the JSON document with --json. Returns the exit code.
 */
export async function finishRollout(ctx: CommandContext, socket: ControlTarget, applied: ApplyResponse, options: { wait: boolean; waitDrained?: boolean; timeoutMs: number | undefined }): Promise<number> {
  if (!options.wait && !options.waitDrained) {
    if (ctx.json) printJson(ctx, { ok: true, ...applied });
    return 0;
  }
  const query: WaitQuery = { generation: applied.generation, stopped: applied.stopped, since: applied.sinceSeq, drained: options.waitDrained === true };
  if (options.timeoutMs !== undefined) query.timeoutMs = options.timeoutMs;
  const result = await followRollout(ctx, socket, query);
  const ok = result.outcome.outcome === "converged";
  if (ctx.json) printJson(ctx, { ok, ...applied, outcome: result.outcome, events: result.events });
  return waitExitCode(result.outcome);
}

/**
 * `--timeout` ran out: exit 124, as timeout(1) does, so a script (or a fleet loop) can tell
 * "did not finish in time" from "failed" without parsing the output.
 */
export const WAIT_TIMEOUT_EXIT = 124;

/** The exit code of a wait: 0 converged (serving), 124 timed out, 1 anything else (failed, rolled back, superseded). */
export function waitExitCode(outcome: WaitOutcome): number {
  if (outcome.outcome === "converged") return 0;
  return outcome.outcome === "timeout" ? WAIT_TIMEOUT_EXIT : 1;
}

/** The daemon's warnings about a write (e.g. the desired file stops following a symlink), on stderr. */
export function printWarnings(ctx: CommandContext, warnings: ApplyWarning[] | undefined): void {
  if (ctx.json) return;
  for (const w of warnings ?? []) ctx.stderr(`${yellow("warning:")} ${w.message}\n  ${w.hint}\n`);
}

/** `--wait-drained` for apply, deploy and rollback: the flag and what it means. */
export const WAIT_DRAINED_OPTION = {
  type: "boolean",
  description: "like --wait, and also wait until the old release has drained and stopped",
} as const;
