// `rollbridge rollback`: make a retained release the desired one again (through the desired
// file, like every imperative change) and follow the rollout like `apply --wait`.
import { request } from "../../control/client.js";
import type { RollbackResponse } from "../../control/operation-routes.js";
import type { Command } from "../command.js";
import { configFor } from "../context.js";
import { printError, printJson, usageError } from "../output.js";
import { followRollout } from "../wait-output.js";

export const rollbackCommand: Command = {
  name: "rollback",
  summary: "go back to a retained release (default: the most recently retired one) and wait",
  usage: "rollbridge rollback [--release-id ID] [--timeout MS] [--no-wait]",
  example: "rollbridge rollback --release-id 20261122090000",
  options: {
    "release-id": { type: "string", description: "the retained release to go back to (rollbridge status lists them)", valueName: "ID" },
    timeout: { type: "string", description: "give up waiting after MS milliseconds (exit 1)", valueName: "MS" },
    "no-wait": { type: "boolean", description: "return once the desired file is written" },
  },
  async run(ctx) {
    try {
      const timeoutMs = parseMs(ctx.values.timeout);
      const loaded = await configFor(ctx);
      const socket = loaded.config.control.path;
      const body = ctx.values["release-id"] === undefined ? {} : { releaseId: String(ctx.values["release-id"]) };
      const applied = await request<RollbackResponse>(socket, "POST", "/rollback", body);
      if (!ctx.json) {
        ctx.stdout(`rolling back to ${applied.toReleaseId} (${applied.toState})${applied.fromReleaseId ? ` from ${applied.fromReleaseId}` : ""}; wrote ${applied.file}\n`);
        for (const change of applied.changes) ctx.stdout(`  ${change.message}\n`);
      }
      if (ctx.values["no-wait"]) {
        if (ctx.json) printJson(ctx, { ok: true, ...applied });
        return 0;
      }
      const query: { generation?: string | null; since: number; timeoutMs?: number } = { generation: applied.generation, since: applied.sinceSeq };
      if (timeoutMs !== undefined) query.timeoutMs = timeoutMs;
      const result = await followRollout(ctx, socket, query);
      const ok = result.outcome.outcome === "converged";
      if (ctx.json) printJson(ctx, { ok, ...applied, outcome: result.outcome, events: result.events });
      return ok ? 0 : 1;
    } catch (error) {
      return printError(ctx, error, 1);
    }
  },
};

export function parseMs(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw usageError(`--timeout ${String(value)}: expected a positive number of milliseconds`);
  return n;
}
