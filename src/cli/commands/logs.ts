// `rollbridge logs`: the retained output lines of managed processes.
import type { Command } from "../command.js";
import { configFor, daemonRequest } from "../context.js";
import { follow } from "../follow.js";
import { bold, dim, printError, printJson } from "../output.js";

interface LogsResult {
  processes: { instanceId: string; processId: string; releaseId: string; lines: string[] }[];
}

export const logsCommand: Command = {
  name: "logs",
  summary: "recent captured output of managed processes",
  usage: "rollbridge logs [--process ID] [--follow]",
  example: "rollbridge logs --process web --follow",
  options: {
    process: { type: "string", short: "p", description: "only this process (base id or replica id like worker#0)", valueName: "ID", complete: "processes" },
    follow: { type: "boolean", short: "f", description: "keep printing new lines until interrupted (Ctrl-C)" },
  },
  async run(ctx) {
    try {
      const query = ctx.values.process ? `?process=${encodeURIComponent(String(ctx.values.process))}` : "";
      if (ctx.values.follow) {
        const loaded = await configFor(ctx);
        return await follow(ctx, loaded.config.control.path, `/logs/follow${query}`, (value) => {
          const l = value as { instanceId: string; releaseId: string; line: string };
          return `${dim(`${l.instanceId} (${l.releaseId}) |`)} ${l.line}\n`;
        });
      }
      const { result } = await daemonRequest<LogsResult>(ctx, "GET", `/logs${query}`);
      if (ctx.json) printJson(ctx, result);
      else {
        for (const p of result.processes) {
          ctx.stdout(bold(`==> ${p.instanceId} (${p.releaseId}) <==`) + "\n");
          for (const line of p.lines) ctx.stdout(line + "\n");
        }
      }
      return 0;
    } catch (error) {
      return printError(ctx, error, 1);
    }
  },
};
