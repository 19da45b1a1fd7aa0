// `rollbridge diff`: what the daemon would do to reach a desired state. Exit 0 no changes,
// 1 changes, 2 error.
import type { Change } from "../../control/protocol.js";
import type { Command } from "../command.js";
import { daemonFor } from "../context.js";
import { request } from "../../control/client.js";
import { DESIRED_OPTIONS, desiredFromInput } from "../desired-input.js";
import { printError, printJson } from "../output.js";

export const diffCommand: Command = {
  name: "diff",
  summary: "show what would change to reach a desired state (exit 0 none, 1 changes, 2 error)",
  usage: "rollbridge diff [-f FILE|-] [--release-path P] [--revision R] [--release-id ID] [--replicas id=N]... [--bake MS] [--canary 10,50] [--max-p99 MS]",
  example: "rollbridge diff --release-path /srv/app/releases/20261123120000",
  options: { ...DESIRED_OPTIONS },
  async run(ctx) {
    try {
      const target = await daemonFor(ctx);
      const body = (await desiredFromInput(ctx, target)) ?? {};
      const { changes } = await request<{ changes: Change[] }>(target.endpoint, "POST", "/diff", body);
      if (ctx.json) printJson(ctx, { changed: changes.length > 0, changes });
      else if (changes.length === 0) ctx.stdout("no changes: what runs matches that desired state\n");
      else for (const change of changes) ctx.stdout(`~ ${change.message}\n`);
      return changes.length > 0 ? 1 : 0;
    } catch (error) {
      return printError(ctx, error, 2);
    }
  },
};
