// The reconcile loop: one pass at a time (p-queue, concurrency 1). A trigger while a pass
// runs schedules exactly one more pass; waiting is a requeue timer, never a sleep.
import PQueue from "p-queue";
import { errorMessage } from "../errors.js";
import type { DesiredSnapshot, DesiredStore } from "../observe/desired-store.js";
import type { EventLog } from "./events.js";
import type { Executor } from "./execute.js";
import { plan } from "./plan.js";
import { namedTarget } from "./release-identity.js";
import { nextRollout, type RolloutSummary } from "./rollout-outcome.js";
import type { Adoption } from "./wait-outcome.js";
import type { PlannerConfig } from "./planner-config.js";
import type { Plan } from "./types.js";

export interface LoopOptions {
  store: DesiredStore;
  executor: Executor;
  events: EventLog;
  plannerConfig: () => PlannerConfig;
  resyncIntervalMs: number;
  /** Called after each pass with its plan (status, waiters). */
  onPass?: (plan: Plan, desired: DesiredSnapshot) => void;
  now?: () => number;
}

export class ReconcileLoop {
  private readonly queue = new PQueue({ concurrency: 1 });
  private pending = false;
  private requeueTimer: NodeJS.Timeout | null = null;
  private resyncTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private lastPlan: Plan | null = null;
  private lastRollout: RolloutSummary | null = null;
  private lastAdoption: Adoption | null = null;
  passes = 0;
  errors = 0;

  constructor(private readonly options: LoopOptions) {}

  start(): void {
    this.resyncTimer = setInterval(() => this.trigger("resync"), this.options.resyncIntervalMs);
    this.resyncTimer.unref();
    this.trigger("startup");
  }

  /** Level-triggered: the reason is not used (nor logged); a pass never depends on what woke it. */
  trigger(_reason: string): void {
    if (this.stopped || this.pending) return;
    this.pending = true;
    void this.queue.add(async () => {
      this.pending = false;
      await this.pass();
    });
  }

  /** Resolves after a full pass that started after this call. */
  async runOnce(): Promise<Plan | null> {
    this.trigger("manual");
    await this.queue.onIdle();
    return this.lastPlan;
  }

  /** Runs `fn` between passes, so it never sees (or changes) the world mid-pass. */
  exclusive<T>(fn: () => Promise<T> | T): Promise<T> {
    return this.queue.add(async () => fn()) as Promise<T>;
  }

  latestPlan(): Plan | null {
    return this.lastPlan;
  }

  /** The last desired state a pass adopted (or found invalid), with its event: what a wait compares its write with. */
  latestAdoption(): Adoption | null {
    return this.lastAdoption;
  }

  /** The last rollout's outcome as of the latest pass (rollout-outcome.ts); null before any. */
  latestRollout(): RolloutSummary | null {
    return this.lastRollout;
  }

  /**
   * Stops at once, from inside exclusive() too (a handover): no pass starts after this call, and
   * none is queued. Unlike stop(), it does not wait (the caller may be the queue's current task).
   */
  halt(): void {
    this.stopped = true;
    if (this.requeueTimer) clearTimeout(this.requeueTimer);
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.queue.clear();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.requeueTimer) clearTimeout(this.requeueTimer);
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.queue.clear();
    await this.queue.onIdle();
  }

  private async pass(): Promise<void> {
    if (this.stopped) return;
    this.passes++;
    const now = this.options.now ?? Date.now;
    try {
      const desired = await this.options.store.refresh();
      // The release under the id the daemon gives it (numbered when another release has it).
      const target = namedTarget(desired.target, this.options.executor.releases.values());
      if (desired.changed && desired.error) {
        const event = this.options.events.emit({ level: "error", type: "desired-invalid", message: `desired state not applied: ${desired.error.message}`, data: { code: desired.error.code } });
        this.lastAdoption = { seq: event.seq, message: event.message };
      } else if (desired.changed && target) {
        const release = target.release;
        const event = this.options.events.emit({ type: "desired-changed", message: target.stopped ? "desired state: stopped" : `desired state: release ${release?.id}`, data: { releaseId: release?.id ?? null, path: release?.path ?? null, generation: release?.generation ?? null, replicas: target.replicas } });
        this.lastAdoption = { seq: event.seq, message: event.message };
      }
      const observed = this.options.executor.observe();
      const result = plan(this.options.plannerConfig(), target, observed, now());
      await this.options.executor.execute(result.actions);
      this.lastPlan = result;
      // After the actions ran: a markFailed of this pass already shows in the records.
      this.lastRollout = nextRollout(this.lastRollout, { target, records: this.options.executor.releases.values(), plan: result, now: now() });
      this.options.onPass?.(result, desired);
      this.schedule(result);
    } catch (error) {
      this.errors++;
      this.options.events.emit({ level: "error", type: "reconcile-error", message: `reconcile pass failed: ${errorMessage(error)}` });
      this.scheduleIn(1000);
    }
  }

  private schedule(result: Plan): void {
    // Actions change the world: look again almost at once so multi-step transitions don't
    // stall (a few ms, so a planner bug that repeats a no-op action cannot spin a core).
    if (result.actions.length > 0) return this.scheduleIn(Math.min(result.requeueAfterMs ?? 5, 5));
    if (result.requeueAfterMs !== undefined) this.scheduleIn(result.requeueAfterMs);
  }

  private scheduleIn(ms: number): void {
    if (this.stopped) return;
    if (this.requeueTimer) clearTimeout(this.requeueTimer);
    this.requeueTimer = setTimeout(() => {
      this.requeueTimer = null;
      this.trigger("requeue");
    }, ms);
  }
}
