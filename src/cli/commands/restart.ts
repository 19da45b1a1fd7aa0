// `rollbridge restart`: restart processes of the active release in place (reason `manual`);
// the proxied process is replaced new-before-old, so no request fails.
import { request, type ControlTarget } from "../../control/client.js";
import type { RestartTarget } from "../../control/protocol.js";
import type { StatusDocument } from "../../control/protocol.js";
import { RollbridgeError } from "../../errors.js";
import type { Command } from "../command.js";
import { daemonFor } from "../context.js";
import { dim, formatMs, green, printError, printJson } from "../output.js";
import { parseTimeoutFlag } from "../wait-output.js";

interface RestartResult {
  releaseId: string;
  instances: RestartTarget[];
}

export const restartCommand: Command = {
  name: "restart",
  summary: "restart processes in place (the proxied one is replaced with zero downtime)",
  usage: "rollbridge restart [--process ID] [--policy P] [--no-wait] [--timeout MS]",
  example: "rollbridge restart --process worker",
  options: {
    process: { type: "string", short: "p", description: "a process id (all its replicas) or a replica id like worker#0; naming the proxied process replaces it with zero downtime", valueName: "ID", complete: "processes" },
    policy: { type: "string", description: "every process of this policy: proxied, companion, singleton, service", valueName: "P" },
    "no-wait": { type: "boolean", description: "return once the restart is requested" },
    timeout: { type: "string", description: "give up waiting after MS milliseconds (default 120000; exit 1)", valueName: "MS" },
  },
  async run(ctx) {
    try {
      const timeoutMs = parseTimeoutFlag(ctx.values.timeout) ?? 120_000;
      const socket = (await daemonFor(ctx)).endpoint;
      const body: Record<string, string> = {};
      if (ctx.values.process !== undefined) body.process = String(ctx.values.process);
      if (ctx.values.policy !== undefined) body.policy = String(ctx.values.policy);
      const started = Date.now();
      const result = await request<RestartResult>(socket, "POST", "/restart", body);
      if (!ctx.json) {
        for (const i of result.instances) ctx.stdout(`restarting ${i.instanceId} (${i.policy}, pid ${i.pid ?? "-"})${i.zeroDowntime ? ": new instance first, then the old one drains" : ""}\n`);
        if (result.instances.length === 0) ctx.stdout("nothing to restart: the selected processes are already restarting\n");
      }
      if (ctx.values["no-wait"]) {
        if (ctx.json) printJson(ctx, { ok: true, ...result });
        return 0;
      }
      const pids = await waitRestarted(socket, result, started + timeoutMs);
      if (ctx.json) printJson(ctx, { ok: true, ...result, instances: result.instances.map((i) => ({ ...i, newPid: pids.get(i.instanceId) ?? null })) });
      else {
        for (const i of result.instances) ctx.stdout(`${green("✓")} ${i.instanceId} running again (pid ${pids.get(i.instanceId)})\n`);
        ctx.stdout(dim(`done in ${formatMs(Date.now() - started)}`) + "\n");
      }
      return 0;
    } catch (error) {
      return printError(ctx, error, 1);
    }
  },
};

/** Polls status until every instance runs a new pid started for reason `manual`. */
async function waitRestarted(socket: ControlTarget, result: RestartResult, deadline: number): Promise<Map<string, number>> {
  const done = new Map<string, number>();
  for (;;) {
    const status = await request<StatusDocument>(socket, "GET", "/status");
    for (const i of result.instances) {
      const now = status.processes.find((p) => p.instanceId === i.instanceId && p.releaseId === i.releaseId && p.state === "running" && p.pid !== null && p.pid !== i.pid && p.lastStartReason === "manual");
      if (now?.pid) done.set(i.instanceId, now.pid);
    }
    if (done.size === result.instances.length) return done;
    if (Date.now() > deadline) {
      const waiting = result.instances.filter((i) => !done.has(i.instanceId)).map((i) => i.instanceId);
      throw new RollbridgeError("TIMEOUT", `not running again in time: ${waiting.join(", ")}`, { fix: "rollbridge status and rollbridge logs --process ID show why" });
    }
    await new Promise((r) => setTimeout(r, 150));
  }
}
