// `rollbridge status`: desired vs observed — releases, processes, proxy, conditions.
import type { ReleaseStatus, StatusDocument } from "../../control/protocol.js";
import type { Command } from "../command.js";
import { daemonRequest } from "../context.js";
import { bold, dim, formatBytes, formatMs, green, printError, printJson, red, table, yellow } from "../output.js";

export const statusCommand: Command = {
  name: "status",
  summary: "desired vs observed: releases, processes, proxy, conditions, orphans",
  usage: "rollbridge status [--all] [--json]",
  example: "rollbridge status --json | jq .activeRelease",
  options: {
    all: { type: "boolean", short: "a", description: "also list the stopped and failed processes of retired releases" },
  },
  async run(ctx) {
    try {
      const { result } = await daemonRequest<StatusDocument>(ctx, "GET", ctx.values.all ? "/status?all=true" : "/status");
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

function outcomeColor(outcome: NonNullable<StatusDocument["rollout"]>["outcome"]): string {
  switch (outcome) {
    case "serving":
      return green(outcome);
    case "in-progress":
      return yellow(outcome);
    case "failed":
    case "rolled-back":
    case "superseded":
      return red(outcome);
    default: {
      const _exhaustive: never = outcome;
      return _exhaustive;
    }
  }
}

export function renderStatus(s: StatusDocument, now: number = Date.now()): string {
  let out = `${bold(s.application)}  ${s.converged ? green("converged") : yellow("not converged")}  proxy ${proxyListeners(s.proxy)}  daemon pid ${s.daemonPid}\n`;
  const d = s.desired;
  out += `desired: ${d.stopped ? "stopped" : d.releaseId ? `${d.releaseId} (${d.path}${d.requestedPath && d.requestedPath !== d.path ? ` via ${d.requestedPath}` : ""})` : "none yet"}\n`;
  if (d.error) out += `${red("desired file error:")} ${d.error}\n`;
  for (const c of s.conditions.filter((c) => c.status && c.type !== "Ready" && !(s.rolloutPhase && (c.reason === "Canary" || c.reason === "Baking"))))
    out += `${c.type === "Degraded" ? red(c.type) : yellow(c.type)} (${c.reason}): ${c.message}\n`;
  // Older daemons send neither proxy.paused nor rolloutPhase.
  if (s.proxy.paused) out += `${yellow("paused")}: new requests are held (each up to proxy.holdTimeoutMs, then 503) until rollbridge resume\n`;
  if (s.rolloutPhase) out += `rollout: ${s.rolloutPhase.releaseId} ${s.rolloutPhase.message}${s.rolloutPhase.previousReleaseId ? ` (${s.rolloutPhase.previousReleaseId} ready to take traffic back)` : ""}\n`;
  // After the conditions, which stay right under the desired line (the troubleshooting page's order).
  if (s.rollout) out += `last rollout: ${s.rollout.releaseId} ${outcomeColor(s.rollout.outcome)}${s.rollout.reason ? `: ${s.rollout.reason}` : ""}\n`;
  out += "\n";
  if (s.releases.length) {
    out += table(
      ["RELEASE", "STATE", "REVISION", "CONNECTIONS", "PATH"],
      s.releases.map((r) => [r.id, stateColor(r.state), r.revision, `${r.connections.inflight} http, ${r.connections.websockets} ws`, r.path]),
    );
    for (const r of s.releases) if (r.failure) out += failureLines(r.id, r.failure, s, now);
    out += "\n";
  }
  if (s.processes.length) {
    out += table(
      ["PROCESS", "RELEASE", "STATE", "PID", "PORT", "CPU", "MEMORY", "RESTARTS", "UPTIME", "LAST START"],
      s.processes.map((p) => [
        p.instanceId,
        p.releaseId,
        stateColor(p.state),
        p.pid,
        p.port,
        p.cpuPercent === null ? null : `${p.cpuPercent.toFixed(1)}%`,
        p.rssBytes === null ? null : formatBytes(p.rssBytes),
        p.memoryRestarts ? `${p.restarts} (${p.memoryRestarts} memory)` : p.restarts,
        p.uptimeMs === null ? null : formatMs(p.uptimeMs),
        p.lastStartReason,
      ]),
    );
  }
  if (s.hiddenProcesses > 0) {
    out += dim(`(${s.hiddenProcesses} stopped process${s.hiddenProcesses === 1 ? "" : "es"} of retired releases not shown: rollbridge status --all lists them)`) + "\n";
  }
  for (const p of s.processes.filter((p) => p.error)) out += `${red(p.state === "failed" ? "failed" : "error")} ${p.instanceId} (${p.releaseId}): ${p.error}\n`;
  if (s.orphans.length) {
    out += `\n${red(`${s.orphans.length} orphaned process${s.orphans.length === 1 ? "" : "es"}`)} left by a daemon that died (rollbridge recover --force stops them):\n`;
    out += table(
      ["ORPHAN", "RELEASE", "PID", "PORT", "SINCE"],
      s.orphans.map((o) => [o.instanceId, o.releaseId, o.pid, o.port, o.detectedAt]),
    );
  }
  if (!s.releases.length && !s.processes.length) out += "nothing deployed yet: rollbridge deploy --release-path P\n";
  return out;
}

/** Why a release failed; for the desired one, when it is tried again and how to stop that. */
function failureLines(id: string, f: NonNullable<ReleaseStatus["failure"]>, s: StatusDocument, now: number): string {
  let out = `${red("failed")} ${id}: ${f.reason}${f.attempts > 1 ? ` (${f.attempts} attempts in a row)` : ""}\n`;
  if (f.code === "ROLLED_BACK") return `${out}  it is not tried again by itself: apply it again (a fixed one, or the same one) to roll it out anew\n`;
  if (f.retryAt === null) return out;
  const inMs = Date.parse(f.retryAt) - now;
  const when = inMs > 0 ? `at ${f.retryAt} (in ${formatMs(inMs)})` : "now";
  const back = s.activeRelease ? `, apply the active release ${s.activeRelease.id} again` : "";
  out += `  it is the desired release: tried again ${when}, and on after each failure with a longer wait (up to 5 min)\n`;
  out += `  to stop that, change the desired state: deploy a fixed release${back}, or rollbridge stop (then nothing serves)\n`;
  return out;
}

// "127.0.0.1:8182", "unix:/run/rollbridge-proxy/shop.sock" or both (older daemons report no socket).
function proxyListeners(proxy: { host: string; port: number; tcp?: boolean; socket?: string | null }): string {
  const tcp = proxy.tcp === false ? [] : [`${proxy.host}:${proxy.port}`];
  return [...tcp, ...(proxy.socket ? [`unix:${proxy.socket}`] : [])].join(" + ");
}
