// `rollbridge events`: the daemon's structured history.
import type { DaemonEvent } from "../../control/protocol.js";
import type { Command } from "../command.js";
import { daemonFor, daemonRequest } from "../context.js";
import { follow } from "../follow.js";
import { dim, printError, printJson, usageError } from "../output.js";

export const eventsCommand: Command = {
  name: "events",
  summary: "recent structured event history (deploys, switches, drains, crashes)",
  usage: "rollbridge events [--limit N] [--follow]",
  example: "rollbridge events --limit 20 --follow",
  options: {
    limit: { type: "string", short: "n", description: "at most N events (default 100; with --follow, 0 prints only new ones)", valueName: "N" },
    follow: { type: "boolean", short: "f", description: "keep printing new events until interrupted (Ctrl-C)" },
  },
  async run(ctx) {
    try {
      const limit = ctx.values.limit === undefined ? 100 : Number(ctx.values.limit);
      const min = ctx.values.follow ? 0 : 1;
      if (!Number.isInteger(limit) || limit < min) throw usageError(`--limit ${String(ctx.values.limit)}: expected ${min === 0 ? "a non-negative" : "a positive"} integer`);
      if (ctx.values.follow) {
        return await follow(ctx, (await daemonFor(ctx)).endpoint, `/events/follow?limit=${limit}`, (value) => renderEvent(value as DaemonEvent));
      }
      const { result } = await daemonRequest<{ events: DaemonEvent[] }>(ctx, "GET", `/events?limit=${limit}`);
      if (ctx.json) printJson(ctx, result);
      else for (const e of result.events) ctx.stdout(renderEvent(e));
      return 0;
    } catch (error) {
      return printError(ctx, error, 1);
    }
  },
};

function renderEvent(e: DaemonEvent): string {
  return `${dim(e.at)} ${e.level === "info" ? "" : e.level.toUpperCase() + " "}${e.message}\n`;
}
