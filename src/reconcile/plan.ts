// The pure planner: (config, desired, observed, now) → the next actions. No I/O, no clock,
// no randomness, so it is table-tested.
//
// Ordering rules, applied on every pass:
// 1. The desired release is brought forward first. Unknown → createRelease. Stopped or
//    draining (a rollback) → resumeRelease. Failed → resumeRelease once its retry backoff
//    has passed (10 s doubling to 5 min), so a broken desired state is not retried in a
//    tight loop, while a new desired state (a new generation) is tried at once.
// 2. A starting release starts its companions, then (once every companion has been spawned)
//    its proxied instances. Any instance that exits, fails to spawn or fails its health check
//    while starting fails the whole rollout: the release is marked failed and everything it
//    started is stopped; the active release is never touched.
// 3. When every proxied instance of the starting release is ready: switchTraffic (one
//    pointer swap), then beginDrain of the previously active release, then singletons move
//    (the old one is stopped with the drain, the new one starts only when no other is left).
// 4. The active release is supervised: crashed instances restart after their backoff (or
//    are marked failed past restart.maxRestarts), replica counts follow the desired file.
//    Asked-for restarts: ungated processes stop and start again; the proxied one is replaced
//    new-before-old, once the ungated restarts pending with it have been started.
// 5. A draining release stops its nonBlockingDrain companions and singletons at once, the
//    rest when its connections reach zero (and, with affinity, no pinned client came for
//    AFFINITY_IDLE_MS) or drainTimeoutMs passes (then its connections are closed first).
//    A release whose instances have all exited is marked stopped.
// 6. Any other starting release (superseded by a newer desired state) is stopped. A starting
//    release given up on by `apply --wait --timeout` (an abandon intent) is marked failed
//    and stopped, desired or not.
// 7. The desired release *serves* (plan.serving) once it is active, routed, has nothing of
//    its own still starting or restarting, and has served for `bakeMs`. That is when a
//    rollout is done for `apply --wait`; older releases may still be draining, and `converged`
//    waits for them too.
// 8. Rollouts judged on live traffic (CONTRACT.md §7, the config's `rollout` with the desired
//    file's over it), only when there is an active release to go back to. With canary steps,
//    a ready release first takes weight% of new requests per step (beginCanary), the old one
//    staying active; after the last step, the switch. With bakeMs, the switch leaves the old
//    release running, ready and supervised (standby, not draining) for bakeMs (beginBake).
//    All along, a release over its error budget (or `abort`) is rolled back: one pointer swap
//    back (rollBack), then it drains and ends failed, never retried by itself. Passing (or
//    `promote`) ends the rollout (finishRollout) and only then drains the old release.
// Waiting is never a sleep: the plan asks to be run again after requeueAfterMs.
import type { ErrorCode } from "../errors.js";
import { SERVICES_KEY, type JudgeSettings, type Action, type Condition, type DesiredTarget, type ObservedProcess, type ObservedRelease, type ObservedState, type Plan, type ReleaseRecord } from "./types.js";
import type { PlannerConfig, PlannerProcess } from "./planner-config.js";
import { effectiveRollout, type RolloutSettings } from "../config/rollout-schema.js";
import { breach, phaseLine, ROLLED_BACK } from "./rollout-judge.js";

const DRAIN_POLL_MS = 100;
// With affinity, a draining release whose pinned clients came back this recently is not idle,
// even at a moment with nothing in flight (a long-polling client between two polls).
export const AFFINITY_IDLE_MS = 2000;
const STARTING_POLL_MS = 1000;

export function plan(config: PlannerConfig, desired: DesiredTarget | null, observed: ObservedState, now: number): Plan {
  const ctx = new PlanContext(config, desired, observed, now);
  ctx.run();
  return ctx.result();
}

/** How many instances of a process a release should run. */
export function replicaCount(config: PlannerConfig, desired: DesiredTarget | null, proc: PlannerProcess): number {
  // Never two singletons or two copies of a daemon-wide service.
  if (proc.policy === "singleton" || proc.policy === "service") return 1;
  const override = desired?.replicas[proc.id];
  if (override !== undefined && proc.policy !== "proxied") return override;
  if (override !== undefined && override >= 1) return override;
  return proc.replicas;
}

/** Delay before the next automatic restart, and whether the restart budget is spent. */
export function restartDecision(proc: PlannerProcess, obs: ObservedProcess, now: number): { giveUp: boolean; delayMs: number } {
  const window = proc.restart.windowMs;
  const recent = window > 0 ? obs.restartTimes.filter((t) => t > now - window) : obs.restartTimes;
  const max = proc.restart.maxRestarts;
  if (max !== undefined && recent.length >= max) return { giveUp: true, delayMs: 0 };
  let delay = proc.restartDelayMs * Math.pow(proc.restart.backoffFactor, recent.length);
  if (proc.restart.maxDelayMs > 0) delay = Math.min(delay, proc.restart.maxDelayMs);
  return { giveUp: false, delayMs: Math.round(delay) };
}

/** Backoff before a failed desired release is attempted again. */
export function failedRetryDelay(config: PlannerConfig, failedAttempts: number): number {
  const exp = Math.max(0, failedAttempts - 1);
  return Math.min(config.failedRetryBaseMs * Math.pow(2, exp), config.failedRetryMaxMs);
}

class PlanContext {
  private readonly actions: Action[] = [];
  private requeue = Number.POSITIVE_INFINITY;
  private readonly conditions: Condition[] = [];
  private converged = true;
  private serving: string | null = null;
  private readonly byKey = new Map<string, ObservedRelease>();
  private readonly perRelease: PlannerProcess[];
  /** Instances already asked to stop in this pass (each is stopped once). */
  private readonly stopping = new Set<string>();
  /** Releases whose drain this pass begins: no longer supervised. */
  private readonly retiring = new Set<string>();
  /** `<release>/<process>` pairs with a replacement under way: one replica at a time. */
  private readonly replacing = new Set<string>();
  /** The rollout settings of this deploy: the desired file's over the config's. */
  private readonly settings: RolloutSettings;
  /** The previous release, kept running and ready while the desired one bakes. */
  private standbyKey: string | null = null;

  constructor(
    private readonly config: PlannerConfig,
    private readonly desired: DesiredTarget | null,
    private readonly observed: ObservedState,
    private readonly now: number,
  ) {
    for (const rel of observed.releases) this.byKey.set(rel.record.key, rel);
    this.perRelease = config.processes.filter((p) => p.policy !== "service");
    this.settings = effectiveRollout(config.rollout, desired?.rollout);
    const target = desired && !desired.stopped && desired.release ? this.byKey.get(desired.release.generation) : undefined;
    const progress = target?.record.rollout;
    if (target?.record.state === "active" && progress?.phase === "bake") this.standbyKey = progress.previousKey;
  }

  result(): Plan {
    const plan: Plan = { actions: this.actions, conditions: this.conditions, converged: this.converged, serving: this.serving };
    if (Number.isFinite(this.requeue)) plan.requeueAfterMs = Math.max(0, Math.ceil(this.requeue));
    return plan;
  }

  run(): void {
    const target = this.desired && !this.desired.stopped ? this.desired.release : null;
    const targetKey = target?.generation ?? null;

    this.planServices(target ? (this.byKey.get(target.generation)?.record ?? null) : null);
    if (target) {
      const rel = this.byKey.get(target.generation);
      if (!rel) {
        this.push({ type: "createRelease", spec: target });
        this.notConverged("Progressing", "ReleaseCreated", `creating release ${target.id}`);
        this.requeueIn(0);
      } else {
        // Whether the target itself is whole, apart from what else is still going on.
        const before = this.converged;
        this.converged = true;
        this.planTarget(rel);
        if (this.converged) this.judgeServing(rel.record);
        this.converged = before && this.converged;
      }
    } else if (this.desired?.stopped) {
      const active = this.activeRelease();
      if (active) {
        this.push({ type: "switchTraffic", key: null, previousKey: active.record.key });
        this.push({ type: "beginDrain", key: active.record.key });
        this.notConverged("Progressing", "Stopping", `stopping release ${active.record.spec.id}`);
      }
    }

    for (const rel of this.observed.releases) {
      this.planRetiring(rel);
      if (rel.record.key === targetKey) continue;
      this.planOther(rel);
    }
    this.planRetention(targetKey);
    this.finishConditions(targetKey);
  }

  private planTarget(rel: ObservedRelease): void {
    const rec = rel.record;
    if (rec.failure?.noRetry && rec.state !== "starting" && rec.state !== "active") {
      // Rolled back: it drains, ends failed, and is not tried again until an apply names it anew.
      this.condition("Degraded", true, "RolledBack", rec.failure.reason);
      if (rec.state === "draining") this.planDrain(rel);
      else {
        this.stopAll(rel, "rolled back");
        this.converged = false;
        if (!this.allExited(rel)) this.requeueIn(DRAIN_POLL_MS);
      }
      return;
    }
    switch (rec.state) {
      case "failed": {
        const wait = failedRetryDelay(this.config, rec.failedAttempts) - (this.now - (rec.failure?.at ?? 0));
        this.stopAll(rel, "release failed");
        this.converged = false;
        if (wait <= 0 && this.allExited(rel)) {
          this.push({ type: "resumeRelease", key: rec.key });
          this.requeueIn(0);
        } else {
          this.requeueIn(Math.max(wait, DRAIN_POLL_MS));
        }
        return;
      }
      case "stopped":
      case "draining":
        this.push({ type: "resumeRelease", key: rec.key });
        this.converged = false;
        this.requeueIn(0);
        return;
      case "starting":
        if (!this.planAbandoned(rel)) this.planRollout(rel);
        return;
      case "active":
        if (rec.rollout?.phase === "bake" && this.planBake(rel)) return;
        this.supervise(rel);
        return;
      default: {
        const _exhaustive: never = rec.state;
        return _exhaustive;
      }
    }
  }

  /**
   * The bake window of an active release: judged on its responses while the previous release
   * stands by. Returns true when it was rolled back (then it is not supervised as active).
   */
  private planBake(rel: ObservedRelease): boolean {
    const rec = rel.record;
    const progress = rec.rollout;
    if (!progress) return false;
    this.converged = false;
    const previous = this.byKey.get(progress.previousKey);
    const intent = this.observed.rolloutIntent?.key === rec.key ? this.observed.rolloutIntent.kind : null;
    if (!previous || previous.record.state !== "active") {
      // Nothing left to go back to: the rollout is decided.
      this.push({ type: "finishRollout", key: rec.key, outcome: "passed" });
      this.requeueIn(0);
      return false;
    }
    const why = intent === "abort" ? `rolled back by hand (rollbridge abort) ${seconds(this.now - progress.judgingSince)} after the switch` : breach(this.settings, rel.responses, progress, this.now);
    if (why) {
      this.push({ type: "rollBack", key: rec.key, previousKey: previous.record.key, failure: { reason: why, code: ROLLED_BACK } });
      this.requeueIn(0);
      return true;
    }
    const left = progress.phaseStartedAt + this.settings.bakeMs - this.now;
    if (left > 0 && intent !== "promote") {
      this.notConverged("Progressing", "Baking", `${rec.spec.id}: ${phaseLine(this.settings, progress, rel.responses, this.now)}`);
      this.requeueIn(left);
      return false;
    }
    this.push({ type: "finishRollout", key: rec.key, outcome: "passed" });
    this.push({ type: "beginDrain", key: previous.record.key });
    this.notConverged("Progressing", "RolloutPassed", `${rec.spec.id} passed its bake window; draining ${previous.record.spec.id}`);
    this.requeueIn(0);
    return false;
  }

  /**
   * A canary step of a release that is not active yet: the active (previous) release keeps the
   * rest of new requests. Judged like the bake window; each step lasts its pauseMs; after the
   * last one, the switch (and the bake window, if any).
   */
  private planCanary(rel: ObservedRelease): void {
    const rec = rel.record;
    const progress = rec.rollout;
    if (!progress) return;
    this.converged = false;
    const previous = this.byKey.get(progress.previousKey);
    const intent = this.observed.rolloutIntent?.key === rec.key ? this.observed.rolloutIntent.kind : null;
    const backOk = previous?.record.state === "active" && this.observed.activeKey === progress.previousKey;
    if (backOk && previous) {
      const why = intent === "abort" ? `rolled back by hand (rollbridge abort) during canary step ${progress.step + 1}` : breach(this.settings, rel.responses, progress, this.now);
      if (why) {
        this.push({ type: "rollBack", key: rec.key, previousKey: previous.record.key, failure: { reason: why, code: ROLLED_BACK } });
        this.requeueIn(0);
        return;
      }
      const step = this.settings.steps[progress.step];
      const left = step ? progress.phaseStartedAt + step.pauseMs - this.now : 0;
      if (left > 0 && intent !== "promote") {
        this.notConverged("Progressing", "Canary", `${rec.spec.id}: ${phaseLine(this.settings, progress, rel.responses, this.now)}`);
        this.requeueIn(left);
        return;
      }
      const next = this.settings.steps[progress.step + 1];
      if (next && intent !== "promote") {
        this.push({ type: "beginCanary", key: rec.key, previousKey: previous.record.key, step: progress.step + 1, ...this.canaryStep(next.weight) });
        this.notConverged("Progressing", "Canary", `${rec.spec.id}: canary ${next.weight}%, step ${progress.step + 2} of ${this.settings.steps.length}`);
        this.requeueIn(0);
        return;
      }
    }
    // The last step passed (or promote, or nothing left to go back to): all new traffic moves.
    this.push({ type: "switchTraffic", key: rec.key, previousKey: this.observed.activeKey });
    if ((this.observed.services ?? []).length > 0) this.push({ type: "adoptServices", key: rec.key });
    if (backOk && previous && this.settings.bakeMs > 0 && intent !== "promote") {
      this.push({ type: "beginBake", key: rec.key, previousKey: previous.record.key, bakeMs: this.settings.bakeMs, judge: this.judgeSettings() });
    } else {
      this.push({ type: "finishRollout", key: rec.key, outcome: "passed" });
      if (this.observed.activeKey && this.observed.activeKey !== rec.key) this.push({ type: "beginDrain", key: this.observed.activeKey });
    }
    this.notConverged("Progressing", "TrafficSwitched", `switching traffic to ${rec.spec.id}`);
    this.requeueIn(0);
  }

  private canaryStep(weight: number): { steps: number; weight: number; sticky: RolloutSettings["sticky"]; judge: JudgeSettings } {
    return { steps: this.settings.steps.length, weight, sticky: this.settings.sticky, judge: this.judgeSettings() };
  }

  private judgeSettings(): JudgeSettings {
    const judge: JudgeSettings = { windowMs: this.settings.windowMs, minRequests: this.settings.minRequests, maxErrorRate: this.settings.maxErrorRate };
    if (this.settings.maxP99Ms > 0) judge.maxP99Ms = this.settings.maxP99Ms;
    return judge;
  }

  /**
   * The target release serves all new traffic once it is active, routed, whole (nothing of
   * its own still starting) and has served for the bake window; until then, look again when
   * the window ends.
   */
  private judgeServing(rec: ReleaseRecord): void {
    if (rec.state !== "active" || this.observed.activeKey !== rec.key || rec.rollout) return;
    this.serving = rec.key;
  }

  /**
   * A starting release given up on (`apply --wait --timeout`, an abandon intent): it ends
   * failed with the reason, and what it started stops, whether the desired file still names it
   * or (as abort-rollout.ts leaves it) already went back. Returns true when it was.
   */
  private planAbandoned(rel: ObservedRelease): boolean {
    const rec = rel.record;
    const reason = this.observed.abandoned?.[rec.key];
    if (reason === undefined || rec.state !== "starting") return false;
    this.push({ type: "markFailed", key: rec.key, failure: { reason: `rollout of ${rec.spec.id} abandoned: ${reason}`, code: "TIMEOUT" } });
    this.stopAll(rel, "release failed");
    this.converged = false;
    this.requeueIn(0);
    return true;
  }

  /** Bring a starting release up, in order, and switch traffic once it is ready. */
  private planRollout(rel: ObservedRelease): void {
    const rec = rel.record;
    this.converged = false;
    // Leftovers of an earlier attempt (or a drain we are reversing) that were asked to stop.
    let waitingForStops = false;
    for (const obs of rel.processes) {
      if (!obs.stopRequested) continue;
      if (obs.phase === "exited" || obs.phase === "absent") this.push({ type: "forgetProcess", key: rec.key, instanceId: obs.instanceId });
      else waitingForStops = true;
    }
    const live = rel.processes.filter((p) => !p.stopRequested);

    const ownServices = (this.observed.services ?? []).filter((svc) => svc.startedFor === rec.key && !svc.stopRequested);
    for (const obs of [...live, ...ownServices]) {
      const failure = startupFailure(obs);
      if (failure && rec.rollout && this.observed.activeKey === rec.rollout.previousKey) {
        // A canary that crashes has had live traffic: it is rolled back like one over its budget.
        this.push({ type: "rollBack", key: rec.key, previousKey: rec.rollout.previousKey, failure: { reason: `rolled back: ${failure.reason}`, code: ROLLED_BACK } });
        this.requeueIn(0);
        return;
      }
      if (failure) {
        this.push({ type: "markFailed", key: rec.key, failure: { ...failure, instanceId: obs.instanceId } });
        this.stopAll(rel, "rollout failed");
        for (const svc of this.observed.services ?? []) {
          if (svc.startedFor === rec.key && !svc.stopRequested && slotAlive(svc)) this.push({ type: "stopProcess", key: SERVICES_KEY, instanceId: svc.instanceId, kind: "retire", reason: "rollout failed" });
        }
        this.requeueIn(0);
        return;
      }
    }
    if (waitingForStops) {
      this.requeueIn(DRAIN_POLL_MS);
      return;
    }
    if (rec.rollout?.phase === "canary") {
      this.planCanary(rel);
      return;
    }

    if (!this.servicesSpawned()) {
      this.notConverged("Progressing", "StartingServices", "starting services before the release");
      this.requeueIn(DRAIN_POLL_MS);
      return;
    }
    const companions = this.perRelease.filter((p) => p.policy === "companion");
    const proxied = this.perRelease.filter((p) => p.policy === "proxied");
    let companionsSpawned = true;
    for (const proc of companions) {
      if (!this.ensureInstances(rel, live, proc, "deploy")) companionsSpawned = false;
    }
    let ready = companionsSpawned;
    if (companionsSpawned) {
      for (const proc of proxied) {
        if (!this.ensureInstances(rel, live, proc, "deploy")) ready = false;
        const count = replicaCount(this.config, this.desired, proc);
        const instances = live.filter((p) => p.processId === proc.id && p.replicaIndex < count);
        if (instances.length < count || instances.some((p) => p.health !== "ready" && proc.gated)) ready = false;
      }
    }

    if (ready) {
      const previous = this.observed.activeKey;
      // Judged on live traffic only when there is an active release to go back to.
      const back = previous && previous !== rec.key && this.byKey.get(previous)?.record.state === "active" ? previous : null;
      const first = this.settings.steps[0];
      if (back && first) {
        this.push({ type: "beginCanary", key: rec.key, previousKey: back, step: 0, ...this.canaryStep(first.weight) });
        this.notConverged("Progressing", "Canary", `${rec.spec.id}: canary ${first.weight}%, step 1 of ${this.settings.steps.length}`);
        this.requeueIn(0);
        return;
      }
      this.push({ type: "switchTraffic", key: rec.key, previousKey: previous });
      if ((this.observed.services ?? []).length > 0) this.push({ type: "adoptServices", key: rec.key });
      if (back && this.settings.bakeMs > 0) this.push({ type: "beginBake", key: rec.key, previousKey: back, bakeMs: this.settings.bakeMs, judge: this.judgeSettings() });
      else if (previous && previous !== rec.key) this.push({ type: "beginDrain", key: previous });
      this.requeueIn(0);
      this.notConverged("Progressing", "TrafficSwitched", `switching traffic to ${rec.spec.id}`);
    } else {
      this.notConverged("Progressing", "RolloutInProgress", `starting release ${rec.spec.id}`);
      this.requeueIn(STARTING_POLL_MS);
    }
  }

  /**
   * Starts the missing instances of `proc` in a release; returns true when every wanted
   * instance has been spawned (it may not be ready yet).
   */
  private ensureInstances(rel: ObservedRelease, live: ObservedProcess[], proc: PlannerProcess, reason: "deploy" | "scale"): boolean {
    const count = replicaCount(this.config, this.desired, proc);
    let all = true;
    for (let i = 0; i < count; i++) {
      const obs = live.find((p) => p.processId === proc.id && p.replicaIndex === i);
      if (!obs) {
        this.push({ type: "startProcess", key: rel.record.key, processId: proc.id, replicaIndex: i, replicaCount: count, reason });
        all = false;
      } else if (obs.phase === "absent") {
        all = false;
      }
    }
    return all;
  }

  /**
   * Daemon-wide services: started before the first release that needs them (with that
   * release's template), then kept running — restarted on crashes — across every deploy.
   */
  private planServices(targetRecord: ReleaseRecord | null): void {
    const services = this.config.processes.filter((p) => p.policy === "service");
    const observed = this.observed.services ?? [];
    const servicesRecord = { key: SERVICES_KEY } as ReleaseRecord;
    for (const obs of observed) {
      if (obs.stopRequested && !slotAlive(obs)) this.push({ type: "forgetProcess", key: SERVICES_KEY, instanceId: obs.instanceId });
      else if (!obs.stopRequested && !services.some((p) => p.id === obs.processId) && slotAlive(obs)) {
        this.push({ type: "stopProcess", key: SERVICES_KEY, instanceId: obs.instanceId, kind: "retire", reason: "no longer in the config" });
      }
    }
    const rolling = targetRecord?.state === "starting" ? targetRecord : null;
    for (const proc of services) {
      const obs = observed.find((p) => p.processId === proc.id && !p.stopRequested);
      if (!obs) {
        // Started for a rollout in progress, or (after a config reload) for the active release.
        const forRecord = rolling ?? this.activeRelease()?.record ?? null;
        if (forRecord) {
          this.push({ type: "startService", processId: proc.id, spec: forRecord.spec, forKey: forRecord.key });
          this.notConverged("Progressing", "StartingServices", `starting service ${proc.id}`);
        }
        continue;
      }
      this.superviseInstance(servicesRecord, proc, obs);
    }
  }

  private servicesSpawned(): boolean {
    const observed = this.observed.services ?? [];
    return this.config.processes.filter((p) => p.policy === "service").every((proc) => observed.some((o) => o.processId === proc.id && !o.stopRequested && (o.phase === "starting" || o.phase === "running")));
  }

  /** Keep the active release whole: restart crashes, follow replica counts, move singletons. */
  private supervise(rel: ObservedRelease, route = true): void {
    const rec = rel.record;
    const isActive = this.observed.activeKey === rec.key;
    if (!isActive && route) {
      // Marked active but not routed (e.g. traffic was switched away): route it again.
      this.push({ type: "switchTraffic", key: rec.key, previousKey: this.observed.activeKey });
      this.converged = false;
    }
    for (const obs of rel.processes) {
      if (obs.stopRequested && (obs.phase === "exited" || obs.phase === "absent")) {
        this.push({ type: "forgetProcess", key: rec.key, instanceId: obs.instanceId });
      }
    }
    const live = rel.processes.filter((p) => !p.stopRequested);
    const singletonElsewhere = this.observed.releases.some((r) => r.record.key !== rec.key && r.processes.some((p) => this.policyOf(p.processId) === "singleton" && p.phase !== "exited" && p.phase !== "absent"));

    for (const proc of this.perRelease) {
      const count = replicaCount(this.config, this.desired, proc);
      if (proc.policy === "singleton" && singletonElsewhere) {
        this.notConverged("Progressing", "SingletonWaiting", `waiting for the previous ${proc.id} to stop`);
        this.requeueIn(DRAIN_POLL_MS);
        continue;
      }
      for (let i = 0; i < count; i++) {
        const obs = live.find((p) => p.processId === proc.id && p.replicaIndex === i);
        if (!obs) {
          const reason = proc.policy === "singleton" ? "deploy" : "scale";
          this.push({ type: "startProcess", key: rec.key, processId: proc.id, replicaIndex: i, replicaCount: count, reason });
          this.notConverged("Progressing", "Scaling", `starting ${proc.id} replica ${i}`);
          continue;
        }
        this.superviseInstance(rec, proc, obs);
      }
      for (const obs of live.filter((p) => p.processId === proc.id && p.replicaIndex >= count)) {
        if (obs.phase !== "exited" && obs.phase !== "absent") {
          this.push({ type: "stopProcess", key: rec.key, instanceId: obs.instanceId, kind: "retire", reason: "scaled down" });
        } else {
          this.push({ type: "forgetProcess", key: rec.key, instanceId: obs.instanceId });
        }
        this.notConverged("Progressing", "Scaling", `scaling ${proc.id} down to ${count}`);
        this.requeueIn(DRAIN_POLL_MS);
      }
    }
  }

  private superviseInstance(rec: ReleaseRecord, proc: PlannerProcess, obs: ObservedProcess): void {
    if (obs.failed) {
      this.condition("Degraded", true, "ProcessFailed", `${obs.instanceId} failed: restart limit reached`);
      return;
    }
    if ((obs.phase === "exited" || obs.phase === "absent") && obs.pendingRestart) {
      // An asked-for restart (manual, memory, the process itself) starts again at once.
      this.push({ type: "startProcess", key: rec.key, processId: proc.id, replicaIndex: obs.replicaIndex, replicaCount: replicaCount(this.config, this.desired, proc), reason: obs.pendingRestart });
      this.notConverged("Progressing", "Restarting", `restarting ${obs.instanceId} (${obs.pendingRestart})`);
      return;
    }
    if (obs.phase === "exited" || obs.phase === "absent") {
      const decision = restartDecision(proc, obs, this.now);
      this.converged = false;
      if (decision.giveUp) {
        this.push({ type: "markProcessFailed", key: rec.key, instanceId: obs.instanceId, reason: `restart limit reached (${proc.restart.maxRestarts} restarts)` });
        return;
      }
      const exitedAt = obs.exit?.at ?? obs.startedAt ?? this.now;
      const wait = exitedAt + decision.delayMs - this.now;
      if (wait <= 0) {
        this.push({ type: "startProcess", key: rec.key, processId: proc.id, replicaIndex: obs.replicaIndex, replicaCount: replicaCount(this.config, this.desired, proc), reason: "crash" });
        this.notConverged("Progressing", "Restarting", `restarting ${obs.instanceId} after a crash`);
      } else {
        this.notConverged("Degraded", "CrashBackoff", `${obs.instanceId} restarts in ${wait} ms`);
        this.requeueIn(wait);
      }
      return;
    }
    if (obs.pendingRestart) {
      this.planPendingRestart(rec, proc, obs);
      return;
    }
    if (proc.gated && obs.health === "failed" && obs.phase !== "stopping") {
      // A restarted instance that never became ready counts as a crash.
      this.push({ type: "stopProcess", key: rec.key, instanceId: obs.instanceId, kind: "restart", reason: "restart: health check failed" });
      this.converged = false;
      return;
    }
    if (proc.gated && obs.health !== "ready") {
      this.notConverged("Progressing", "WaitingForHealth", `${obs.instanceId} is not ready yet`);
      this.requeueIn(STARTING_POLL_MS);
    }
  }

  /**
   * A restart that was asked for. Ungated processes stop and start again. A gated (proxied)
   * one is replaced new-before-old: a successor starts on a new port, takes traffic once
   * ready, and the old process finishes its requests as a retiring one. Replicas of one
   * process are replaced one at a time.
   */
  private planPendingRestart(rec: ReleaseRecord, proc: PlannerProcess, obs: ObservedProcess): void {
    this.converged = false;
    const reason = obs.pendingRestart ?? "manual";
    if (!proc.gated) {
      if (obs.phase !== "stopping") this.push({ type: "stopProcess", key: rec.key, instanceId: obs.instanceId, kind: "restart", reason: `restart: ${reason}` });
      this.notConverged("Progressing", "Restarting", `restarting ${obs.instanceId} (${reason})`);
      this.requeueIn(DRAIN_POLL_MS);
      return;
    }
    const succ = obs.successor;
    if (!succ && this.ungatedRestartsPending(rec.key)) {
      // A restart of everything goes in deploy order: services and companions first, so the
      // new web instance starts against restarted ones.
      this.notConverged("Progressing", "Replacing", `replacing ${obs.instanceId} once the other restarts have started`);
      this.requeueIn(DRAIN_POLL_MS);
      return;
    }
    if (!succ) {
      const rel = this.byKey.get(rec.key);
      const replacing = `${rec.key}/${proc.id}`;
      const busy = this.replacing.has(replacing) || rel?.processes.some((p) => p.processId === proc.id && p.instanceId !== obs.instanceId && p.successor);
      if (!busy) {
        this.replacing.add(replacing);
        this.push({ type: "startSuccessor", key: rec.key, instanceId: obs.instanceId });
      }
      this.notConverged("Progressing", "Replacing", `replacing ${obs.instanceId} (${reason})`);
      this.requeueIn(STARTING_POLL_MS);
      return;
    }
    if (succ.spawnError || succ.phase === "exited" || succ.health === "failed") {
      const why = succ.spawnError ?? succ.healthReason ?? "the replacement exited before it became ready";
      this.push({ type: "abandonSuccessor", key: rec.key, instanceId: obs.instanceId, reason: why });
      this.condition("Degraded", true, "ReplacementFailed", `replacement of ${obs.instanceId} failed: ${why}`);
      return;
    }
    if (succ.health === "ready") {
      this.push({ type: "promoteSuccessor", key: rec.key, instanceId: obs.instanceId });
      return;
    }
    this.notConverged("Progressing", "Replacing", `waiting for the replacement of ${obs.instanceId} to become ready`);
    this.requeueIn(STARTING_POLL_MS);
  }

  /** A restart asked for an ungated process of this release, or a service, has not been started yet. */
  private ungatedRestartsPending(key: string): boolean {
    const slots = [...(this.byKey.get(key)?.processes ?? []), ...(this.observed.services ?? [])];
    return slots.some((p) => p.pendingRestart !== undefined && !p.stopRequested && !p.failed && this.processById(p.processId)?.gated === false);
  }

  /** Replaced processes finish their requests (up to drainTimeoutMs), then stop. */
  private planRetiring(rel: ObservedRelease): void {
    for (const obs of rel.processes) {
      for (const r of obs.retiring) {
        if (r.phase === "exited") {
          this.push({ type: "forgetRetired", key: rel.record.key, instanceId: obs.instanceId, pid: r.pid });
          continue;
        }
        this.converged = false;
        if (!r.stopRequested && (r.outstanding === 0 || this.now >= r.since + this.config.drainTimeoutMs)) {
          this.push({ type: "stopRetired", key: rel.record.key, instanceId: obs.instanceId, pid: r.pid, reason: "replaced" });
        }
        this.requeueIn(DRAIN_POLL_MS);
      }
    }
  }

  /** Everything that is not the desired release: drain, stop, or leave alone. */
  private planOther(rel: ObservedRelease): void {
    const rec = rel.record;
    switch (rec.state) {
      case "starting":
        if (this.planAbandoned(rel)) return;
        // Superseded by a newer desired state (or the desired state is now stopped); a canary
        // step stops sending it requests first.
        if (rec.rollout) this.push({ type: "finishRollout", key: rec.key, outcome: "superseded" });
        this.stopAll(rel, "superseded");
        this.converged = false;
        if (this.allExited(rel)) this.push({ type: "markStopped", key: rec.key });
        else this.requeueIn(DRAIN_POLL_MS);
        return;
      case "active":
        // Still serving while its successor starts (or stopped: true drains it above).
        // A bake window cut short by a newer desired state: this release keeps serving until
        // the newer one switches, and its standby drains.
        if (rec.rollout) this.push({ type: "finishRollout", key: rec.key, outcome: "superseded" });
        if (this.retiring.has(rec.key)) return;
        if (this.observed.activeKey === rec.key) this.supervise(rel);
        else if (this.standbyKey === rec.key) this.supervise(rel, false);
        else {
          this.push({ type: "beginDrain", key: rec.key });
          this.converged = false;
        }
        return;
      case "draining":
        this.planDrain(rel);
        return;
      case "stopped":
      case "failed":
        this.stopAll(rel, rec.state === "failed" ? "release failed" : "release stopped");
        if (!this.allExited(rel)) {
          this.converged = false;
          this.requeueIn(DRAIN_POLL_MS);
        }
        return;
      default: {
        const _exhaustive: never = rec.state;
        return _exhaustive;
      }
    }
  }

  private planDrain(rel: ObservedRelease): void {
    const rec = rel.record;
    this.converged = false;
    for (const obs of rel.processes) {
      const proc = this.processById(obs.processId);
      const early = proc?.nonBlockingDrain || proc?.policy === "singleton";
      if (early && !obs.stopRequested && slotAlive(obs)) {
        this.push({ type: "stopProcess", key: rec.key, instanceId: obs.instanceId, kind: "retire", reason: "release retired" });
      }
    }
    const open = rel.connections.inflight + rel.connections.websockets;
    const deadline = rec.drainDeadline ?? this.now;
    // The drain's start counts as a pinned visit: its clients may be between two requests right then.
    const lastPinned = Math.max(rel.connections.lastPinnedAt ?? 0, this.config.affinity === true ? (rec.drainStartedAt ?? 0) : 0);
    const pinned = lastPinned > 0 && this.now - lastPinned < AFFINITY_IDLE_MS;
    if ((open > 0 || pinned) && this.now < deadline) {
      this.notConverged("Progressing", "Draining", `draining ${rec.spec.id}: ${open} open connection${open === 1 ? "" : "s"}${pinned ? ", pinned clients still coming" : ""}`);
      this.requeueIn(Math.min(DRAIN_POLL_MS, deadline - this.now));
      return;
    }
    if (open > 0) this.push({ type: "closeConnections", key: rec.key });
    this.stopAll(rel, "release retired");
    if (this.allExited(rel)) this.push({ type: "markStopped", key: rec.key });
    else this.requeueIn(DRAIN_POLL_MS);
    this.notConverged("Progressing", "Stopping", `stopping ${rec.spec.id}`);
  }

  private planRetention(targetKey: string | null): void {
    const retired = this.observed.releases
      .filter((r) => (r.record.state === "stopped" || r.record.state === "failed") && r.record.key !== targetKey && this.allExited(r))
      .sort((a, b) => (b.record.stoppedAt ?? b.record.createdAt) - (a.record.stoppedAt ?? a.record.createdAt));
    const { keep, maxAgeMs } = this.config.retention;
    retired.forEach((r, index) => {
      const age = this.now - (r.record.stoppedAt ?? r.record.createdAt);
      if (index >= keep || (maxAgeMs > 0 && age > maxAgeMs)) this.push({ type: "pruneRelease", key: r.record.key });
    });
  }

  private finishConditions(targetKey: string | null): void {
    const target = targetKey ? this.byKey.get(targetKey) : undefined;
    if (target?.record.state === "failed") {
      this.condition("Degraded", true, "RolloutFailed", target.record.failure?.reason ?? "rollout failed");
    }
    const hasReady = this.conditions.some((c) => c.type === "Ready");
    if (!hasReady) {
      const ready = this.desired?.stopped ? this.observed.activeKey === null : target?.record.state === "active";
      this.condition("Ready", !!ready && this.converged, this.converged ? "Converged" : "NotConverged", this.converged ? "observed state matches the desired state" : "working toward the desired state");
    }
  }

  /** Stops whole slots: the process, a starting successor and retiring predecessors. */
  private stopAll(rel: ObservedRelease, reason: string): void {
    for (const obs of rel.processes) {
      if (!obs.stopRequested && slotAlive(obs)) this.push({ type: "stopProcess", key: rel.record.key, instanceId: obs.instanceId, kind: "retire", reason });
    }
  }

  private allExited(rel: ObservedRelease): boolean {
    return rel.processes.every((p) => !slotAlive(p));
  }

  private activeRelease(): ObservedRelease | undefined {
    return this.observed.activeKey ? this.byKey.get(this.observed.activeKey) : undefined;
  }

  private policyOf(processId: string): PlannerProcess["policy"] | undefined {
    return this.processById(processId)?.policy;
  }

  /** The planner's one lookup of a process definition (plan.ts imports types only, so not config/process-by-id.ts). */
  private processById(processId: string): PlannerProcess | undefined {
    return this.config.processes.find((p) => p.id === processId);
  }

  private push(action: Action): void {
    if (action.type === "stopProcess") {
      const id = `${action.key}/${action.instanceId}`;
      if (this.stopping.has(id)) return;
      this.stopping.add(id);
    }
    if (action.type === "beginDrain") this.retiring.add(action.key);
    this.actions.push(action);
  }

  private requeueIn(ms: number): void {
    this.requeue = Math.min(this.requeue, ms);
  }

  private notConverged(type: "Progressing" | "Degraded", reason: string, message: string): void {
    this.converged = false;
    if (!this.conditions.some((c) => c.type === type)) this.condition(type, true, reason, message);
  }

  private condition(type: Condition["type"], status: boolean, reason: string, message: string): void {
    if (this.conditions.some((c) => c.type === type)) return;
    this.conditions.push({ type, status, reason, message });
  }
}

function isAlive(obs: { phase: ObservedProcess["phase"] }): boolean {
  return obs.phase === "starting" || obs.phase === "running" || obs.phase === "stopping";
}

/** The slot's process, its successor or any retiring predecessor still runs. */
function slotAlive(obs: ObservedProcess): boolean {
  return isAlive(obs) || (obs.successor !== undefined && isAlive(obs.successor)) || obs.retiring.some((r) => r.phase !== "exited");
}

/** Why a starting instance sinks its rollout, if it does. */
function startupFailure(obs: ObservedProcess): { reason: string; code: ErrorCode } | null {
  if (obs.spawnError) return { reason: `${obs.instanceId} could not start: ${obs.spawnError}`, code: "SPAWN_FAILED" };
  if (obs.phase === "exited") {
    const how = obs.exit?.signal ? `signal ${obs.exit.signal}` : `code ${obs.exit?.code ?? "unknown"}${shellExitHint(obs.exit?.code)}`;
    return { reason: `${obs.instanceId} exited with ${how} before it became ready`, code: "PROCESS_EXITED" };
  }
  if (obs.health === "failed") return { reason: obs.healthReason ?? `${obs.instanceId} failed its health check`, code: obs.healthCode ?? "HEALTH_FAILED" };
  return null;
}

/** What /bin/sh means by 127 and 126 (its output line names the command). */
function shellExitHint(code: number | null | undefined): string {
  if (code === 127) return " (the shell could not find a command)";
  if (code === 126) return " (the shell could not execute a command: permission denied)";
  return "";
}

/** 4200 → "4.2 s". */
function seconds(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
}
