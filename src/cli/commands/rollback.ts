// `rollbridge rollback`: make a retained release the desired one again (through the desired
// file, like every imperative change) and follow the rollout like `apply --wait`.
import { request } from "../../control/client.js";
import type { RollbackResponse } from "../../control/protocol.js";
import type { Command } from "../command.js";
import { daemonFor } from "../context.js";
import { printError, usageError } from "../output.js";
import { WAIT_DRAINED_OPTION, finishRollout, parseTimeoutFlag, printWarnings } from "../wait-output.js";

export const rollbackCommand: Command = {
  name: "rollback",
  summary: "go back to a retained release (default: the most recently retired one) and wait",
  usage: "rollbridge rollback [--release-id ID] [--wait-drained] [--timeout MS] [--no-wait]",
  example: "rollbridge rollback --release-id 20261122090000",
  options: {
    "release-id": { type: "string", description: "the retained release to go back to (rollbridge status lists them)", valueName: "ID", complete: "releases" },
    timeout: { type: "string", description: "give up waiting after MS milliseconds (exit 124)", valueName: "MS" },
    "no-wait": { type: "boolean", description: "return once the desired file is written" },
    "wait-drained": WAIT_DRAINED_OPTION,
  },
  async run(ctx) {
    if (ctx.values["no-wait"] && ctx.values["wait-drained"]) return printError(ctx, usageError("--no-wait and --wait-drained contradict each other", "pass one of them"), 2);
    try {
      const timeoutMs = parseTimeoutFlag(ctx.values.timeout);
      const socket = (await daemonFor(ctx)).endpoint;
      const body = ctx.values["release-id"] === undefined ? {} : { releaseId: String(ctx.values["release-id"]) };
      const applied = await request<RollbackResponse>(socket, "POST", "/rollback", body);
      if (!ctx.json) {
        ctx.stdout(`rolling back to ${applied.toReleaseId} (${applied.toState})${applied.fromReleaseId ? ` from ${applied.fromReleaseId}` : ""}; wrote ${applied.file}\n`);
        if (applied.link) ctx.stdout(`  re-pointed ${applied.link.path} → ${applied.link.target} (the desired file keeps following it)\n`);
        for (const change of applied.changes) ctx.stdout(`  ${change.message}\n`);
      }
      printWarnings(ctx, applied.warnings);
      return await finishRollout(ctx, socket, applied, { wait: !ctx.values["no-wait"], waitDrained: Boolean(ctx.values["wait-drained"]), timeoutMs });
    } catch (error) {
      return printError(ctx, error, 1);
    }
  },
};
