// `rollbridge logs`: the retained output lines of managed processes, each with its time,
// release, instance id, pid and stream, merged in time order.
import type { LogLine, LogsResponse } from "../../control/protocol.js";
import { isRollbridgeError } from "../../errors.js";
import type { Command } from "../command.js";
import { daemonFor, daemonRequest } from "../context.js";
import { follow } from "../follow.js";
import { dim, printError, printJson, red, usageError } from "../output.js";
import { parseSince } from "../since.js";

export const logsCommand: Command = {
  name: "logs",
  summary: "recent captured output of managed processes (time, release, instance, pid, stream)",
  usage: "rollbridge logs [--process ID] [--lines N] [--since DURATION|TIME] [--follow]",
  example: "rollbridge logs --process web --since 10m --follow",
  options: {
    process: { type: "string", short: "p", description: "only this process (base id or replica id like worker#0)", valueName: "ID", complete: "processes" },
    lines: { type: "string", short: "n", description: "only the last N lines (with --follow: of the retained ones; 0 prints only new lines)", valueName: "N" },
    since: { type: "string", description: "only lines since a duration ago (30s, 5m, 2h, 1d) or a time (2026-12-01T12:00:00Z)", valueName: "DURATION" },
    follow: { type: "boolean", short: "f", description: "keep printing new lines until interrupted (Ctrl-C)" },
  },
  async run(ctx) {
    let route: string;
    try {
      route = `?${logParams(ctx.values, Boolean(ctx.values.follow)).toString()}`.replace(/\?$/, "");
    } catch (error) {
      return printError(ctx, error, 2);
    }
    try {
      if (ctx.values.follow) {
        return await follow(ctx, (await daemonFor(ctx)).endpoint, `/logs/follow${route}`, (value) => renderLine(value as LogLine));
      }
      const { result } = await daemonRequest<LogsResponse>(ctx, "GET", `/logs${route}`);
      if (ctx.json) printJson(ctx, result);
      else for (const line of result.lines) ctx.stdout(renderLine(line));
      return 0;
    } catch (error) {
      return printError(ctx, error, isRollbridgeError(error, "USAGE") ? 2 : 1);
    }
  },
};

/** The query of `/logs` and `/logs/follow` from the flags; throws USAGE errors for bad values. */
function logParams(values: Record<string, unknown>, following: boolean): URLSearchParams {
  const params = new URLSearchParams();
  if (values.process) params.set("process", String(values.process));
  if (values.lines !== undefined) {
    const n = Number(values.lines);
    const min = following ? 0 : 1;
    if (!Number.isSafeInteger(n) || n < min) throw usageError(`--lines ${String(values.lines)}: expected ${min === 0 ? "a non-negative" : "a positive"} integer`, "e.g. --lines 100 (-n 100)");
    params.set("lines", String(n));
  }
  if (values.since !== undefined) params.set("since", String(parseSince(String(values.since))));
  return params;
}

/** `2026-12-02T01:41:06.881Z v3 web[18801] stderr | boom`: the journalctl `name[pid]` form. */
function renderLine(l: LogLine): string {
  const stream = l.stream === "stderr" ? red("stderr") : dim("stdout");
  return `${dim(`${l.at} ${l.releaseId} ${l.instanceId}[${l.pid ?? "?"}]`)} ${stream} ${dim("|")} ${l.line}\n`;
}
