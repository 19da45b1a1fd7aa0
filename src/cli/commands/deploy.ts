// `rollbridge deploy`: `apply --wait` for one release, the classic deploy-script verb.
import type { Command } from "../command.js";
import { DESIRED_OPTIONS } from "../desired-input.js";
import { configFor } from "../context.js";
import { ensureDaemon } from "../daemon-launch.js";
import { dim, printError, usageError } from "../output.js";
import { runApply } from "./apply.js";
import { ENSURE_OPTIONS, ensureOptions } from "./ensure-daemon.js";
import { WAIT_DRAINED_OPTION } from "../wait-output.js";

export const deployCommand: Command = {
  name: "deploy",
  summary: "deploy a release and wait for it (apply --wait with these flags)",
  usage:
    "rollbridge deploy --release-path P [--revision R] [--release-id ID] [--replicas id=N]... [--bake MS] [--canary 10,50] [--max-p99 MS] [--wait-drained] [--timeout MS] [--ensure-daemon [--daemon-log-path P] [--daemon-pid-path P] [--inherit-env]]",
  example: "rollbridge deploy --release-path /srv/app/releases/20261123120000 --revision abc123",
  options: {
    "release-path": DESIRED_OPTIONS["release-path"]!,
    revision: DESIRED_OPTIONS.revision!,
    "release-id": DESIRED_OPTIONS["release-id"]!,
    replicas: DESIRED_OPTIONS.replicas!,
    bake: DESIRED_OPTIONS.bake!,
    canary: DESIRED_OPTIONS.canary!,
    "max-p99": DESIRED_OPTIONS["max-p99"]!,
    "wait-drained": WAIT_DRAINED_OPTION,
    timeout: { type: "string", description: "give up after MS milliseconds (exit 124)", valueName: "MS" },
    "ensure-daemon": { type: "boolean", description: "start a detached daemon first when none answers (see ensure-daemon)" },
    ...ENSURE_OPTIONS,
  },
  async run(ctx) {
    if (!ctx.values["release-path"]) return printError(ctx, usageError("deploy needs --release-path", "rollbridge deploy --release-path /srv/app/releases/<ts>"), 2);
    if (ctx.values["ensure-daemon"]) {
      try {
        const result = await ensureDaemon(await configFor(ctx), ensureOptions(ctx));
        if (result.started) ctx.stderr(dim(`started daemon ${result.pid} (log: ${result.logPath})`) + "\n");
      } catch (error) {
        return printError(ctx, error, 1);
      }
    } else if (ctx.values["daemon-log-path"] || ctx.values["daemon-pid-path"] || ctx.values["inherit-env"]) {
      return printError(ctx, usageError("--daemon-log-path, --daemon-pid-path and --inherit-env need --ensure-daemon"), 2);
    }
    return runApply(ctx, true);
  },
};
