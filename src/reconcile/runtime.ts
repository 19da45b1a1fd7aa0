// The one owner of runtime state: the release records, the process slots of each release (and
// of the daemon-wide services), what a pass has recorded of each of their OS processes (phase,
// exit, spawn failure), the services' pseudo-release and the rollout intent. Everyone reads them
// through the read-only views of `Runtime`; only the executor holds the `RuntimeRecords` that
// change them, and it changes them inside a reconcile pass: its actions (with its helpers
// slot-processes.ts and replacements.ts, on one slot), and, when a pass begins, the observations
// and intents queued since the last one.
// - Observations: what happened to a process since the last pass began — it exited (or never
//   ran), it became ready, it failed its readiness check. Its own callbacks (slot-processes.ts)
//   emit the event at once, take an exited process out of the proxy's rotation, queue the
//   observation and wake the loop; the next pass records it on the slot before it observes.
//   Until then the records (and observe(), status and waits, which read them) show the process
//   as it was. Only code that acts on the OS process itself — an action's own checks, the
//   proxy's backends, memory sampling, the state file's handover — looks at it directly.
// - Intents: whoever else wants a change — the control API, the memory supervisor, an app's IPC
//   message — queues an `Intent` with `request()`; the next
//   pass applies every queued one before it observes, and the planner decides what it means.
// Something queued while a pass runs waits for the next pass, never lands mid-pass. Outside a
// pass the records change only before the first one (executor.adopt and executor.restoreRelease
// seed them from the state file) and at shutdown, after the loop stopped (stopEverything). A
// config reload swaps the config (not the records) inside the loop's exclusive section (main.ts).
import { errorMessage, type ErrorCode } from "../errors.js";
import type { ManagedProcess } from "../process/managed-process.js";
import type { ExitInfo, ProcessPhase } from "../process/types.js";
import type { Instance } from "./instance.js";
import { SERVICES_KEY, type ReleaseRecord, type ReleaseView, type StartReason } from "./types.js";

/** A change asked for from outside a pass, applied by the next pass before it observes. */
export type Intent =
  /** Restart these slots (`rollbridge restart`, a memory limit, an app's IPC request): the planner restarts or replaces them. */
  | { type: "restart"; targets: readonly SlotRef[]; reason: StartReason; at: number }
  /** The desired file names this release again (`apply`): a failed one is retried at once, a rolled-back one may be judged anew. */
  | { type: "applyAgain"; key: string }
  /** `rollbridge promote`: end the canary step or bake window of this release in its favour. */
  | { type: "promote"; key: string }
  /** `rollbridge abort`: roll this release's canary step or bake window back. */
  | { type: "abort"; key: string }
  /** `apply --wait --timeout` ran out (abort-rollout.ts): this release, if still starting, ends failed (TIMEOUT) and its processes stop. */
  | { type: "abandon"; key: string; reason: string };

/**
 * What happened to one of a slot's processes (its current one, successor or a retiring one)
 * between passes, noted by the process's own callbacks and recorded by the next pass.
 */
export type Observation =
  /** It exited, or never ran (a spawn failure that came back after the spawn). */
  | { type: "exited"; key: string; instanceId: string; process: ManagedProcess }
  /** Its readiness check passed (`at`: when it answered). */
  | { type: "ready"; key: string; instanceId: string; process: ManagedProcess; at: number }
  /** Its readiness check failed. */
  | { type: "unhealthy"; key: string; instanceId: string; process: ManagedProcess; reason: string; code: ErrorCode };

/** What the records say of one OS process: as the action that started or stopped it, or the last observation a pass applied, left it. */
export interface ProcessRecord {
  phase: ProcessPhase;
  exit?: ExitInfo;
  /** Why it never ran. */
  spawnError?: string;
}

/** One slot: its release key (or SERVICES_KEY) and instance id. */
export interface SlotRef {
  key: string;
  instanceId: string;
}

/** `promote` / `abort` as the planner reads it (ObservedState.rolloutIntent). */
export interface RolloutIntent {
  key: string;
  kind: "promote" | "abort";
}

/** The read-only side: what status, waits, logs, the state file and the supervisors see. */
export class Runtime {
  readonly #records: RuntimeRecords;
  readonly #wake: (reason: string) => void;

  private constructor(records: RuntimeRecords, wake: (reason: string) => void) {
    this.#records = records;
    this.#wake = wake;
  }

  /** A runtime and the one handle that changes it (the executor keeps it to itself). */
  static create(wake: (reason: string) => void): { runtime: Runtime; records: RuntimeRecords } {
    const records = new RuntimeRecords();
    return { runtime: new Runtime(records, wake), records };
  }

  /** Release records by key (generation), in creation order. */
  get releases(): ReadonlyMap<string, ReleaseView> {
    return this.#records.releases;
  }

  /** Process slots by release key (SERVICES_KEY for the daemon-wide services), then instance id. */
  get instances(): ReadonlyMap<string, ReadonlyMap<string, Readonly<Instance>>> {
    return this.#records.instances;
  }

  /** The record daemon-wide services run from (the latest good release); null before any service started. */
  get serviceRecord(): ReleaseView | null {
    return this.#records.serviceRecord;
  }

  /** The `promote` / `abort` the planner reads this pass; undefined when none. */
  get rolloutIntent(): Readonly<RolloutIntent> | undefined {
    return this.#records.rolloutIntent;
  }

  /** Starting releases given up on (`abandon` intents applied), by key, with why: the planner marks them failed. */
  get abandoned(): ReadonlyMap<string, string> {
    return this.#records.abandoned;
  }

  /** A release record, or the services' pseudo-release for SERVICES_KEY. */
  recordFor(key: string): ReleaseView | undefined {
    return this.#records.recordFor(key);
  }

  /** What the records say of one of the slots' processes (its phase, exit, spawn failure), not what it does right now. */
  processState(managed: ManagedProcess): Readonly<ProcessRecord> {
    return this.#records.processState(managed);
  }

  /** The restart asked for a slot: set by a pass, or still queued for the next one. */
  restartAsked(key: string, instanceId: string): StartReason | undefined {
    const set = this.#records.instances.get(key)?.get(instanceId)?.pendingRestart;
    if (set !== undefined) return set;
    for (const intent of this.#records.queue) if (intent.type === "restart" && intent.targets.some((t) => t.key === key && t.instanceId === instanceId)) return intent.reason;
    return undefined;
  }

  /** Queues a change for the next pass and asks for that pass. */
  request(intent: Intent): void {
    this.#records.queue.push(intent);
    this.#wake(intent.type);
  }

  /** The intents not applied yet, oldest first. */
  get queued(): readonly Intent[] {
    return this.#records.queue;
  }

  /** The observations not recorded yet, oldest first. */
  get noted(): readonly Observation[] {
    return this.#records.observations;
  }
}

/**
 * The writable side, the executor's alone: the records its actions change, the named
 * mutations that add and forget them, and applying the queued intents at the start of a pass.
 */
export class RuntimeRecords {
  readonly releases = new Map<string, ReleaseRecord>();
  readonly instances = new Map<string, Map<string, Instance>>();
  serviceRecord: ReleaseRecord | null = null;
  rolloutIntent: RolloutIntent | undefined;
  /** `abandon` intents applied and not carried out yet: release key → why (spent once the release is no longer starting). */
  readonly abandoned = new Map<string, string>();
  /** Intents queued by Runtime.request(), applied by applyIntents(). */
  readonly queue: Intent[] = [];
  /** Observations queued by note(), recorded by applyObservations(). */
  readonly observations: Observation[] = [];
  /** Per OS process (a slot's current one, successor or retiring one), what the records say of it. */
  readonly #processes = new WeakMap<ManagedProcess, ProcessRecord>();

  /** Release records, plus the services' pseudo-release. */
  recordFor(key: string): ReleaseRecord | undefined {
    return key === SERVICES_KEY ? (this.serviceRecord ?? undefined) : this.releases.get(key);
  }

  /** A new release (or one restored from the state file), with no slots yet; a known key is kept as it is. */
  addRelease(record: ReleaseRecord): void {
    if (this.releases.has(record.key)) return;
    this.releases.set(record.key, record);
    this.instances.set(record.key, new Map());
  }

  /** A pruned release: its record and its (stopped) slots. */
  forgetRelease(key: string): void {
    this.releases.delete(key);
    this.instances.delete(key);
    this.abandoned.delete(key);
  }

  /** The slots of a release (or of the services), created empty when it has none yet. */
  slotsFor(key: string): Map<string, Instance> {
    let slots = this.instances.get(key);
    if (!slots) {
      slots = new Map();
      this.instances.set(key, slots);
    }
    return slots;
  }

  slot(key: string, instanceId: string): Instance | undefined {
    return this.instances.get(key)?.get(instanceId);
  }

  /** Records a process as it is now: by the action that started, adopted or stopped it, and by applyObservations(). */
  recordProcess(managed: ManagedProcess): void {
    this.#processes.set(managed, snapshot(managed));
  }

  /** What the records say of a process (one never recorded — none an action started — as it is now). */
  processState(managed: ManagedProcess): Readonly<ProcessRecord> {
    return this.#processes.get(managed) ?? snapshot(managed);
  }

  /** Queues what a process's callback saw, for the next pass (the callback wakes the loop itself). */
  note(observation: Observation): void {
    this.observations.push(observation);
  }

  /**
   * Records every queued observation, oldest first, and empties the queue (a pass begins): the
   * process's phase and exit as they are now; a spawn failure on the slot (or its successor)
   * that held the process; a readiness result on the one whose check was still pending for that
   * same process (a slot that moved on to another process ignores it). Returns how many there were.
   */
  applyObservations(): number {
    const observations = this.observations.splice(0);
    for (const o of observations) {
      this.recordProcess(o.process);
      const inst = this.slot(o.key, o.instanceId);
      const target = inst?.proc === o.process ? inst : inst?.successor?.proc === o.process ? inst.successor : undefined;
      switch (o.type) {
        case "exited":
          if (target && o.process.spawnError && target.spawnError === undefined) target.spawnError = errorMessage(o.process.spawnError);
          break;
        case "ready":
          if (target?.healthState !== "pending") break;
          target.healthState = "ready";
          target.readyAt = o.at;
          break;
        case "unhealthy":
          if (target?.healthState !== "pending") break;
          target.healthState = "failed";
          target.healthReason = o.reason;
          target.healthCode = o.code;
          break;
        default: {
          const _exhaustive: never = o;
          return _exhaustive;
        }
      }
    }
    return observations.length;
  }

  /**
   * Applies every queued intent, oldest first, and empties the queue (the loop calls this when
   * a pass begins, before it observes). A restart marks live slots (not stopping, not failed)
   * with their reason; a memory restart is counted on the slot. An intent for a release or slot
   * that is gone by now is dropped, and so is an abandon of a release that is no longer starting.
   */
  applyIntents(): void {
    const intents = this.queue.splice(0);
    for (const key of this.abandoned.keys()) if (this.releases.get(key)?.state !== "starting") this.abandoned.delete(key);
    for (const intent of intents) {
      switch (intent.type) {
        case "restart":
          for (const { key, instanceId } of intent.targets) {
            const inst = this.slot(key, instanceId);
            if (!inst || inst.stopRequested || inst.failed) continue;
            inst.pendingRestart = intent.reason;
            if (intent.reason === "memory") {
              inst.memoryRestarts += 1;
              inst.lastMemoryRestartAt = intent.at;
            }
          }
          break;
        case "applyAgain": {
          const rec = this.releases.get(intent.key);
          // An explicit apply of a failed release is a fresh attempt, not a backed-off retry.
          if (rec?.state === "failed" && rec.failure) rec.failure.at = 0;
          // Naming a rolled-back release again is asking for it: it may be retried (and judged) anew.
          if (rec?.failure?.noRetry) delete rec.failure.noRetry;
          break;
        }
        case "promote":
        case "abort":
          if (this.releases.get(intent.key)?.rollout) this.rolloutIntent = { key: intent.key, kind: intent.type };
          break;
        case "abandon":
          if (this.releases.get(intent.key)?.state === "starting") this.abandoned.set(intent.key, intent.reason);
          break;
        default: {
          const _exhaustive: never = intent;
          return _exhaustive;
        }
      }
    }
  }
}

/** A process's phase, exit and spawn failure as they are now (one that failed to spawn counts as exited). */
function snapshot(managed: ManagedProcess): ProcessRecord {
  const record: ProcessRecord = { phase: managed.spawnError ? "exited" : managed.phase };
  if (managed.exitInfo !== undefined) record.exit = managed.exitInfo;
  if (managed.spawnError !== undefined) record.spawnError = errorMessage(managed.spawnError);
  return record;
}
