// `rollbridge daemon`: the daemon in the foreground; events as JSON lines on stdout.

import type { Command } from "../command.js";
import { configFor } from "../context.js";
import { applyRuntimeFlags, followDaemonChild, startWithHeapFlags } from "../daemon-heap.js";
import { printError } from "../output.js";

export const daemonCommand: Command = {
  name: "daemon",
  summary: "run the daemon in the foreground (proxy, control socket, reconcile loop)",
  usage: "rollbridge daemon [--config PATH]",
  example: "rollbridge daemon --config /etc/rollbridge/app.yaml",
  options: {},
  async run(ctx) {
    // The daemon's own heap flags, when Node was started without them (daemon-heap.ts).
    const start = startWithHeapFlags();
    if (start.kind === "child") return followDaemonChild(start.child);
    applyRuntimeFlags();
    try {
      const loaded = await configFor(ctx);
      const options: { explicitConfigPath?: string; cwd: string } = { cwd: ctx.cwd };
      if (typeof ctx.values.config === "string") options.explicitConfigPath = ctx.values.config;
      const { runDaemon } = await import("../../main.js");
      await runDaemon(loaded, options);
    } catch (error) {
      return printError(ctx, error, 1);
    }
    // Keep running: signals or `shutdown` end the process.
    return new Promise<number>(() => undefined);
  },
};
