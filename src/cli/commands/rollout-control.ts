// `rollbridge promote` / `abort` (a rollout in a canary step or bake window: all traffic to the
// new release now / roll back now) and `pause` / `resume` (hold new requests at the proxy).
import type { PauseResponse, RolloutIntentResponse } from "../../control/protocol.js";
import type { Command, CommandContext } from "../command.js";
import { daemonRequest } from "../context.js";
import { green, printError, printJson, yellow } from "../output.js";

export const promoteCommand: Command = {
  name: "promote",
  summary: "skip the remaining canary steps and the bake window: all new traffic to the new release now",
  usage: "rollbridge promote",
  example: "rollbridge promote --config /etc/rollbridge/app.yaml",
  options: {},
  run: (ctx) => intent(ctx, "promote"),
};

export const abortCommand: Command = {
  name: "abort",
  summary: "roll back a rollout in a canary step or bake window now (traffic back to the old release)",
  usage: "rollbridge abort",
  example: "rollbridge abort --config /etc/rollbridge/app.yaml",
  options: {},
  run: (ctx) => intent(ctx, "abort"),
};

export const pauseCommand: Command = {
  name: "pause",
  summary: "hold new requests at the proxy (each up to proxy.holdTimeoutMs, then 503) until resume",
  usage: "rollbridge pause",
  example: "rollbridge pause && ./migrate.sh && rollbridge resume",
  options: {},
  run: (ctx) => pause(ctx, true),
};

export const resumeCommand: Command = {
  name: "resume",
  summary: "let new requests through again; the held ones go first, in order",
  usage: "rollbridge resume",
  example: "rollbridge resume",
  options: {},
  run: (ctx) => pause(ctx, false),
};

async function intent(ctx: CommandContext, kind: "promote" | "abort"): Promise<number> {
  try {
    const { result } = await daemonRequest<RolloutIntentResponse>(ctx, "POST", `/${kind}`);
    if (ctx.json) printJson(ctx, { ok: true, ...result });
    else ctx.stdout(`${result.result === "pending" ? yellow("…") : green("✓")} ${result.message}\n`);
    return 0;
  } catch (error) {
    return printError(ctx, error, 1);
  }
}

async function pause(ctx: CommandContext, paused: boolean): Promise<number> {
  try {
    const { result } = await daemonRequest<PauseResponse>(ctx, "POST", paused ? "/pause" : "/resume");
    if (ctx.json) printJson(ctx, { ok: true, ...result });
    else ctx.stdout(paused ? `${result.unchanged ? "already paused" : "paused"}: new requests are held until rollbridge resume\n` : `${result.unchanged ? "not paused" : "resumed"}: new requests flow\n`);
    return 0;
  } catch (error) {
    return printError(ctx, error, 1);
  }
}
