// Builds the `status` document (docs/cli.md, "status"): desired vs observed, releases, processes.
import type { Config } from "../config/schema.js";
import type { DesiredPending, DesiredSnapshot } from "../observe/desired-store.js";
import type { Executor } from "./execute.js";
import type { Instance } from "./instance.js";
import type { OrphanEntry } from "./orphans.js";
import type { ProcessRecord } from "./runtime.js";
import { failedRetryDelay } from "./plan.js";
import { plannerConfig, type PlannerConfig } from "./planner-config.js";
import { namedTarget } from "./release-identity.js";
import type { RolloutSummary } from "./rollout-outcome.js";
import type { Condition, DesiredTarget, ObservedState, Plan, ReleaseRecord, ReleaseView, StartReason } from "./types.js";
import type { SlotSample } from "./memory-supervisor.js";
import { effectiveRollout } from "../config/rollout-schema.js";
import { phaseLine } from "./rollout-judge.js";
import type { FailingActionStatus, ProcessStatus, ProcessStatusState, ReleaseStatus, RolloutPhaseStatus, StatusDocument, StatusOptions } from "../control/protocol.js";
import { processById } from "../config/process-by-id.js";

export function buildStatus(
  config: Config,
  desiredFile: string,
  desired: DesiredSnapshot,
  executor: Executor,
  plan: Plan | null,
  now: number,
  orphans: OrphanEntry[] = [],
  options: StatusOptions = {},
  rollout: RolloutSummary | null = null,
  paused = false,
  failingActions: FailingActionStatus[] = executor.failingActions(now),
  usageOf: (inst: Readonly<Instance>) => SlotSample | undefined = () => undefined,
): StatusDocument {
  const observed = executor.observe();
  const runtime = executor.runtime;
  const target = namedTarget(desired.target, runtime.releases.values());
  const targetKey = target && !target.stopped ? (target.release?.generation ?? null) : null;
  const retry = plannerConfig(config);
  const releases = observed.releases.map((r) => releaseStatus(r.record, r.connections, r.record.key === targetKey ? retry : null)).sort((a, b) => rank(a.state) - rank(b.state) || newestFirst(a.createdAt, b.createdAt));
  const active = releases.find((r) => r.key === observed.activeKey) ?? null;
  const processes: ProcessStatus[] = [];
  let hiddenProcesses = 0;
  for (const [key, slots] of runtime.instances) {
    const rec = runtime.recordFor(key);
    if (!rec) continue;
    // Retired: stopped, or failed and no longer desired (a failed desired release is retried, and its processes say why it failed).
    const retired = rec.state === "stopped" || (rec.state === "failed" && key !== targetKey);
    for (const inst of slots.values()) {
      const status = processStatus(config, rec, inst, inst.proc && runtime.processState(inst.proc), now, usageOf(inst), runtime.restartAsked(key, inst.instanceId));
      if (retired && !options.all && (status.state === "stopped" || status.state === "crashed" || status.state === "failed")) {
        hiddenProcesses += 1;
        continue;
      }
      processes.push(status);
    }
  }
  const conditions = [...(plan?.conditions ?? [])];
  if (desired.error) conditions.push({ type: "Degraded", status: true, reason: "DesiredInvalid", message: desired.error.message });
  // A change read but not adopted yet (still settling): what runs does not match the file.
  const settling = desired.pending?.kind === "change";
  if (desired.pending) conditions.push(pendingCondition(desired.pending));
  // An action that keeps failing (failure-policy.ts): the loop backs off, or gave up on a terminal error.
  if (failingActions.length > 0) conditions.push(failingCondition(failingActions));
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
    proxy: { host: config.proxy.host, port: config.proxy.port, tcp: config.proxy.tcp, socket: config.proxy.socket?.path ?? null, activeReleaseId: active?.id ?? null, paused },
    conditions,
    rollout,
    orphans,
    hiddenProcesses,
    rolloutPhase: rolloutPhase(config, target, observed, now),
    failingActions,
  };
}

function failingCondition(failing: FailingActionStatus[]): Condition {
  const first = failing[0] as FailingActionStatus;
  const terminal = failing.every((f) => f.terminal);
  const more = failing.length > 1 ? ` (and ${failing.length - 1} more)` : "";
  const retry = first.nextAttemptInMs === null ? "not retried until the desired state or config changes" : `retried in ${Math.ceil(first.nextAttemptInMs / 1000)} s`;
  return { type: "Degraded", status: true, reason: terminal ? "ActionFailedTerminally" : "ActionFailing", message: `${first.action} failed ${first.attempts} time${first.attempts === 1 ? "" : "s"}: ${first.error}; ${retry}${more}` };
}

function rolloutPhase(config: Config, target: DesiredTarget | null, observed: ObservedState, now: number): RolloutPhaseStatus | null {
  const rel = observed.releases.find((r) => r.record.rollout !== undefined && r.record.key === target?.release?.generation) ?? observed.releases.find((r) => r.record.rollout !== undefined);
  const progress = rel?.record.rollout;
  if (!rel || !progress) return null;
  const settings = effectiveRollout(config.rollout, rel.record.key === target?.release?.generation ? target.rollout : undefined);
  const counts = rel.responses ?? { total: 0, failed: 0 };
  const responses = { total: counts.total, failed: counts.failed };
  const step = settings.steps[progress.step];
  const end = progress.phase === "canary" ? progress.phaseStartedAt + (step?.pauseMs ?? 0) : progress.phaseStartedAt + settings.bakeMs;
  return {
    releaseId: rel.record.spec.id,
    previousReleaseId: observed.releases.find((r) => r.record.key === progress.previousKey)?.record.spec.id ?? null,
    phase: progress.phase,
    step: progress.phase === "canary" ? progress.step + 1 : settings.steps.length,
    steps: settings.steps.length,
    weight: progress.phase === "canary" ? (step?.weight ?? 0) : 100,
    leftMs: Math.max(0, end - now),
    responses,
    errorRate: responses.total > 0 ? responses.failed / responses.total : null,
    maxErrorRate: settings.maxErrorRate,
    minRequests: settings.minRequests,
    p99Ms: settings.maxP99Ms > 0 ? (counts.p99Ms ?? null) : null,
    maxP99Ms: settings.maxP99Ms,
    message: phaseLine(settings, progress, counts, now),
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

function releaseStatus(rec: ReleaseRecord, connections: { inflight: number; websockets: number }, retry: PlannerConfig | null): ReleaseStatus {
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
    connections: { inflight: connections.inflight, websockets: connections.websockets },
    failure: rec.failure
      ? {
          reason: rec.failure.reason,
          code: rec.failure.code,
          instanceId: rec.failure.instanceId ?? null,
          output: rec.failure.output ?? [],
          at: new Date(rec.failure.at).toISOString(),
          attempts: rec.failedAttempts,
          // The planner resumes the desired failed release once this backoff has passed (plan.ts).
          retryAt: retry && rec.state === "failed" && !rec.failure.noRetry ? new Date(rec.failure.at + failedRetryDelay(retry, rec.failedAttempts)).toISOString() : null,
        }
      : null,
  };
}

/**
 * `seen`: the slot's current process as the records say (runtime.ts: an exit shows once a pass
 * recorded it); `sample`: the memory supervisor's last sample of the slot; `restart`: a restart
 * asked for it (set by a pass or still queued).
 */
function processStatus(config: Config, rec: ReleaseView, inst: Readonly<Instance>, seen: Readonly<ProcessRecord> | undefined, now: number, sample: SlotSample | undefined, restart: StartReason | undefined): ProcessStatus {
  const proc = inst.proc;
  const exit = seen?.exit ?? inst.lastExit;
  let state: ProcessStatusState;
  if (inst.failed || (inst.spawnError && !proc?.pid)) state = "failed";
  else if (!proc || !seen) state = "starting";
  else if (seen.phase === "exited") state = inst.stopRequested ? "stopped" : "crashed";
  else state = seen.phase;
  const running = proc && seen?.phase !== "exited";
  // A sample of an earlier process of the slot says nothing about this one.
  const usage = running && sample !== undefined && sample.usage.pid === proc.pid ? sample.usage : undefined;
  return {
    id: inst.processId,
    instanceId: inst.instanceId,
    policy: processById(config, inst.processId)?.policy ?? "unknown",
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
    rssBytes: usage?.rssBytes ?? null,
    cpuPercent: usage?.cpuPercent ?? null,
    memoryRestarts: inst.memoryRestarts,
    lastMemoryRestartAt: iso(inst.lastMemoryRestartAt),
    ...(sample === undefined ? {} : { children: sample.children }),
    pendingRestart: restart ?? null,
    error: inst.spawnError ?? (inst.healthState === "failed" ? (inst.healthReason ?? null) : null),
  };
}

// ISO-8601 timestamps of one format order as their code units do. Not localeCompare: its first
// call loads ICU's collation data, ~4 MB of the daemon's RSS for as long as it runs (measured here).
function newestFirst(a: string, b: string): number {
  return a < b ? 1 : a > b ? -1 : 0;
}
