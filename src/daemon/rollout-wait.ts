// `apply --wait`: whether the rollout an apply started is done, failed or superseded, what it
// waits for meanwhile, and what a wait that runs out of time reports.
import type { RolloutQuery } from "../control/daemon-api.js";
import type { WaitOutcome } from "../control/protocol.js";
import type { ManagedProcess } from "../process/managed-process.js";
import { describeDrain, drainingReleases, progressLines } from "../reconcile/rollout-progress.js";
import { SERVICES_KEY } from "../reconcile/types.js";
import { decideWait } from "../reconcile/wait-outcome.js";
import { abortRollout } from "./abort-rollout.js";
import type { DaemonParts } from "./parts.js";

/** The rollout's outcome once decided (reconcile/wait-outcome.ts decides), else null (the wait goes on). */
export function rolloutOutcome(daemon: DaemonParts, query: RolloutQuery, afterPass: boolean): WaitOutcome | null {
  const desired = daemon.store.current();
  const decision = decideWait({
    generation: query.generation,
    stopped: query.stopped,
    drained: query.drained,
    sinceSeq: query.sinceSeq,
    afterPass,
    target: desired.target,
    desiredError: desired.error?.message ?? null,
    plan: daemon.loop.latestPlan(),
    activeKey: daemon.proxy.activeRelease(),
    records: daemon.executor.runtime.releases,
    adoption: daemon.loop.latestAdoption(),
    settled: (key) => releaseSettled(daemon, key),
    draining: (key) => drainingReleases(daemon.executor.observe()).find((d) => d.key !== key) ?? null,
  });
  switch (decision?.outcome) {
    case undefined:
      return null;
    case "superseded":
      return decision;
    case "rolled-back":
    case "failed": {
      const f = decision.failure;
      return { outcome: decision.outcome, message: f.reason, releaseId: decision.releaseId, failure: { reason: f.reason, code: f.code, instanceId: f.instanceId ?? null, output: f.output ?? [] } };
    }
    case "converged": {
      const { draining } = decision;
      const outcome: WaitOutcome = { outcome: "converged", message: decision.message, releaseId: decision.releaseId };
      // `draining` is on every converged answer of a release (null when nothing drains), not on a stopped one's.
      if (decision.releaseId !== null)
        outcome.draining = draining && { releaseId: draining.releaseId, inflight: draining.inflight, websockets: draining.websockets, deadline: draining.deadline, message: `draining ${describeDrain(draining, Date.now())}` };
      return outcome;
    }
    default: {
      const _exhaustive: never = decision;
      return _exhaustive;
    }
  }
}

/** What the rollout waits for right now, one line each. */
export function rolloutProgress(daemon: DaemonParts, query: RolloutQuery): string[] {
  return progressLines(daemon.config, daemon.executor, daemon.loop.latestPlan(), query.stopped ? null : query.generation, Date.now());
}

/** A wait that ran out of time: with `abort`, `apply --wait --timeout` abandons a rollout still starting (naught's deploy-abort). */
export async function rolloutTimedOut(daemon: DaemonParts, query: RolloutQuery, timeoutMs: number, abort: boolean): Promise<WaitOutcome> {
  const generation = query.generation;
  const aborted = generation && abort ? await abortRollout(daemon, generation, `not ready within ${timeoutMs} ms (--timeout)`).catch(() => null) : null;
  const rec = daemon.executor.runtime.releases.get(generation ?? "");
  const draining = rec?.state === "active" ? drainingReleases(daemon.executor.observe()).find((d) => d.key !== rec.key) : undefined;
  const message = aborted ?? (draining ? `${rec?.spec.id} serves, but ${draining.releaseId} was still draining after ${timeoutMs} ms` : `not converged within ${timeoutMs} ms`);
  return { outcome: "timeout", message, releaseId: rec?.spec.id ?? null };
}

/** No process of the release (or a service its rollout started) is still running, as the records say. */
function releaseSettled(daemon: DaemonParts, key: string): boolean {
  const runtime = daemon.executor.runtime;
  const gone = (proc: ManagedProcess | undefined) => proc === undefined || runtime.processState(proc).phase === "exited";
  const slots = [...(runtime.instances.get(key)?.values() ?? [])];
  const services = [...(runtime.instances.get(SERVICES_KEY)?.values() ?? [])].filter((i) => i.startedFor === key);
  return [...slots, ...services].every((i) => gone(i.proc) && gone(i.successor?.proc) && i.retiring.every((r) => gone(r.proc)));
}
