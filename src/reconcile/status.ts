// Builds the `status` document (CONTRACT.md §5): desired vs observed, releases, processes.
import type { Config } from "../config/schema.js";
import type { DesiredPending, DesiredSnapshot } from "../observe/desired-store.js";
import type { Executor } from "./execute.js";
import type { Instance } from "./instance.js";
import type { OrphanEntry } from "./orphans.js";
import type { Condition, Plan, ReleaseRecord } from "./types.js";

export type ProcessStatusState = "starting" | "running" | "stopping" | "stopped" | "crashed" | "failed";

export interface ReleaseStatus {
  id: string;
  key: string;
  path: string;
  requestedPath: string;
  revision: string | null;
  state: ReleaseRecord["state"];
  createdAt: string;
  activatedAt: string | null;
  drainStartedAt: string | null;
  drainDeadline: string | null;
  stoppedAt: string | null;
  connections: { inflight: number; websockets: number };
  failure: { reason: string; code: string; instanceId: string | null; output: string[]; at: string } | null;
}

export interface ProcessStatus {
  id: string;
  instanceId: string;
  policy: string;
  releaseId: string;
  releaseKey: string;
  state: ProcessStatusState;
  pid: number | null;
  port: number | null;
  health: string;
  restarts: number;
  lastStartReason: string;
  startedAt: string | null;
  uptimeMs: number | null;
  exitCode: number | null;
  exitSignal: string | null;
  replicaIndex: number;
  replicaCount: number;
  /** Present for memory-supervised processes once sampled. */
  rssBytes?: number;
  memoryRestarts: number;
  lastMemoryRestartAt: string | null;
  children?: { pid: number; command: string; rssBytes: number }[];
  /** A restart that was asked for and is in progress (manual, memory, requested). */
  pendingRestart: string | null;
}

export interface StatusDocument {
  application: string;
  daemonPid: number;
  converged: boolean;
  desired: {
    releaseId: string | null;
    path: string | null;
    requestedPath: string | null;
    revision: string | null;
    generation: string | null;
    stopped: boolean;
    replicas: Record<string, number>;
    file: string;
    error: string | null;
  };
  activeRelease: ReleaseStatus | null;
  releases: ReleaseStatus[];
  processes: ProcessStatus[];
  proxy: { host: string; port: number; activeReleaseId: string | null };
  conditions: Condition[];
  /** Processes a crashed daemon left running (statePath); see docs/recovery.md. */
  orphans: OrphanEntry[];
}

export function buildStatus(config: Config, desiredFile: string, desired: DesiredSnapshot, executor: Executor, plan: Plan | null, now: number, orphans: OrphanEntry[] = []): StatusDocument {
  const observed = executor.observe();
  const releases = observed.releases
    .map((r) => releaseStatus(r.record, r.connections))
    .sort((a, b) => rank(a.state) - rank(b.state) || b.createdAt.localeCompare(a.createdAt));
  const active = releases.find((r) => r.key === observed.activeKey) ?? null;
  const processes: ProcessStatus[] = [];
  for (const [key, slots] of executor.instances) {
    const rec = executor.recordFor(key);
    if (!rec) continue;
    for (const inst of slots.values()) {
      const status = processStatus(config, rec, inst, now);
      if (rec.state === "stopped" && (status.state === "stopped" || status.state === "crashed")) continue;
      processes.push(status);
    }
  }
  const target = desired.target;
  const conditions = [...(plan?.conditions ?? [])];
  if (desired.error) conditions.push({ type: "Degraded", status: true, reason: "DesiredInvalid", message: desired.error.message });
  // A change read but not adopted yet (still settling): what runs does not match the file.
  const settling = desired.pending?.kind === "change";
  if (desired.pending) conditions.push(pendingCondition(desired.pending));
  const converged = (plan?.converged ?? false) && !desired.error && !settling;
  const ready = conditions.findIndex((c) => c.type === "Ready");
  if (!converged && ready >= 0 && conditions[ready]?.status) conditions[ready] = { type: "Ready", status: false, reason: desired.error ? "DesiredInvalid" : "DesiredSettling", message: "the desired file does not match what runs" };
  return {
    application: config.application,
    daemonPid: process.pid,
    converged,
    desired: {
      releaseId: target?.release?.id ?? null,
      path: target?.release?.path ?? null,
      requestedPath: target?.release?.requestedPath ?? null,
      revision: target?.release?.revision ?? null,
      generation: target?.release?.generation ?? null,
      stopped: target?.stopped ?? false,
      replicas: target?.replicas ?? {},
      file: desiredFile,
      error: desired.error?.message ?? null,
    },
    activeRelease: active,
    releases,
    processes,
    proxy: { host: config.proxy.host, port: config.proxy.port, activeReleaseId: active?.id ?? null },
    conditions,
    orphans,
  };
}

function pendingCondition(pending: DesiredPending): Condition {
  switch (pending.kind) {
    case "change":
      return { type: "Progressing", status: true, reason: "DesiredSettling", message: `desired file changed (${pending.summary}); adopting it at ${pending.settlesAt} if it stays unchanged` };
    case "problem":
      return { type: "Progressing", status: true, reason: "DesiredProblemSettling", message: `desired file has a problem (${pending.summary}); reported at ${pending.settlesAt} if it persists, the last good state keeps running` };
    default: {
      const _exhaustive: never = pending.kind;
      return _exhaustive;
    }
  }
}

function rank(state: ReleaseRecord["state"]): number {
  switch (state) {
    case "active":
      return 0;
    case "starting":
      return 1;
    case "draining":
      return 2;
    case "failed":
      return 3;
    case "stopped":
      return 4;
    default: {
      const _exhaustive: never = state;
      return _exhaustive;
    }
  }
}

function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}

function releaseStatus(rec: ReleaseRecord, connections: { inflight: number; websockets: number }): ReleaseStatus {
  return {
    id: rec.spec.id,
    key: rec.key,
    path: rec.spec.path,
    requestedPath: rec.spec.requestedPath,
    revision: rec.spec.revision,
    state: rec.state,
    createdAt: new Date(rec.createdAt).toISOString(),
    activatedAt: iso(rec.activatedAt),
    drainStartedAt: iso(rec.drainStartedAt),
    drainDeadline: iso(rec.drainDeadline),
    stoppedAt: iso(rec.stoppedAt),
    connections,
    failure: rec.failure
      ? { reason: rec.failure.reason, code: rec.failure.code, instanceId: rec.failure.instanceId ?? null, output: rec.failure.output ?? [], at: new Date(rec.failure.at).toISOString() }
      : null,
  };
}

function processStatus(config: Config, rec: ReleaseRecord, inst: Instance, now: number): ProcessStatus {
  const proc = inst.proc;
  const exit = proc?.exitInfo ?? inst.lastExit;
  let state: ProcessStatusState;
  if (inst.failed || (inst.spawnError && !proc?.pid)) state = "failed";
  else if (!proc) state = "starting";
  else if (proc.phase === "exited") state = inst.stopRequested ? "stopped" : "crashed";
  else state = proc.phase;
  const running = proc && proc.phase !== "exited";
  return {
    id: inst.processId,
    instanceId: inst.instanceId,
    policy: config.processes.find((p) => p.id === inst.processId)?.policy ?? "unknown",
    releaseId: rec.spec.id,
    releaseKey: rec.key,
    state,
    pid: running ? (proc.pid ?? null) : null,
    port: inst.port ?? null,
    health: inst.healthState,
    restarts: inst.restarts,
    lastStartReason: inst.lastStartReason,
    startedAt: iso(inst.startedAt),
    uptimeMs: running && inst.startedAt !== undefined ? now - inst.startedAt : null,
    exitCode: exit?.code ?? null,
    exitSignal: exit?.signal ?? null,
    replicaIndex: inst.replicaIndex,
    replicaCount: inst.replicaCount,
    ...(inst.rssBytes === undefined ? {} : { rssBytes: inst.rssBytes }),
    memoryRestarts: inst.memoryRestarts,
    lastMemoryRestartAt: iso(inst.lastMemoryRestartAt),
    ...(inst.children === undefined ? {} : { children: inst.children }),
    pendingRestart: inst.pendingRestart ?? null,
  };
}
