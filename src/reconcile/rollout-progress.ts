// What a rollout is waiting for, in words, and what still drains once it serves: read by
// `apply --wait` between events (a line at least every 2 s) and in its outcome. Read-only: it
// looks at the executor's slots and never changes them.
import type { Config, ProcessConfig } from "../config/schema.js";
import type { Executor } from "./execute.js";
import type { ReadinessTarget } from "./instance.js";
import type { ObservedState, Plan } from "./types.js";
import { processById } from "../config/process-by-id.js";

/** A release still finishing its connections after traffic moved off it. */
export interface DrainingRelease {
  releaseId: string;
  key: string;
  inflight: number;
  websockets: number;
  /** When its remaining connections are closed (ISO), if it has a deadline. */
  deadline: string | null;
}

/** Draining releases, the most recently retired first. */
export function drainingReleases(observed: ObservedState): DrainingRelease[] {
  return observed.releases
    .filter((r) => r.record.state === "draining")
    .sort((a, b) => (b.record.drainStartedAt ?? 0) - (a.record.drainStartedAt ?? 0))
    .map((r) => ({
      releaseId: r.record.spec.id,
      key: r.record.key,
      inflight: r.connections.inflight,
      websockets: r.connections.websockets,
      deadline: r.record.drainDeadline === undefined ? null : new Date(r.record.drainDeadline).toISOString(),
    }));
}

/**
 * What a wait is waiting for right now, in a line or a few: the pending readiness checks of
 * release `key`, else the releases still draining, else what the plan says it is doing.
 */
export function progressLines(config: Config, executor: Executor, plan: Plan | null, key: string | null, now: number): string[] {
  const pending = key ? pendingReadiness(config, executor, key, now) : [];
  if (pending.length > 0) return pending;
  if (plan?.converged !== false) return [];
  const draining = drainingReleases(executor.observe()).filter((d) => d.key !== key);
  if (draining.length > 0) return draining.map((d) => `draining ${describeDrain(d, now)}`);
  const condition = plan.conditions.find((c) => c.type === "Progressing" && c.status) ?? plan.conditions.find((c) => c.type === "Degraded" && c.status);
  return condition ? [condition.message] : [];
}

/** `v1: 1 WebSocket, up to 30 s` — what still holds a draining release and for how long at most. */
export function describeDrain(d: Pick<DrainingRelease, "releaseId" | "inflight" | "websockets" | "deadline">, now: number): string {
  const open = [d.inflight > 0 ? plural(d.inflight, "request") : "", d.websockets > 0 ? plural(d.websockets, "WebSocket") : ""].filter(Boolean).join(" and ");
  if (!open) return `${d.releaseId}: no open connections, stopping its processes`;
  const left = d.deadline === null ? null : Date.parse(d.deadline) - now;
  return `${d.releaseId}: ${open}${left === null ? "" : `, up to ${seconds(Math.max(0, Math.ceil(left / 1000) * 1000))}`}`;
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

/**
 * One line per instance of release `key` whose readiness check is still pending, e.g.
 * `waiting for web (v2): HTTP 500 for 4.0 s of 15 s` — the last probe's answer (or its
 * connection error), how long the check has run, and its timeout.
 */
export function pendingReadiness(config: Config, executor: Executor, key: string, now: number): string[] {
  const rec = executor.runtime.recordFor(key);
  const lines: string[] = [];
  for (const inst of executor.runtime.instances.get(key)?.values() ?? []) {
    if (inst.stopRequested) continue;
    const proc = processById(config, inst.processId);
    if (!proc) continue;
    const label = `${inst.instanceId} (${rec?.spec.id ?? key})`;
    const current = describeWait(proc, inst, inst.startedAt, now);
    if (current) lines.push(`waiting for ${label}: ${current}`);
    const succ = inst.successor;
    const next = succ ? describeWait(proc, succ, succ.startedAt, now) : null;
    if (next) lines.push(`waiting for the replacement of ${label}: ${next}`);
  }
  return lines;
}

function describeWait(proc: ProcessConfig, target: ReadinessTarget, startedAt: number | undefined, now: number): string | null {
  if (target.healthState !== "pending" || proc.health === false) return null;
  const timeout = proc.health.timeoutMs;
  const check = target.health;
  // With health.ipc as well, a passed HTTP check leaves only the IPC message to wait for.
  if (check && check.state !== "ready") {
    const since = check.probingSince;
    if (since === undefined) return `first probe of ${check.url} after ${seconds(proc.health.startDelayMs)} (startDelayMs)`;
    const last = check.lastResult;
    const answer = last === undefined ? `no answer yet from ${check.url}` : last.status !== undefined ? `HTTP ${last.status}` : (last.error ?? "no answer");
    return `${answer} for ${seconds(now - since, 1)} of ${seconds(timeout)}`;
  }
  // Its HTTP check passed and it has no IPC gate: ready once its listener is verified and the next pass records it.
  if (check && !proc.health.ipc) return null;
  // IPC-gated only: the process has not said "online"/"ready" yet.
  const elapsed = startedAt === undefined ? 0 : now - startedAt - proc.health.startDelayMs;
  return `no "online" or "ready" IPC message yet, ${seconds(Math.max(0, elapsed), 1)} of ${seconds(timeout)}`;
}

/** 4000 → "4.0 s" with one decimal, 15000 → "15 s" without. */
function seconds(ms: number, decimals?: number): string {
  const s = ms / 1000;
  return `${decimals === undefined && Number.isInteger(s) ? String(s) : s.toFixed(decimals ?? 1)} s`;
}
