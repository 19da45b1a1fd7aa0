// `rollbridge apply` (and `deploy`): write the desired file through the daemon, optionally
// following the rollout to its end.
import type { ApplyResponse } from "../../control/protocol.js";
import { request } from "../../control/client.js";
import type { Command, CommandContext, OptionSpec } from "../command.js";
import { configFor } from "../context.js";
import { DESIRED_OPTIONS, desiredFromInput } from "../desired-input.js";
import { printError, printJson, usageError } from "../output.js";
import { followRollout } from "../wait-output.js";

const WAIT_OPTIONS: Record<string, OptionSpec> = {
  wait: { type: "boolean", description: "block until the rollout converges (exit 0) or fails (exit 1)" },
  timeout: { type: "string", description: "with --wait: give up after MS milliseconds (exit 1)", valueName: "MS" },
};

export const applyCommand: Command = {
  name: "apply",
  summary: "write the desired state (atomically) and have the daemon converge to it",
  usage: "rollbridge apply [-f FILE|-] [--release-path P] [--revision R] [--replicas id=N]... [--wait] [--timeout MS]",
  example: "rollbridge apply --release-path /srv/app/releases/20261123120000 --revision abc123 --wait",
  options: { ...DESIRED_OPTIONS, ...WAIT_OPTIONS },
  run: (ctx) => runApply(ctx, Boolean(ctx.values.wait)),
};

export async function runApply(ctx: CommandContext, wait: boolean): Promise<number> {
  try {
    const loaded = await configFor(ctx);
    const document = await desiredFromInput(ctx, loaded);
    if (!document) throw usageError("nothing to apply", "pass -f FILE (or - for stdin), --release-path P, or --replicas id=N");
    const timeoutMs = parseTimeout(ctx.values.timeout);
    const socket = loaded.config.control.path;
    const applied = await request<ApplyResponse>(socket, "PUT", "/desired", { document });
    if (!ctx.json) {
      ctx.stdout(`wrote ${applied.file}: ${applied.stopped ? "stopped" : `release ${applied.releaseId}`}\n`);
      for (const change of applied.changes) ctx.stdout(`  ${change.message}\n`);
      if (applied.changes.length === 0) ctx.stdout("  no changes: already converged\n");
    }
    if (!wait) {
      if (ctx.json) printJson(ctx, { ok: true, ...applied });
      return 0;
    }
    const query: { generation?: string | null; stopped?: boolean; since: number; timeoutMs?: number } = { generation: applied.generation, stopped: applied.stopped, since: applied.sinceSeq };
    if (timeoutMs !== undefined) query.timeoutMs = timeoutMs;
    const result = await followRollout(ctx, socket, query);
    const ok = result.outcome.outcome === "converged";
    if (ctx.json) printJson(ctx, { ok, ...applied, outcome: result.outcome, events: result.events });
    return ok ? 0 : 1;
  } catch (error) {
    return printError(ctx, error, 1);
  }
}

function parseTimeout(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw usageError(`--timeout ${String(value)}: expected a positive number of milliseconds`);
  return n;
}
