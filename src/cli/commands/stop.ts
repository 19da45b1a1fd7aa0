// `rollbridge stop`: desired state `stopped: true` (traffic gets 503), waiting for the drain.
import { promises as fs } from "node:fs";
import { parseDesiredText, type DesiredDocument } from "../../config/desired-schema.js";
import { request } from "../../control/client.js";
import type { ApplyResponse } from "../../control/protocol.js";
import type { Command } from "../command.js";
import { daemonFor } from "../context.js";
import { printError, printJson } from "../output.js";
import { followRollout } from "../wait-output.js";

export const stopCommand: Command = {
  name: "stop",
  summary: "stop the active release (desired state stopped: true); new requests get 503",
  usage: "rollbridge stop [--no-wait]",
  example: "rollbridge stop --config /etc/rollbridge/app.yaml",
  options: { "no-wait": { type: "boolean", description: "return once the desired file is written" } },
  async run(ctx) {
    try {
      const target = await daemonFor(ctx);
      const desiredPath = await target.desiredPath();
      let current: DesiredDocument = {};
      try {
        current = parseDesiredText(await fs.readFile(desiredPath, "utf8"), desiredPath);
      } catch {
        // no (valid) desired file: stopped is all we write
      }
      const socket = target.endpoint;
      const applied = await request<ApplyResponse>(socket, "PUT", "/desired", { document: { ...current, stopped: true } });
      if (ctx.values["no-wait"]) {
        if (ctx.json) printJson(ctx, { ok: true, ...applied });
        else ctx.stdout(`wrote ${applied.file}: stopped\n`);
        return 0;
      }
      const result = await followRollout(ctx, socket, { stopped: true, since: applied.sinceSeq });
      const ok = result.outcome.outcome === "converged";
      if (ctx.json) printJson(ctx, { ok, ...applied, outcome: result.outcome });
      return ok ? 0 : 1;
    } catch (error) {
      return printError(ctx, error, 1);
    }
  },
};
