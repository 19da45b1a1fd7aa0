// The control API's routes and payloads, shared by the server and the CLI's client.
import type { DesiredDocument } from "../config/desired-schema.js";
import type { RolloutOverride } from "../config/rollout-schema.js";
import type { ErrorCode } from "../errors.js";
import type { OrphanEntry } from "../reconcile/orphans.js";
import type { RolloutSummary } from "../reconcile/rollout-outcome.js";
import type { Condition, ReleaseState, StartReason } from "../reconcile/types.js";

export const API_PREFIX = "/v1";

/** The longest wait a timer can hold (2^31-1 ms, about 24.8 days): a longer `timeoutMs` is refused, never wrapped to a few ms. */
export { MAX_TIMER_MS as MAX_TIMEOUT_MS } from "../config/constants.js";

export interface ApplyRequest {
  /** The desired document itself; or `input`, which the daemon turns into one. */
  document?: DesiredDocument;
  input?: DesiredInput;
  /** Only validate and diff; write nothing. */
  dryRun?: boolean;
}

/**
 * What the CLI was given, for the daemon to parse (it has the YAML parser and the schema loaded
 * already, so `apply` starts without them): the text of `-f FILE` / stdin (a relative
 * `release.path` in it is taken from `cwd`), or `--release-path` and its flags, merged over the
 * current desired file the way the CLI used to (replicas kept, `stopped` and `rollout` dropped).
 */
export type DesiredInput = { text: string; source: string; cwd: string } | { merge: { release: { path: string; revision?: string; id?: string }; replicas?: Record<string, number>; rollout?: RolloutOverride } };

export interface ApplyResponse {
  file: string;
  releaseId: string | null;
  generation: string | null;
  stopped: boolean;
  /** Event sequence number before the write: `wait` streams events after it. */
  sinceSeq: number;
  changes: { type: string; message: string }[];
  /** Things the write does that the caller may not mean (e.g. the file stops following a symlink). */
  warnings: ApplyWarning[];
}

export interface ApplyWarning {
  message: string;
  /** What to do instead, when the warned-about effect is not what was meant. */
  hint: string;
}

export interface WaitOutcome {
  /** rolled-back: the release passed its health check but failed on live traffic (or `abort`); the old one serves again. */
  outcome: "converged" | "failed" | "timeout" | "superseded" | "rolled-back";
  message: string;
  releaseId: string | null;
  failure?: { reason: string; code: ErrorCode; instanceId: string | null; output: string[] } | null;
  /**
   * The release traffic moved off, still finishing its connections in the background when the
   * rollout was done (null when nothing drains; always null with `--wait-drained`).
   */
  draining?: { releaseId: string; inflight: number; websockets: number; deadline: string | null; message: string } | null;
}

/** A `/wait` stream line between events: what the rollout is waiting for right now. */
export interface WaitProgress {
  message: string;
}

/** One retained or streamed output line of a managed process (`logs`, `logs --follow`). */
export interface LogLine {
  /** When the daemon read the line (ISO time). */
  at: string;
  instanceId: string;
  processId: string;
  releaseId: string;
  /** The OS process that wrote it (a slot gets a new one on each restart). */
  pid: number | null;
  stream: "stdout" | "stderr";
  line: string;
  /** On `logs --follow`: set on the lines that were retained before the stream started. */
  retained?: true;
}

/** `GET /logs`: the selected lines of every matching process, oldest first. */
export interface LogsResponse {
  lines: LogLine[];
}

export interface ErrorBody {
  error: { code: string; message: string; fix?: string };
}

// ---- GET /status ------------------------------------------------------------------------

export type ProcessStatusState = "starting" | "running" | "stopping" | "stopped" | "crashed" | "failed";

export interface ReleaseStatus {
  id: string;
  key: string;
  path: string;
  requestedPath: string;
  revision: string | null;
  state: ReleaseState;
  createdAt: string;
  activatedAt: string | null;
  drainStartedAt: string | null;
  drainDeadline: string | null;
  stoppedAt: string | null;
  connections: { inflight: number; websockets: number };
  failure: ReleaseFailureStatus | null;
}

/** Why a release failed and, for the desired release, when the daemon tries it again. */
export interface ReleaseFailureStatus {
  reason: string;
  code: ErrorCode;
  instanceId: string | null;
  output: string[];
  at: string;
  /** Failed attempts in a row. */
  attempts: number;
  /** When the daemon starts it again (ISO time); null when it will not (it is no longer the desired release). */
  retryAt: string | null;
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
  /** RSS of the process group, once sampled (every 2 s); null before, and once it has exited. */
  rssBytes: number | null;
  /** CPU use of the process group, % of one CPU over the last sample interval (2 s); null until two samples. */
  cpuPercent: number | null;
  memoryRestarts: number;
  lastMemoryRestartAt: string | null;
  children?: { pid: number; command: string; rssBytes: number }[];
  /** A restart that was asked for and is in progress (manual, memory, requested). */
  pendingRestart: string | null;
  /** Why the last start failed: a spawn failure (`cwd /srv/x does not exist (ENOENT)`) or a failed readiness check; null otherwise. */
  error: string | null;
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
  /** host/port: the TCP listener (tcp false: none); socket: the unix-socket listener's path, or null; paused: new requests are held (rollbridge pause). */
  proxy: { host: string; port: number; tcp: boolean; socket: string | null; activeReleaseId: string | null; paused: boolean };
  conditions: Condition[];
  /** The last rollout and its outcome (reconcile/rollout-outcome.ts); null before the first one. */
  rollout: RolloutSummary | null;
  /** The rollout being judged on its live traffic right now (a canary step or a bake window), or null. */
  rolloutPhase: RolloutPhaseStatus | null;
  /** Processes a crashed daemon left running (statePath); see docs/recovery.md. */
  orphans: OrphanEntry[];
  /** Stopped or failed processes of retired releases left out of `processes` (`status --all` lists them). */
  hiddenProcesses: number;
  /** Actions that threw and back off, or failed terminally (reconcile/failure-policy.ts); empty when none. */
  failingActions: FailingActionStatus[];
}

/** An action of the plan that failed: retried after `nextAttemptInMs`, or not at all (`terminal`) until the desired state or config changes. */
export interface FailingActionStatus {
  /** The action's type (`startProcess`, `beginDrain`, …), or `reconcilePass` when the pass itself failed. */
  action: string;
  releaseKey: string | null;
  instanceId: string | null;
  error: string;
  code: ErrorCode | null;
  /** Consecutive failures. */
  attempts: number;
  terminal: boolean;
  lastFailedAt: string;
  /** null: terminal, not retried. */
  nextAttemptInMs: number | null;
}

/** Where a rollout judged on its live traffic stands (CONTRACT.md §7, docs/rollouts.md). */
export interface RolloutPhaseStatus {
  releaseId: string;
  /** The release traffic goes back to on a rollback. */
  previousReleaseId: string | null;
  phase: "canary" | "bake";
  /** 1-based canary step; during the bake window, the number of steps there were. */
  step: number;
  steps: number;
  /** % of new requests the new release gets now (100 during the bake window). */
  weight: number;
  /** Until the step or the bake window ends. */
  leftMs: number;
  responses: { total: number; failed: number };
  errorRate: number | null;
  maxErrorRate: number;
  minRequests: number;
  /** The p99 of its response times in the window (ms, to within a histogram bucket, never below); null without a bound or responses. */
  p99Ms: number | null;
  /** The p99 bound (rollout.maxP99Ms); 0: none. */
  maxP99Ms: number;
  /** `canary 25%, step 1 of 2, 41 s left, 0.4% errors` */
  message: string;
}

/** What `status` lists: by default the processes of retired releases that no longer run are left out. */
export interface StatusOptions {
  /** List every process, those of retired releases included (`status --all`). */
  all?: boolean;
}

// ---- GET /events, /events/follow, the /wait stream --------------------------------------

export type EventLevel = "info" | "warn" | "error";

/** An instance's process, as most process events name it. */
interface ProcessRef {
  instanceId: string;
  pid: number | undefined;
}

/**
 * Every event type and the shape of its `data` (undefined: none, or optional with `| undefined`). Adding an
 * event means adding it here: `emit` refuses a type or data that is not listed.
 */
export interface EventData {
  "daemon-started": { pid: number; desiredPath: string; socketActivation: boolean };
  "socket-activation-ignored": undefined;
  "systemd-notified": undefined;
  "systemd-notify-failed": undefined;
  "upgrade-started": { pid: number; origin: string };
  "upgrade-failed": { code: ErrorCode };
  "control-socket-reclaimed": undefined;
  "control-socket-reclaim-failed": undefined;
  "daemon-handed-over": { oldPid: number; newPid: number; durationMs: number };
  "daemon-retired": { open: number; drainMs: number };
  "daemon-stopping": undefined;
  "daemon-stopped": undefined;
  "config-reloaded": undefined;
  "config-reload-refused": undefined;
  "config-reload-failed": undefined;
  "config-record-failed": undefined;
  "command-failed": { method: string; path: string; status: number; code: string; message: string };
  "watch-error": undefined;
  "proxy-error": Record<string, unknown>;
  "proxy-socket-unreachable": undefined;
  "desired-changed": { releaseId: string | null; path: string | null; generation: string | null; replicas: Record<string, number> };
  "desired-invalid": { code: ErrorCode };
  "reconcile-error": { attempts: number; nextAttemptInMs: number };
  "action-failed": { action: string; code: ErrorCode | null; attempts: number; terminal: boolean; nextAttemptInMs: number | null };
  "rollout-started": { path: string; revision?: string | null; baseId?: string; from?: ReleaseState };
  "rollout-failed": { reason: string; code: ErrorCode; instanceId?: string; output: string[]; attempts: number };
  "rollout-aborted": undefined;
  "canary-step": { step: number; steps: number; weight: number; sticky: "cookie" | "ip" | "none"; previousReleaseId: string | null };
  "bake-started": { bakeMs: number; previousReleaseId: string | null };
  "bake-resumed": { previousReleaseId: string | null; switchedAt: string };
  "rollout-not-resumed": undefined;
  "rollout-passed": { total?: number; failed?: number };
  "rollout-superseded": { total?: number; failed?: number };
  "rolled-back": { previousReleaseId: string; phase: "canary" | "bake" | null; failed: number | null; total: number | null; code: ErrorCode; reason: string };
  "desired-restored": undefined;
  "desired-restore-failed": undefined;
  "rollout-promote-requested": undefined;
  "rollout-abort-requested": undefined;
  "traffic-paused": undefined;
  "traffic-resumed": undefined;
  "rollback-requested": { fromReleaseId: string | null; toState: ReleaseState; link: LinkFlip | null };
  "traffic-switched": { previousReleaseId: string | null; switchLatencyMs: number; rolloutMs: number };
  "traffic-stopped": undefined;
  "drain-started": { inflight: number; websockets: number; deadline: string; told: number };
  "drain-timeout": { inflight: number; websockets: number };
  "release-stopped": { from: ReleaseState; drainMs: number | undefined };
  "services-refreshed": undefined;
  "process-started": ProcessRef & { port: number | undefined; reason: StartReason; replacement?: true };
  "process-start-failed": { instanceId: string; code?: ErrorCode };
  "process-healthy": ProcessRef & { ms: number };
  "health-failed": ProcessRef & { port: number | undefined; code: ErrorCode; holders?: { endpoint: string; uid: number; pid: number | null }[] };
  "listener-not-owned": ProcessRef & { port: number | undefined; code: ErrorCode; holders?: { endpoint: string; uid: number; pid: number | null }[] };
  "process-crashed": ProcessRef & { code: number | null; signal: string | null };
  "process-exited": ProcessRef & { code: number | null; signal: string | null };
  "process-stopping": ProcessRef & { reason: string };
  "process-stop-step": ProcessRef & { phase?: string; ok?: boolean; ms?: number };
  "process-replaced": ProcessRef & { previousPid: number | undefined; reason: StartReason };
  "process-failed": { instanceId: string };
  "replacement-failed": { instanceId: string };
  "restart-requested": { instanceId: string; pid: number | undefined } | { instances: string[]; process: string | null; policy: string | null };
  "port-moved": { instanceId: string; from: number; to: number; holders: unknown[] };
  "log-file-error": undefined;
  "memory-warning": { instanceId: string; rssBytes: number; warnBytes: number };
  "memory-limit": { instanceId: string; rssBytes: number; limitBytes: number };
  "state-restored": { file: string; previousDaemonPid: number; adopted: number; restored: number; skipped: number; orphans: number };
  "adoption-refused": undefined;
  "process-adopted": { instanceId: string; pid: number; port: number | undefined; role: "current" | "successor" | "retiring" };
  "output-fifo-failed": { instanceId: string; pid?: number } | undefined;
  "state-file-invalid": undefined;
  "state-write-failed": undefined;
  "orphan-detected": OrphanEntry;
  "orphan-gone": { pid: number };
  /** Written by the stdout sink itself (never in the in-memory history). */
  "event-lines-dropped": { dropped: number };
}

export type EventType = keyof EventData;

/** One event: what happened (`type`, with its typed `data`), when, and to which release. */
export type DaemonEvent = { [T in EventType]: EventOf<T> }[EventType];

type EventOf<T extends EventType> = {
  seq: number;
  at: string;
  level: EventLevel;
  type: T;
  message: string;
  releaseKey?: string;
  releaseId?: string;
} & (undefined extends EventData[T] ? { data?: Exclude<EventData[T], undefined> } : { data: EventData[T] });

// ---- POST /diff, and `changes` of PUT /desired -------------------------------------------

/** One step of the journey from what runs to a desired state, in an operator's words. */
export interface Change {
  type: "start-release" | "switch" | "drain" | "stop-release" | "scale" | "resume-release" | "in-progress";
  message: string;
}

/** `POST /diff` answers this. */
export interface DiffResponse {
  changes: Change[];
}

// ---- POST /rollback, POST /restart, POST /reconcile, POST /shutdown -----------------------

/** A symlink to re-point: where it is and what it should name (relative when it was). */
export interface LinkFlip {
  path: string;
  target: string;
}

/** `POST /rollback` answers this: the apply result plus which release it left. */
export interface RollbackResponse extends ApplyResponse {
  fromReleaseId: string | null;
  toReleaseId: string;
  toState: ReleaseState;
  /** The symlink the desired file follows, re-pointed at the release (null: none). */
  link: LinkFlip | null;
}

/** What `POST /restart` selects: a process id or replica id, and/or a policy (none: everything). */
export interface RestartRequest {
  process?: string;
  policy?: string;
}

/** One instance a `POST /restart` marked for a restart. */
export interface RestartTarget {
  instanceId: string;
  processId: string;
  policy: string;
  releaseId: string;
  pid: number | null;
  /** true: replaced new-before-old (the proxied process); false: stopped, then started. */
  zeroDowntime: boolean;
}

/** `POST /restart` answers this. */
export interface RestartResponse {
  releaseId: string;
  instances: RestartTarget[];
}

/** `POST /reconcile` answers this: whether the pass it waited for found nothing left to do. */
export interface ReconcileResponse {
  converged: boolean;
}

/** `POST /shutdown` answers this; the daemon stops once the answer is sent. */
/** POST /upgrade: the new daemon serves (the old one finishes its connections and exits). */
export interface UpgradeResponse {
  ok: true;
  oldPid: number;
  newPid: number;
  /** From the request to the new daemon being ready (listeners and every process taken over). */
  durationMs: number;
}

export interface ShutdownResponse {
  ok: true;
  pid: number;
}

/** What `POST /promote` and `POST /abort` answer: the release and how its rollout ended. */
export interface RolloutIntentResponse {
  releaseId: string;
  previousReleaseId: string | null;
  /** The phase it was in when asked. */
  phase: "canary" | "bake";
  /** After the pass that read the intent: promoted (serves all traffic), rolled-back, or pending. */
  result: "promoted" | "rolled-back" | "pending";
  message: string;
}

/** What `POST /pause` and `POST /resume` answer. */
export interface PauseResponse {
  paused: boolean;
  /** True when the call changed nothing (already paused, or not paused). */
  unchanged: boolean;
}
