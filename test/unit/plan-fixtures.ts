// Small builders for the planner tables: a config with a proxied `web` and a companion
// `worker`, desired targets, observed releases and processes with sensible defaults, and a
// one-line rendering of actions so a table row reads like the plan it expects.
import { ROLLOUT_DEFAULTS, type RolloutOverride } from "../../src/config/rollout-schema.js";
import { instanceIdFor, type PlannerConfig, type PlannerProcess } from "../../src/reconcile/planner-config.js";
import type { Action, DesiredTarget, ObservedProcess, ObservedRelease, ObservedState, ReleaseRecord, ReleaseSpec, ReleaseState, ResponseCounts } from "../../src/reconcile/types.js";

/** The fixed "now" of every table row unless a row says otherwise. */
export const T = 1_700_000_000_000;
export const SECOND = 1_000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;

/** Proxied, gated; restarts back off 1 s, 2 s, then capped at 3 s; at most 3 restarts a minute. */
export function webProcess(patch: Partial<PlannerProcess> = {}): PlannerProcess {
  return {
    id: "web",
    policy: "proxied",
    replicas: 1,
    restartDelayMs: 1_000,
    restart: { maxRestarts: 3, windowMs: MINUTE, backoffFactor: 2, maxDelayMs: 3_000 },
    gated: true,
    nonBlockingDrain: false,
    ...patch,
  };
}

/** Companion; restarts after 500 ms forever (no limit, lifetime window, no backoff). */
export function workerProcess(patch: Partial<PlannerProcess> = {}): PlannerProcess {
  return {
    id: "worker",
    policy: "companion",
    replicas: 1,
    restartDelayMs: 500,
    restart: { windowMs: 0, backoffFactor: 1, maxDelayMs: 0 },
    gated: false,
    nonBlockingDrain: false,
    ...patch,
  };
}

export function singletonProcess(id = "clock", patch: Partial<PlannerProcess> = {}): PlannerProcess {
  return {
    id,
    policy: "singleton",
    replicas: 1,
    restartDelayMs: 500,
    restart: { windowMs: 0, backoffFactor: 1, maxDelayMs: 0 },
    gated: false,
    nonBlockingDrain: false,
    ...patch,
  };
}

export function plannerConfig(patch: Partial<PlannerConfig> = {}): PlannerConfig {
  return {
    processes: [webProcess(), workerProcess()],
    drainTimeoutMs: MINUTE,
    retention: { keep: 10, maxAgeMs: 0 },
    failedRetryBaseMs: 10_000,
    failedRetryMaxMs: 300_000,
    rollout: { ...ROLLOUT_DEFAULTS, steps: [] },
    ...patch,
  };
}

/** Release keys are generations (hashes) in the daemon; here `gen-<id>` keeps tables readable. */
export function keyOf(id: string): string {
  return `gen-${id}`;
}

function idOf(key: string | null): string {
  if (key === null) return "none";
  return key.startsWith("gen-") ? key.slice(4) : key;
}

export function spec(id: string): ReleaseSpec {
  const path = `/srv/app/releases/${id}`;
  return { id, requestedId: null, requestedRevision: null, path, requestedPath: path, revision: null, env: {}, generation: keyOf(id) };
}

export function desired(id: string | null, opts: { replicas?: Record<string, number>; stopped?: boolean; rollout?: RolloutOverride } = {}): DesiredTarget {
  const stopped = opts.stopped ?? false;
  const replicas = opts.replicas ?? {};
  const target: DesiredTarget = { stopped, release: id === null ? null : spec(id), replicas, documentHash: `doc-${id}-${stopped}-${JSON.stringify(replicas)}` };
  if (opts.rollout) target.rollout = opts.rollout;
  return target;
}

export type ProcessPatch = Partial<ObservedProcess> & { replicaCount?: number };

/** A live, healthy instance: running, `web` ready, companions with no health state. */
export function running(processId: string, patch: ProcessPatch = {}): ObservedProcess {
  const { replicaCount = 1, ...rest } = patch;
  const replicaIndex = rest.replicaIndex ?? 0;
  return {
    instanceId: instanceIdFor(processId, replicaIndex, replicaCount),
    processId,
    replicaIndex,
    releaseKey: "",
    phase: "running",
    pid: 4_000 + replicaIndex,
    health: processId === "web" ? "ready" : "none",
    stopRequested: false,
    restarts: 0,
    restartTimes: [],
    retiring: [],
    failed: false,
    lastStartReason: "deploy",
    startedAt: T - HOUR,
    ...rest,
  };
}

/** An instance that exited on its own (a crash) at `at`. */
export function crashed(processId: string, at: number, patch: ProcessPatch = {}): ObservedProcess {
  return running(processId, { phase: "exited", exit: { code: 1, signal: null, at, requested: false }, ...patch });
}

/** An instance whose stop was requested and which is still on its way down. */
export function stopping(processId: string, patch: ProcessPatch = {}): ObservedProcess {
  return running(processId, { phase: "stopping", stopRequested: true, ...patch });
}

/** An instance that was asked to stop and has exited. */
export function stopped(processId: string, patch: ProcessPatch = {}): ObservedProcess {
  return running(processId, { phase: "exited", stopRequested: true, exit: { code: 0, signal: "SIGTERM", at: T - MINUTE, requested: true }, ...patch });
}

export interface ReleaseOptions {
  record?: Partial<ReleaseRecord>;
  connections?: { inflight?: number; websockets?: number; lastPinnedAt?: number };
  /** The proxy's window counts of a judged release (canary step, bake window). */
  responses?: ResponseCounts;
}

export function release(id: string, state: ReleaseState, processes: ObservedProcess[] = [], opts: ReleaseOptions = {}): ObservedRelease {
  const key = keyOf(id);
  const record: ReleaseRecord = { key, spec: spec(id), state, createdAt: T - 2 * HOUR, failedAttempts: 0 };
  if (state === "starting") record.startingAt = T - 5 * SECOND;
  if (state === "active") record.activatedAt = T - HOUR;
  if (state === "draining") {
    record.drainStartedAt = T - 5 * SECOND;
    record.drainDeadline = T + 30 * SECOND;
  }
  if (state === "stopped") record.stoppedAt = T - MINUTE;
  if (state === "failed") {
    record.failure = { reason: "web failed its health check", code: "HEALTH_FAILED", instanceId: "web", at: T - SECOND };
    record.failedAttempts = 1;
  }
  Object.assign(record, opts.record);
  return {
    record,
    processes: processes.map((p) => ({ ...p, releaseKey: key })),
    connections: { inflight: opts.connections?.inflight ?? 0, websockets: opts.connections?.websockets ?? 0, ...(opts.connections?.lastPinnedAt === undefined ? {} : { lastPinnedAt: opts.connections.lastPinnedAt }) },
    ...(opts.responses ? { responses: opts.responses } : {}),
  };
}

/** The usual healthy release: one worker and one ready web, both running. */
export function healthy(id: string, state: ReleaseState = "active", opts: ReleaseOptions = {}): ObservedRelease {
  return release(id, state, [running("worker"), running("web")], opts);
}

/** Every process of the release asked to stop and exited. */
export function allExited(id: string, state: ReleaseState, opts: ReleaseOptions = {}): ObservedRelease {
  return release(id, state, [stopped("worker"), stopped("web")], opts);
}

export function observed(activeId: string | null, ...releases: ObservedRelease[]): ObservedState {
  return { releases, activeKey: activeId === null ? null : keyOf(activeId) };
}

/** One line per action, with the fields a table cares about. */
export function describeAction(action: Action): string {
  switch (action.type) {
    case "createRelease":
      return `createRelease ${action.spec.id}`;
    case "resumeRelease":
    case "beginDrain":
    case "closeConnections":
    case "markStopped":
    case "pruneRelease":
      return `${action.type} ${idOf(action.key)}`;
    case "startProcess":
      return `startProcess ${idOf(action.key)} ${action.processId}[${action.replicaIndex}/${action.replicaCount}] ${action.reason}`;
    case "stopProcess":
    case "forgetProcess":
    case "markProcessFailed":
    case "startSuccessor":
    case "promoteSuccessor":
    case "abandonSuccessor":
      return `${action.type} ${idOf(action.key)} ${action.instanceId}`;
    case "startService":
      return `startService ${action.processId} for ${idOf(action.forKey)}`;
    case "adoptServices":
      return `adoptServices ${idOf(action.key)}`;
    case "stopRetired":
    case "forgetRetired":
      return `${action.type} ${idOf(action.key)} ${action.instanceId} ${action.pid}`;
    case "switchTraffic":
      return `switchTraffic ${idOf(action.key)} from ${idOf(action.previousKey)}`;
    case "markFailed":
      return `markFailed ${idOf(action.key)} ${action.failure.code} ${action.failure.instanceId ?? "-"}`;
    case "beginCanary":
      return `beginCanary ${idOf(action.key)} step ${action.step + 1}/${action.steps} ${action.weight}% ${action.sticky} back to ${idOf(action.previousKey)}`;
    case "beginBake":
      return `beginBake ${idOf(action.key)} ${action.bakeMs} ms back to ${idOf(action.previousKey)}`;
    case "finishRollout":
      return `finishRollout ${idOf(action.key)} ${action.outcome}`;
    case "rollBack":
      return `rollBack ${idOf(action.key)} to ${idOf(action.previousKey)}: ${action.failure.reason}`;
    default: {
      const _exhaustive: never = action;
      return _exhaustive;
    }
  }
}
