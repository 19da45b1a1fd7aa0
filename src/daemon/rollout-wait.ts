// `apply --wait`: whether the rollout an apply started is done, failed or superseded, what it
// waits for meanwhile, and what a wait that runs out of time reports.
import type { RolloutQuery } from "../control/daemon-api.js";
import type { WaitOutcome } from "../control/protocol.js";
import { describeDrain, drainingReleases, progressLines } from "../reconcile/rollout-progress.js";
import { SERVICES_KEY } from "../reconcile/types.js";
import { abortRollout } from "./abort-rollout.js";
import type { DaemonParts } from "./parts.js";

/** The rollout's outcome once decided, else null (the wait goes on). */
export function rolloutOutcome(daemon: DaemonParts, query: RolloutQuery, afterPass: boolean): WaitOutcome | null {
  const { generation, sinceSeq: since, startedAt } = query;
  const plan = daemon.loop.latestPlan();
  const desired = daemon.store.current();
  // Superseded only once the daemon has adopted something else since the write (another
  // writer's different release, stopped, or an invalid file): until then the adopted state
  // may simply predate our write. A replicas-only change keeps the generation: not superseded.
  const replaced = replacedSince(daemon, since);
  if (query.stopped) {
    if (!desired.target?.stopped) {
      if (replaced) return { outcome: "superseded", message: `the desired state changed while waiting: ${replaced}`, releaseId: desired.target?.release?.id ?? null };
      return null;
    }
    if (plan?.converged && daemon.proxy.activeRelease() === null) return { outcome: "converged", message: "stopped: no active release", releaseId: null };
    return null;
  }
  const rec = generation ? daemon.executor.releases.get(generation) : undefined;
  const currentGen = desired.target?.stopped ? null : (desired.target?.release?.generation ?? null);
  if (currentGen !== generation) {
    if (replaced) return { outcome: "superseded", message: `the desired state changed while waiting: ${replaced}`, releaseId: rec?.spec.id ?? null };
    return null;
  }
  // Failed: reported once what the rollout started has stopped, so the caller sees the end state.
  if (rec?.state === "failed" && rec.failure && rec.failure.at >= startedAt - 10 && releaseSettled(daemon, rec.key)) {
    const f = rec.failure;
    return { outcome: "failed", message: f.reason, releaseId: rec.spec.id, failure: { reason: f.reason, code: f.code, instanceId: f.instanceId ?? null, output: f.output ?? [] } };
  }
  // Another writer's broken file after ours does not undo our rollout: report it, converged.
  const note = desired.error ? ` (but the desired file now has a problem: ${desired.error.message})` : "";
  // Done once the release serves all new traffic; the old one drains in the background
  // (reported), unless --wait-drained asked to see it stopped as well.
  if (afterPass && rec?.state === "active" && (query.drained ? plan?.converged : plan?.serving === rec.key)) {
    const draining = plan?.converged ? null : (drainingReleases(daemon.executor.observe()).find((d) => d.key !== rec.key) ?? null);
    const message = plan?.converged ? `${rec.spec.id} is active and converged${note}` : `${rec.spec.id} serves all new traffic${note}`;
    return {
      outcome: "converged",
      message,
      releaseId: rec.spec.id,
      draining: draining && { releaseId: draining.releaseId, inflight: draining.inflight, websockets: draining.websockets, deadline: draining.deadline, message: `draining ${describeDrain(draining, Date.now())}` },
    };
  }
  return null;
}

/** What the rollout waits for right now, one line each. */
export function rolloutProgress(daemon: DaemonParts, query: RolloutQuery): string[] {
  return progressLines(daemon.config, daemon.executor, daemon.loop.latestPlan(), query.stopped ? null : query.generation, Date.now());
}

/** A wait that ran out of time: with `abort`, `apply --wait --timeout` abandons a rollout still starting (naught's deploy-abort). */
export async function rolloutTimedOut(daemon: DaemonParts, query: RolloutQuery, timeoutMs: number, abort: boolean): Promise<WaitOutcome> {
  const generation = query.generation;
  const aborted = generation && abort ? await abortRollout(daemon, generation, `not ready within ${timeoutMs} ms (--timeout)`).catch(() => null) : null;
  const rec = daemon.executor.releases.get(generation ?? "");
  const draining = rec?.state === "active" ? drainingReleases(daemon.executor.observe()).find((d) => d.key !== rec.key) : undefined;
  const message = aborted ?? (draining ? `${rec?.spec.id} serves, but ${draining.releaseId} was still draining after ${timeoutMs} ms` : `not converged within ${timeoutMs} ms`);
  return { outcome: "timeout", message, releaseId: rec?.spec.id ?? null };
}

/** No process of the release (or a service its rollout started) is still running. */
function releaseSettled(daemon: DaemonParts, key: string): boolean {
  const gone = (phase: string | undefined) => phase === undefined || phase === "exited";
  const slots = [...(daemon.executor.instances.get(key)?.values() ?? [])];
  const services = [...(daemon.executor.instances.get(SERVICES_KEY)?.values() ?? [])].filter((i) => i.startedFor === key);
  return [...slots, ...services].every((i) => gone(i.proc?.phase) && gone(i.successor?.proc?.phase) && i.retiring.every((r) => gone(r.proc.phase)));
}

/** What the daemon adopted from the desired file after event `since`, if anything (the latest). */
function replacedSince(daemon: DaemonParts, since: number): string | null {
  const adopted = daemon.events.recent().filter((e) => e.seq > since && (e.type === "desired-changed" || e.type === "desired-invalid"));
  return adopted.at(-1)?.message ?? null;
}
