// `rollbridge shutdown`: stop the daemon and everything it manages; waits until it is gone.
import { probe } from "../../control/client.js";
import type { Command } from "../command.js";
import { daemonRequest } from "../context.js";
import { printError, printJson } from "../output.js";

export const shutdownCommand: Command = {
  name: "shutdown",
  summary: "stop the daemon and every process it manages",
  usage: "rollbridge shutdown",
  example: "rollbridge shutdown --config /etc/rollbridge/app.yaml",
  options: {},
  async run(ctx) {
    try {
      const { target, result } = await daemonRequest<{ pid: number }>(ctx, "POST", "/shutdown");
      const deadline = Date.now() + 120_000;
      while (Date.now() < deadline && (await probe(target.endpoint, 500))) await new Promise((r) => setTimeout(r, 100));
      if (ctx.json) printJson(ctx, { ok: true, pid: result.pid });
      else ctx.stdout(`daemon ${result.pid} stopped\n`);
      return 0;
    } catch (error) {
      return printError(ctx, error, 1);
    }
  },
};
