// `rollbridge ensure-daemon`: start a detached daemon unless one already answers; idempotent,
// safe to run from several deploy scripts at once.
import type { Command, OptionSpec } from "../command.js";
import { configFor } from "../context.js";
import { ensureDaemon } from "../daemon-launch.js";
import { green, printError, printJson } from "../output.js";

export const ENSURE_OPTIONS: Record<string, OptionSpec> = {
  "daemon-log-path": { type: "string", description: "append the started daemon's output here (default /tmp/rollbridge-<application>.log)", valueName: "P" },
  "daemon-pid-path": { type: "string", description: "write the daemon's pid to this file", valueName: "P" },
};

export const ensureDaemonCommand: Command = {
  name: "ensure-daemon",
  summary: "start a detached daemon unless one answers on the control socket",
  usage: "rollbridge ensure-daemon [--daemon-log-path P] [--daemon-pid-path P]",
  example: "rollbridge ensure-daemon --config /etc/rollbridge/app.yaml --daemon-log-path /var/log/rollbridge/app.log",
  options: { ...ENSURE_OPTIONS },
  async run(ctx) {
    try {
      const loaded = await configFor(ctx);
      const result = await ensureDaemon(loaded, { logPath: ctx.values["daemon-log-path"] as string | undefined, pidPath: ctx.values["daemon-pid-path"] as string | undefined });
      if (ctx.json) printJson(ctx, { ok: true, ...result });
      else if (result.started) ctx.stdout(`${green("✓")} started daemon ${result.pid} on ${result.socket} (log: ${result.logPath})\n`);
      else ctx.stdout(`${green("✓")} daemon ${result.pid} already running on ${result.socket}\n`);
      return 0;
    } catch (error) {
      return printError(ctx, error, 1);
    }
  },
};
