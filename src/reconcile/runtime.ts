// The one owner of runtime state: the release records, the process slots of each release (and
// of the daemon-wide services), the services' pseudo-release and the rollout intent. Everyone
// reads them through the read-only views of `Runtime`; only the executor holds the
// `RuntimeRecords` that change them, and it changes them inside a reconcile pass (its actions,
// and the intents it applies when a pass begins). Whoever else wants a change — the control
// API, the memory supervisor, an app's IPC message — queues an `Intent` with `request()`; the
// next pass applies every queued intent before it observes, and the planner decides what it
// means. An intent queued while a pass runs waits for the next pass, never lands mid-pass.
// Outside a pass the records change only before the first one (executor.adopt and
// executor.restoreRelease seed them from the state file) and by a process's own exit and
// health callbacks, which record what happened to it on its slot (observations) and wake the
// loop. A config reload swaps the config inside the loop's exclusive section (main.ts).
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
  | { type: "abort"; key: string };

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

  /** A release record, or the services' pseudo-release for SERVICES_KEY. */
  recordFor(key: string): ReleaseView | undefined {
    return this.#records.recordFor(key);
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
  /** Intents queued by Runtime.request(), applied by applyIntents(). */
  readonly queue: Intent[] = [];

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

  /**
   * Applies every queued intent, oldest first, and empties the queue (the loop calls this when
   * a pass begins, before it observes). A restart marks live slots (not stopping, not failed)
   * with their reason; a memory restart is counted on the slot. An intent for a release or slot
   * that is gone by now is dropped.
   */
  applyIntents(): void {
    const intents = this.queue.splice(0);
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
        default: {
          const _exhaustive: never = intent;
          return _exhaustive;
        }
      }
    }
  }
}
