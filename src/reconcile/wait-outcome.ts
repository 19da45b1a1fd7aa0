// When is a deploy done? The answer `apply --wait` (and `rollback`, `deploy --wait`) gets,
// decided from the latest pass alone: its plan, the release records, the desired target the
// loop adopted and the loop's last adoption. Pure: no event log is read and no clock is
// compared, so a rollout's end is the same whichever order the events came in.
//
// Rules, in order, for a wait on generation G written at event `sinceSeq`:
// 0. G was rolled back on its live traffic (or by abort) after the write: rolled-back at once —
//    the desired file then goes back to the old release, the daemon's own revert, which is not
//    a superseding change.
// 1. The adopted desired state is not G (or, for a stopped write, not stopped): superseded
//    once the loop has adopted a desired state after the write (a different release, stopped,
//    or an invalid file), else undecided (what was adopted may predate the write).
//    A replicas-only change keeps G: not superseded.
// 2. G failed after the write (its failure's event came after `sinceSeq`): failed, reported
//    once every process the rollout started has stopped, so the caller sees the end state.
// 3. G is active and, after a pass that ran since the wait began, serves all new traffic
//    (plan.serving; with `drained`, the plan is converged: older releases stopped too):
//    converged, naming a release still draining in the background.
// 4. Otherwise undecided: the wait goes on (its timeout is the wait's, not the rollout's).
import type { DrainingRelease } from "./rollout-progress.js";
import type { DesiredTarget, Plan, ReleaseFailure, ReleaseRecord } from "./types.js";

/** The last desired state the loop adopted from the file, and the event that said so. */
export interface Adoption {
  /** Sequence number of its desired-changed (or desired-invalid) event. */
  seq: number;
  /** That event's message ("desired state: release v3"). */
  message: string;
}

export interface WaitInput {
  generation: string | null;
  stopped: boolean;
  drained: boolean;
  sinceSeq: number;
  /** A pass ran since the wait began (the write is adopted by then). */
  afterPass: boolean;
  target: DesiredTarget | null;
  desiredError: string | null;
  plan: Plan | null;
  activeKey: string | null;
  records: ReadonlyMap<string, ReleaseRecord>;
  adoption: Adoption | null;
  /** No process of the release (or a service its rollout started) still runs. */
  settled: (key: string) => boolean;
  /** A release other than G still finishing its connections, if any. */
  draining: (key: string) => DrainingRelease | null;
}

/** The decided end of a wait, before it is put in wire form. */
export type WaitDecision =
  | { outcome: "superseded"; message: string; releaseId: string | null }
  | { outcome: "failed"; releaseId: string; failure: ReleaseFailure }
  | { outcome: "rolled-back"; releaseId: string; failure: ReleaseFailure }
  | { outcome: "converged"; message: string; releaseId: string | null; draining: DrainingRelease | null };

export function decideWait(input: WaitInput): WaitDecision | null {
  const { target, plan } = input;
  const replaced = input.adoption !== null && input.adoption.seq > input.sinceSeq ? input.adoption.message : null;
  if (input.stopped) {
    if (!target?.stopped) return replaced ? { outcome: "superseded", message: `the desired state changed while waiting: ${replaced}`, releaseId: target?.release?.id ?? null } : null;
    if (plan?.converged && input.activeKey === null) return { outcome: "converged", message: "stopped: no active release", releaseId: null, draining: null };
    return null;
  }
  const rec = input.generation ? input.records.get(input.generation) : undefined;
  if (rec?.failure?.noRetry && (rec.failure.seq ?? 0) > input.sinceSeq) return { outcome: "rolled-back", releaseId: rec.spec.id, failure: rec.failure };
  const currentGen = target?.stopped ? null : (target?.release?.generation ?? null);
  if (currentGen !== input.generation) return replaced ? { outcome: "superseded", message: `the desired state changed while waiting: ${replaced}`, releaseId: rec?.spec.id ?? null } : null;
  if (rec?.state === "failed" && rec.failure && (rec.failure.seq ?? 0) > input.sinceSeq && input.settled(rec.key)) return { outcome: "failed", releaseId: rec.spec.id, failure: rec.failure };
  if (!input.afterPass || rec?.state !== "active" || !(input.drained ? plan?.converged : plan?.serving === rec.key)) return null;
  // Another writer's broken file after ours does not undo our rollout: report it, converged.
  const note = input.desiredError ? ` (but the desired file now has a problem: ${input.desiredError})` : "";
  if (plan?.converged) return { outcome: "converged", message: `${rec.spec.id} is active and converged${note}`, releaseId: rec.spec.id, draining: null };
  return { outcome: "converged", message: `${rec.spec.id} serves all new traffic${note}`, releaseId: rec.spec.id, draining: input.draining(rec.key) };
}
