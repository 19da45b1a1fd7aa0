// `rollbridge upgrade`: the running daemon starts a new one from the installed code and hands
// it the listeners and every managed process; prints both pids and how long it took.
import type { Command } from "../command.js";
import { daemonRequest } from "../context.js";
import type { UpgradeResponse } from "../../control/protocol.js";
import { green, printError, printJson } from "../output.js";

/** The daemon gives its new daemon 60 s to get ready; this waits a little longer for its answer. */
const UPGRADE_REQUEST_TIMEOUT_MS = 90_000;

export const upgradeCommand: Command = {
  name: "upgrade",
  summary: "replace the running daemon with a new one from the installed code, keeping every connection and process",
  usage: "rollbridge upgrade",
  example: "rollbridge upgrade --config /etc/rollbridge/app.yaml",
  options: {},
  async run(ctx) {
    try {
      const { result } = await daemonRequest<UpgradeResponse>(ctx, "POST", "/upgrade", undefined, UPGRADE_REQUEST_TIMEOUT_MS);
      if (ctx.json) printJson(ctx, result);
      else ctx.stdout(`${green("✓")} daemon ${result.newPid} took over from daemon ${result.oldPid} in ${result.durationMs} ms (the old one finishes its open connections, then exits)\n`);
      return 0;
    } catch (error) {
      return printError(ctx, error, 1);
    }
  },
};
