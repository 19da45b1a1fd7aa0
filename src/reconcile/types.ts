// The vocabulary of the reconcile loop: what should run (DesiredTarget), what runs
// (ObservedState), and the steps between them (Action). The planner maps the first two
// to a Plan without I/O; the executor carries the actions out.
import type { ErrorCode } from "../errors.js";
import type { RolloutOverride } from "../config/rollout-schema.js";
import type { ExitInfo } from "../process/types.js";

export type ReleaseState = "starting" | "active" | "draining" | "stopped" | "failed";

export type StartReason = "deploy" | "crash" | "manual" | "memory" | "scale" | "requested";

/**
 * What a stop is for. "retire": the slot is done (release retired, scaled down, rollout
 * failed); its successor and retiring processes are stopped too and it is not started again.
 * "restart": the slot stays and the next pass starts its process again.
 */
export type StopKind = "retire" | "restart";

/** A replacement being started for a slot (new before old), not yet taking traffic. */
export interface ObservedSuccessor {
  phase: "absent" | "starting" | "running" | "stopping" | "exited";
  health: HealthState;
  healthReason?: string;
  /** The failure code that goes with healthReason (HEALTH_FAILED, LISTENER_NOT_OWNED). */
  healthCode?: ErrorCode;
  spawnError?: string;
}

/** An OS process a slot has moved past (replaced): finishing its requests, then stopped. */
export interface ObservedRetiring {
  pid: number;
  phase: "starting" | "running" | "stopping" | "exited";
  /** In-flight requests and WebSockets still on it. */
  outstanding: number;
  since: number;
  stopRequested: boolean;
}

/** One runnable version of the application, identified by its generation. */
export interface ReleaseSpec {
  /**
   * Display id, unique among retained releases: desired `release.id`, else the basename of the
   * resolved path, numbered (`v1-2`) when another retained release already has it
   * (release-identity.ts). Until the executor records the release it is the base id.
   */
  id: string;
  /** `release.id` as the desired state wrote it; null when the id comes from the path. */
  requestedId: string | null;
  /** `release.revision` as the desired state wrote it; null when it came from REVISION (or there is none). */
  requestedRevision: string | null;
  /** Resolved (symlinks followed) absolute path. */
  path: string;
  /** The path as the desired file wrote it. */
  requestedPath: string;
  revision: string | null;
  env: Record<string, string>;
  /** Hash of base id, resolved path, revision and env: a change of any is a new release. */
  generation: string;
}

/** The validated desired state the loop works toward (the last good one). */
export interface DesiredTarget {
  stopped: boolean;
  release: ReleaseSpec | null;
  replicas: Record<string, number>;
  /** Hash of the whole resolved document (release generation + replicas + stopped + rollout). */
  documentHash: string;
  /** This deploy's rollout settings over the config's (the desired file's `rollout`). */
  rollout?: RolloutOverride;
}

export interface ReleaseFailure {
  reason: string;
  code: ErrorCode;
  instanceId?: string;
  output?: string[];
  at: number;
  /** Sequence number of its rollout-failed event: a wait that began before it sees it as its rollout's end. */
  seq?: number;
  /** Rolled back on its live traffic: never retried by itself, only by a new apply of it. */
  noRetry?: boolean;
}

/**
 * A rollout being judged on its live traffic (CONTRACT.md §7), kept on the new release's record:
 * a canary step (the previous release stays the active one and gets the rest of new requests),
 * or the bake window (the new release is active, the previous one stays running and ready).
 */
export interface RolloutProgress {
  /** The release traffic goes back to on a rollback. */
  previousKey: string;
  phase: "canary" | "bake";
  /** The canary step (0-based) under way; the number of steps during the bake. */
  step: number;
  /** When this step or the bake window began. */
  phaseStartedAt: number;
  /** When the new release first got traffic (the first canary step, or the switch). */
  judgingSince: number;
  /** How the proxy counts its responses: a daemon that adopts the release (a restart, an upgrade) counts with it again. */
  judge?: JudgeSettings;
}

/** How the proxy counts a judged release's responses (the rollout settings' part it needs). */
export interface JudgeSettings {
  windowMs: number;
  minRequests: number;
  maxErrorRate: number;
  /** Bound on the p99 of its response times (ms); 0 or absent: none. */
  maxP99Ms?: number;
}

/** The new release's responses in the judging window (5xx and upstream errors are failures). */
export interface ResponseCounts {
  total: number;
  failed: number;
  /** With a p99 bound: responses slower than it, and the p99 (ms, its histogram bucket's upper edge; null without responses). */
  slow?: number;
  p99Ms?: number | null;
}

/** A release the daemon knows about, and where it stands. Keyed by generation. */
export interface ReleaseRecord {
  key: string;
  spec: ReleaseSpec;
  state: ReleaseState;
  createdAt: number;
  /** When the current attempt to start it began. */
  startingAt?: number;
  activatedAt?: number;
  drainStartedAt?: number;
  drainDeadline?: number;
  stoppedAt?: number;
  failure?: ReleaseFailure;
  /** Set while the release is in a canary step or its bake window. */
  rollout?: RolloutProgress;
  /** Consecutive failed attempts of this generation (drives the retry backoff). */
  failedAttempts: number;
}

/** A release record as readers see it: no field of it, its spec, failure or rollout progress, can be set. */
export type ReleaseView = Readonly<Omit<ReleaseRecord, "spec" | "failure" | "rollout">> & {
  readonly spec: Readonly<ReleaseSpec>;
  readonly failure?: Readonly<ReleaseFailure>;
  readonly rollout?: Readonly<RolloutProgress>;
};

export type HealthState = "none" | "pending" | "ready" | "failed";

/** One managed instance as the planner sees it. */
export interface ObservedProcess {
  instanceId: string;
  processId: string;
  replicaIndex: number;
  releaseKey: string;
  /** "absent": slot known but nothing spawned yet (or spawn failed before a pid). */
  phase: "absent" | "starting" | "running" | "stopping" | "exited";
  pid?: number;
  port?: number;
  health: HealthState;
  healthReason?: string;
  /** The failure code that goes with healthReason (HEALTH_FAILED, LISTENER_NOT_OWNED). */
  healthCode?: ErrorCode;
  /** True once this instance's stop was asked for (deploy retire, scale down, shutdown). */
  stopRequested: boolean;
  exit?: ExitInfo;
  spawnError?: string;
  restarts: number;
  /** Timestamps of automatic restarts, for the restart window. */
  restartTimes: number[];
  /** Gave up restarting (restart.maxRestarts reached). */
  failed: boolean;
  lastStartReason: StartReason;
  startedAt?: number;
  /** A restart asked for (manual, memory, the process itself): done new-before-old when gated. */
  pendingRestart?: StartReason;
  successor?: ObservedSuccessor;
  retiring: ObservedRetiring[];
  /** Services only: the rollout that started this service (stopped again if that rollout fails). */
  startedFor?: string;
}

export interface ObservedRelease {
  /** The live record, read-only: the planner and status read it, only the executor changes it. */
  record: ReleaseView;
  processes: ObservedProcess[];
  connections: { inflight: number; websockets: number; lastPinnedAt?: number };
  /** Its responses in the judging window, while it is judged (a canary step or its bake window). */
  responses?: ResponseCounts;
}

export interface ObservedState {
  releases: ObservedRelease[];
  /** The release the proxy routes new traffic to. */
  activeKey: string | null;
  /** Daemon-wide `service` processes (they belong to no release). */
  services?: ObservedProcess[];
  /** Asked for by hand (`promote`, `abort`) for the rollout of this release key; read by the next pass. */
  rolloutIntent?: { key: string; kind: "promote" | "abort" };
  /** Starting releases given up on (`apply --wait --timeout`), by key, with why: the pass marks them failed. */
  abandoned?: Readonly<Record<string, string>>;
}

/** The pseudo-release key under which daemon-wide services run. */
export const SERVICES_KEY = "@services";

export type Action =
  | { type: "createRelease"; spec: ReleaseSpec }
  | { type: "resumeRelease"; key: string }
  | { type: "startProcess"; key: string; processId: string; replicaIndex: number; replicaCount: number; reason: StartReason }
  | { type: "stopProcess"; key: string; instanceId: string; kind: StopKind; reason: string }
  | { type: "forgetProcess"; key: string; instanceId: string }
  | { type: "startService"; processId: string; spec: ReleaseSpec; forKey: string }
  | { type: "adoptServices"; key: string }
  | { type: "startSuccessor"; key: string; instanceId: string }
  | { type: "promoteSuccessor"; key: string; instanceId: string }
  | { type: "abandonSuccessor"; key: string; instanceId: string; reason: string }
  | { type: "stopRetired"; key: string; instanceId: string; pid: number; reason: string }
  | { type: "forgetRetired"; key: string; instanceId: string; pid: number }
  | { type: "switchTraffic"; key: string | null; previousKey: string | null }
  | { type: "beginDrain"; key: string }
  | { type: "closeConnections"; key: string }
  | { type: "markStopped"; key: string }
  | { type: "markFailed"; key: string; failure: Omit<ReleaseFailure, "at"> }
  | { type: "markProcessFailed"; key: string; instanceId: string; reason: string }
  | { type: "pruneRelease"; key: string }
  | { type: "beginCanary"; key: string; previousKey: string; step: number; steps: number; weight: number; sticky: "cookie" | "ip" | "none"; judge: JudgeSettings }
  | { type: "beginBake"; key: string; previousKey: string; bakeMs: number; judge: JudgeSettings }
  | { type: "finishRollout"; key: string; outcome: "passed" | "superseded" }
  | { type: "rollBack"; key: string; previousKey: string; failure: { reason: string; code: ErrorCode } };

export type ConditionType = "Ready" | "Progressing" | "Degraded";

export interface Condition {
  type: ConditionType;
  status: boolean;
  reason: string;
  message: string;
}

export interface Plan {
  actions: Action[];
  /** Run another pass after this long even if nothing triggers one. */
  requeueAfterMs?: number;
  conditions: Condition[];
  converged: boolean;
  /**
   * The desired release's key once it serves all new traffic: active and routed, every one of
   * its own processes up, and past its bake window. Older releases may still be draining (then
   * `converged` is false). `apply --wait` is done here; `--wait-drained` waits for `converged`.
   */
  serving: string | null;
}
