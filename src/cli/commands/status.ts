// `rollbridge status`: desired vs observed — releases, processes, proxy, conditions.
import type { StatusDocument } from "../../reconcile/status.js";
import type { Command } from "../command.js";
import { daemonRequest } from "../context.js";
import { bold, formatBytes, formatMs, green, printError, printJson, red, table, yellow } from "../output.js";

export const statusCommand: Command = {
  name: "status",
  summary: "desired vs observed: releases, processes, proxy, conditions, orphans",
  usage: "rollbridge status [--json]",
  example: "rollbridge status --json | jq .activeRelease",
  options: {},
  async run(ctx) {
    try {
      const { result } = await daemonRequest<StatusDocument>(ctx, "GET", "/status");
      if (ctx.json) printJson(ctx, result);
      else ctx.stdout(renderStatus(result));
      return 0;
    } catch (error) {
      return printError(ctx, error, 1);
    }
  },
};

function stateColor(state: string): string {
  if (state === "active" || state === "running") return green(state);
  if (state === "failed" || state === "crashed") return red(state);
  if (state === "starting" || state === "draining" || state === "stopping") return yellow(state);
  return state;
}

export function renderStatus(s: StatusDocument): string {
  let out = `${bold(s.application)}  ${s.converged ? green("converged") : yellow("not converged")}  proxy ${s.proxy.host}:${s.proxy.port}  daemon pid ${s.daemonPid}\n`;
  const d = s.desired;
  out += `desired: ${d.stopped ? "stopped" : d.releaseId ? `${d.releaseId} (${d.path}${d.requestedPath && d.requestedPath !== d.path ? ` via ${d.requestedPath}` : ""})` : "none yet"}\n`;
  if (d.error) out += `${red("desired file error:")} ${d.error}\n`;
  for (const c of s.conditions.filter((c) => c.status && c.type !== "Ready")) out += `${c.type === "Degraded" ? red(c.type) : yellow(c.type)}: ${c.message}\n`;
  out += "\n";
  if (s.releases.length) {
    out += table(
      ["RELEASE", "STATE", "REVISION", "CONNECTIONS", "PATH"],
      s.releases.map((r) => [r.id, stateColor(r.state), r.revision, `${r.connections.inflight} http, ${r.connections.websockets} ws`, r.path]),
    );
    for (const r of s.releases.filter((r) => r.failure)) out += `${red("failed")} ${r.id}: ${r.failure?.reason}\n`;
    out += "\n";
  }
  if (s.processes.length) {
    const memory = s.processes.some((p) => p.rssBytes !== undefined);
    out += table(
      ["PROCESS", "RELEASE", "STATE", "PID", "PORT", "RESTARTS", "UPTIME", "LAST START", ...(memory ? ["MEMORY"] : [])],
      s.processes.map((p) => [
        p.instanceId,
        p.releaseId,
        stateColor(p.state),
        p.pid,
        p.port,
        p.memoryRestarts ? `${p.restarts} (${p.memoryRestarts} memory)` : p.restarts,
        p.uptimeMs === null ? null : formatMs(p.uptimeMs),
        p.lastStartReason,
        ...(memory ? [p.rssBytes === undefined ? null : formatBytes(p.rssBytes)] : []),
      ]),
    );
  }
  if (s.orphans.length) {
    out += `\n${red(`${s.orphans.length} orphaned process${s.orphans.length === 1 ? "" : "es"}`)} left by a daemon that died (rollbridge recover --force stops them):\n`;
    out += table(["ORPHAN", "RELEASE", "PID", "PORT", "SINCE"], s.orphans.map((o) => [o.instanceId, o.releaseId, o.pid, o.port, o.detectedAt]));
  }
  if (!s.releases.length && !s.processes.length) out += "nothing deployed yet: rollbridge deploy --release-path P\n";
  return out;
}
