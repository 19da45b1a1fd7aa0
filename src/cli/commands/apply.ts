// `rollbridge apply` (and `deploy`): write the desired file through the daemon, optionally
// following the rollout to its end.
import type { ApplyResponse } from "../../control/protocol.js";
import { request } from "../../control/client.js";
import type { Command, CommandContext, OptionSpec } from "../command.js";
import { daemonFor } from "../context.js";
import { DESIRED_OPTIONS, desiredFromInput } from "../desired-input.js";
import { printError, usageError } from "../output.js";
import { WAIT_DRAINED_OPTION, finishRollout, parseTimeoutFlag, printWarnings } from "../wait-output.js";

const WAIT_OPTIONS: Record<string, OptionSpec> = {
  wait: { type: "boolean", description: "block until the new release serves all new traffic (exit 0) or the rollout fails (exit 1); the old release drains in the background" },
  "wait-drained": WAIT_DRAINED_OPTION,
  timeout: { type: "string", description: "with --wait: give up after MS milliseconds (exit 124; a rollout still starting is abandoned)", valueName: "MS" },
};

export const applyCommand: Command = {
  name: "apply",
  summary: "write the desired state (atomically) and have the daemon converge to it",
  usage: "rollbridge apply [-f FILE|-] [--release-path P] [--revision R] [--release-id ID] [--replicas id=N]... [--bake MS] [--canary 10,50] [--max-p99 MS] [--wait] [--wait-drained] [--timeout MS]",
  example: "rollbridge apply --release-path /srv/app/releases/20261123120000 --revision abc123 --wait",
  options: { ...DESIRED_OPTIONS, ...WAIT_OPTIONS },
  run: (ctx) => runApply(ctx, Boolean(ctx.values.wait)),
};

export async function runApply(ctx: CommandContext, wait: boolean): Promise<number> {
  try {
    const target = await daemonFor(ctx);
    const body = await desiredFromInput(ctx, target);
    if (!body) throw usageError("nothing to apply", "pass -f FILE (or - for stdin), --release-path P, or --replicas id=N");
    const timeoutMs = parseTimeoutFlag(ctx.values.timeout);
    const socket = target.endpoint;
    const applied = await request<ApplyResponse>(socket, "PUT", "/desired", body);
    if (!ctx.json) {
      ctx.stdout(`wrote ${applied.file}: ${applied.stopped ? "stopped" : `release ${applied.releaseId}`}\n`);
      for (const change of applied.changes) ctx.stdout(`  ${change.message}\n`);
      if (applied.changes.length === 0) ctx.stdout("  no changes: already converged\n");
    }
    printWarnings(ctx, applied.warnings);
    return await finishRollout(ctx, socket, applied, { wait, waitDrained: Boolean(ctx.values["wait-drained"]), timeoutMs });
  } catch (error) {
    return printError(ctx, error, 1);
  }
}
