// `rollbridge ensure-daemon`: start a detached daemon unless one already answers; idempotent,
// safe to run from several deploy scripts at once.
import type { Command, OptionSpec } from "../command.js";
import { configFor } from "../context.js";
import { ensureDaemon, type EnsureOptions } from "../daemon-launch.js";
import type { CommandContext } from "../command.js";
import { green, printError, printJson, yellow } from "../output.js";

export const ENSURE_OPTIONS: Record<string, OptionSpec> = {
  "daemon-log-path": { type: "string", description: "append the started daemon's output here (default: daemon.log in the private runtime directory)", valueName: "P" },
  "daemon-pid-path": { type: "string", description: "record the daemon's pid here (default: daemon.pid in the private runtime directory)", valueName: "P" },
  "inherit-env": { type: "boolean", description: "start the daemon with this shell's whole environment, not the minimal one" },
};

/** The ensure-daemon flags of a command line, as EnsureOptions. */
export function ensureOptions(ctx: CommandContext): EnsureOptions {
  return {
    logPath: ctx.values["daemon-log-path"] as string | undefined,
    pidPath: ctx.values["daemon-pid-path"] as string | undefined,
    inheritEnv: ctx.values["inherit-env"] === true,
  };
}

export const ensureDaemonCommand: Command = {
  name: "ensure-daemon",
  summary: "start a detached daemon unless one answers on the control socket",
  usage: "rollbridge ensure-daemon [--daemon-log-path P] [--daemon-pid-path P] [--inherit-env]",
  example: "rollbridge ensure-daemon --config /etc/rollbridge/app.yaml --daemon-log-path /var/log/rollbridge/app.log",
  options: { ...ENSURE_OPTIONS },
  async run(ctx) {
    try {
      const loaded = await configFor(ctx);
      const result = await ensureDaemon(loaded, ensureOptions(ctx));
      if (ctx.json) printJson(ctx, { ok: true, ...result });
      else if (result.started) ctx.stdout(`${green("✓")} started daemon ${result.pid} on ${result.socket} (log: ${result.logPath})\n`);
      else ctx.stdout(`${green("✓")} daemon ${result.pid} already running on ${result.socket}\n`);
      if (result.note !== null && !ctx.json) ctx.stderr(`${yellow("note:")} ${result.note}\n`);
      return 0;
    } catch (error) {
      return printError(ctx, error, 1);
    }
  },
};
