// What the control server needs from a running daemon, declared here so control/ depends on
// this interface and never on main.ts: the composition root implements it. Every method
// answers in the wire types of protocol.ts; domain decisions (which release a rollback goes
// to, whether a rollout is done) live behind it, not in the routes.
import type { DesiredDocument } from "../config/desired-schema.js";
import type {
  ApplyResponse,
  DaemonEvent,
  DiffResponse,
  LogLine,
  PauseResponse,
  ReconcileResponse,
  RolloutIntentResponse,
  RestartRequest,
  RestartResponse,
  RollbackResponse,
  StatusDocument,
  StatusOptions,
  UpgradeResponse,
  WaitOutcome,
} from "./protocol.js";

/** Which lines `logs` selects (query `process`, `lines`, `since`). */
export interface LogQuery {
  /** A process id or replica id; null: every process. */
  process: string | null;
  /** At most this many lines (the most recent); null: all retained. */
  lines: number | null;
  /** Only lines read at or after this time (ms since the epoch). */
  since: number | null;
}

/** The rollout an `apply --wait` follows (query of `GET /wait`). */
export interface RolloutQuery {
  /** The generation the apply wrote; null with `stopped`. */
  generation: string | null;
  /** The apply wrote `stopped: true`: done once nothing serves. */
  stopped: boolean;
  /** `--wait-drained`: done only once older releases have drained and stopped too. */
  drained: boolean;
  /** The event sequence number before the write (ApplyResponse.sinceSeq). */
  sinceSeq: number;
  /** When the wait began (ms since the epoch). */
  startedAt: number;
}

/** The daemon's event history and live feed. */
export interface EventFeed {
  /** The last `limit` events (all retained ones without a limit), oldest first. */
  recent(limit?: number): DaemonEvent[];
  lastSeq(): number;
  subscribe(listener: (event: DaemonEvent) => void): () => void;
}

export interface DaemonApi {
  readonly events: EventFeed;
  status(options: StatusOptions): StatusDocument;
  logs(query: LogQuery): LogLine[];
  /** Every output line written from now on by a process the query selects. */
  followLogs(query: LogQuery, listener: (line: LogLine) => void): () => void;
  apply(document: unknown, options: { dryRun: boolean }): Promise<ApplyResponse>;
  /** The desired document a `DesiredInput` from the CLI stands for (file text parsed, flags merged over the current file); DESIRED_INVALID / USAGE errors as the CLI would give them. */
  documentFromInput(input: unknown): Promise<unknown>;
  /** The changes a document (or, without one, the desired file as it is now) would make. */
  diff(document: DesiredDocument | undefined): Promise<DiffResponse>;
  rollback(releaseId: string | undefined): Promise<RollbackResponse>;
  restart(request: RestartRequest): RestartResponse;
  /** Resolves after a full reconcile pass that started after the call. */
  reconcile(): Promise<ReconcileResponse>;
  /** How the rollout stands after the latest pass: an outcome once it is decided, else null. `afterPass`: a pass ran since the wait began (outcomes read from the plan need one). */
  rolloutOutcome(query: RolloutQuery, afterPass: boolean): WaitOutcome | null;
  /** What the rollout waits for right now (a pending health check, a drain), one line each. */
  rolloutProgress(query: RolloutQuery): string[];
  /** The outcome of a wait that ran out of time; with `abort`, a rollout still starting is abandoned first. */
  rolloutTimedOut(query: RolloutQuery, timeoutMs: number, abort: boolean): Promise<WaitOutcome>;
  /** `promote` / `abort` the rollout in a canary step or bake window (NO_ROLLOUT when none is). */
  rolloutIntent(kind: "promote" | "abort"): Promise<RolloutIntentResponse>;
  /** `pause` (true) / `resume` (false): hold new requests at the proxy, or let them go in order. */
  setPaused(paused: boolean): PauseResponse;
  /** Calls `listener` after every reconcile pass; returns the unsubscribe. */
  onPass(listener: () => void): () => void;
  /** Asks for a reconcile pass soon (level-triggered: the reason is only for the reader). */
  trigger(reason: string): void;
  /** `rollbridge upgrade`: a new daemon takes over the listeners and every process; resolves once it serves. */
  upgrade(origin: string): Promise<UpgradeResponse>;
  /** Stops the daemon (its processes too); in CLI mode the process then exits. */
  requestShutdown(reason: string): void;
}
