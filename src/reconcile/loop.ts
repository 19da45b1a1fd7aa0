// The reconcile loop: one pass at a time (p-queue, concurrency 1). A trigger while a pass
// runs schedules exactly one more pass; waiting is a requeue timer, never a sleep.
import PQueue from "p-queue";
import { errorMessage, isRollbridgeError, type ErrorCode } from "../errors.js";
import type { FailingActionStatus } from "../control/protocol.js";
import { backoffDelay } from "./failure-policy.js";
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
  private passFailure: { error: string; code: ErrorCode | null; attempts: number; at: number; nextAttemptAt: number } | null = null;
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
      // A new desired state: actions that failed (terminally too) may work now.
      if (desired.changed) this.options.executor.forgetFailures();
      // The release under the id the daemon gives it (numbered when another release has it).
      const target = namedTarget(desired.target, this.options.executor.runtime.releases.values());
      if (desired.changed && desired.error) {
        const event = this.options.events.emit({ level: "error", type: "desired-invalid", message: `desired state not applied: ${desired.error.message}`, data: { code: desired.error.code } });
        this.lastAdoption = { seq: event.seq, message: event.message };
      } else if (desired.changed && target) {
        const release = target.release;
        const event = this.options.events.emit({
          type: "desired-changed",
          message: target.stopped ? "desired state: stopped" : `desired state: release ${release?.id}`,
          data: { releaseId: release?.id ?? null, path: release?.path ?? null, generation: release?.generation ?? null, replicas: target.replicas },
        });
        this.lastAdoption = { seq: event.seq, message: event.message };
      }
      // What happened to the processes since the last pass (exits, readiness results) and what
      // was asked for meanwhile (restarts, apply again, promote / abort) land now, before
      // the pass observes: never in the middle of a pass (runtime.ts).
      this.options.executor.beginPass();
      const observed = this.options.executor.observe();
      const result = plan(this.options.plannerConfig(), target, observed, now());
      const ran = await this.options.executor.execute(result.actions);
      this.lastPlan = result;
      this.passFailure = null;
      // After the actions ran: a markFailed of this pass already shows in the records.
      this.lastRollout = nextRollout(this.lastRollout, { target, records: this.options.executor.runtime.releases.values(), plan: result, now: now() });
      this.options.onPass?.(result, desired);
      this.schedule(result, ran);
    } catch (error) {
      this.errors++;
      // The pass itself failed (not one action): it backs off like a failing action, 1 s doubling to 30 s.
      const attempts = (this.passFailure?.attempts ?? 0) + 1;
      const delay = backoffDelay(attempts);
      const at = now();
      this.passFailure = { error: errorMessage(error), code: isRollbridgeError(error) ? error.code : null, attempts, at, nextAttemptAt: at + delay };
      this.options.events.emit({ level: "error", type: "reconcile-error", message: `reconcile pass failed: ${errorMessage(error)}; retrying in ${delay} ms (attempt ${attempts})`, data: { attempts, nextAttemptInMs: delay } });
      this.scheduleIn(delay);
    }
  }

  /** The failing actions of the executor, and the pass itself when it failed (status). */
  failingActions(): FailingActionStatus[] {
    const now = (this.options.now ?? Date.now)();
    const failing = this.options.executor.failingActions(now);
    const pass = this.passFailure;
    if (pass)
      failing.unshift({
        action: "reconcilePass",
        releaseKey: null,
        instanceId: null,
        error: pass.error,
        code: pass.code,
        attempts: pass.attempts,
        terminal: false,
        lastFailedAt: new Date(pass.at).toISOString(),
        nextAttemptInMs: Math.max(0, pass.nextAttemptAt - now),
      });
    return failing;
  }

  private schedule(result: Plan, ran: number): void {
    // Actions change the world: look again almost at once so multi-step transitions don't
    // stall (a few ms, so a planner bug that repeats a no-op action cannot spin a core).
    if (ran > 0) return this.scheduleIn(Math.min(result.requeueAfterMs ?? 5, 5));
    if (result.actions.length === 0) {
      if (result.requeueAfterMs !== undefined) this.scheduleIn(result.requeueAfterMs);
      return;
    }
    // Every action of the plan backs off (failure-policy.ts): nothing changed, so the "at once"
    // the planner asks for with its actions is moot. The next pass comes at the earliest retry,
    // or for a wait of the plan's own (a drain, a health timeout), or when something triggers one.
    const retryAt = this.options.executor.nextRetryAt();
    const retryIn = retryAt === undefined ? Number.POSITIVE_INFINITY : Math.max(5, retryAt - (this.options.now ?? Date.now)());
    const wait = result.requeueAfterMs !== undefined && result.requeueAfterMs > 0 ? result.requeueAfterMs : Number.POSITIVE_INFINITY;
    const next = Math.min(retryIn, wait);
    if (Number.isFinite(next)) this.scheduleIn(next);
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
