// The outcome of the last rollout, in one stable word, for fleet tooling that reads
// `status --json` (docs/cli.md, "status"): computed after each reconcile pass from the
// previous outcome, the desired target, the release records and the pass's plan. Pure: no
// I/O, no clock (time comes in as `now`), so it is table-tested.
//
// Rules, in order:
// 1. No desired release (nothing written yet): the previous outcome stays (null at first).
// 2. `stopped: true`: a rollout still in progress is superseded; a decided one stays.
// 3. The desired release is the rollout's own: its record decides — starting → in-progress,
//    failed → failed (rolled-back when its failure code is ROLLED_BACK), active → serving once
//    the plan says it serves all new traffic (bake window included); once serving, it stays
//    serving (a later crash of the live release is supervision, not a rollout outcome).
// 4. The desired release changed: when it went back to the active release because the
//    previous rollout failed or was rolled back (the daemon's own revert: an automatic
//    rollback, a --timeout abandon), that outcome stays the last rollout's. When it went back
//    to the active release while the previous rollout was still in progress, that rollout is
//    superseded. Otherwise a new rollout begins and rule 3 judges it.
import type { ErrorCode } from "../errors.js";
import type { Plan, ReleaseRecord, DesiredTarget } from "./types.js";

/** Where the last rollout stands: the one word a playbook branches on. */
export type RolloutOutcome = "in-progress" | "serving" | "failed" | "rolled-back" | "superseded";

/** The last rollout the daemon was asked for (`status --json` `rollout`). */
export interface RolloutSummary {
  releaseId: string;
  /** The release's generation (its key in `releases[]`). */
  key: string;
  outcome: RolloutOutcome;
  /** Why it failed, was rolled back or superseded; null while in progress and when serving. */
  reason: string | null;
  /** When the daemon first saw this rollout (ISO). */
  startedAt: string;
  /** When it was decided (ISO); null while in progress. */
  finishedAt: string | null;
}

export interface RolloutInput {
  target: DesiredTarget | null;
  records: Iterable<ReleaseRecord>;
  plan: Plan;
  now: number;
}

/** The failure code of a release rolled back on its live traffic (CONTRACT.md §7). */
export const ROLLED_BACK_CODE: ErrorCode = "ROLLED_BACK";

export function nextRollout(previous: RolloutSummary | null, input: RolloutInput): RolloutSummary | null {
  const { target, plan, now } = input;
  const records = new Map([...input.records].map((r) => [r.key, r]));
  if (target === null || (!target.stopped && target.release === null)) return previous;
  if (target.stopped) {
    return previous?.outcome === "in-progress" ? decide(previous, "superseded", "the desired state became stopped: true before it served", now) : previous;
  }
  const spec = target.release!;
  if (previous !== null && previous.key !== spec.generation) {
    const prevRecord = records.get(previous.key);
    const backToActive = records.get(spec.generation)?.state === "active";
    if (backToActive && (previous.outcome === "failed" || previous.outcome === "rolled-back")) return previous;
    if (backToActive && (prevRecord?.state === "failed" || prevRecord?.failure?.noRetry)) return judge(previous, prevRecord, plan, now);
    if (backToActive && previous.outcome === "in-progress") return decide(previous, "superseded", `the desired state went back to ${spec.id} before ${previous.releaseId} served`, now);
  }
  const current: RolloutSummary =
    previous !== null && previous.key === spec.generation ? previous : { releaseId: spec.id, key: spec.generation, outcome: "in-progress", reason: null, startedAt: new Date(now).toISOString(), finishedAt: null };
  const record = records.get(spec.generation);
  return record ? judge({ ...current, releaseId: record.spec.id }, record, plan, now) : current;
}

/** Rule 3: the outcome of `summary` from its release's record and the plan. */
function judge(summary: RolloutSummary, record: ReleaseRecord, plan: Plan, now: number): RolloutSummary {
  // Rolled back: decided at the swap back, while the release still drains its connections.
  if (record.failure?.noRetry && record.failure.code === ROLLED_BACK_CODE) return decide(summary, "rolled-back", record.failure.reason, now);
  switch (record.state) {
    case "failed": {
      const failure = record.failure;
      const outcome: RolloutOutcome = failure?.code === ROLLED_BACK_CODE ? "rolled-back" : "failed";
      return decide(summary, outcome, failure?.reason ?? `${record.spec.id} failed`, now);
    }
    case "active":
      if (summary.outcome === "serving" || plan.serving === record.key) return decide(summary, "serving", null, now);
      return undecided(summary);
    case "starting":
    case "draining":
    case "stopped":
      // Starting (or being brought back by a rollback): not decided until it serves or fails.
      return undecided(summary);
    default: {
      const _exhaustive: never = record.state;
      return _exhaustive;
    }
  }
}

function decide(summary: RolloutSummary, outcome: RolloutOutcome, reason: string | null, now: number): RolloutSummary {
  if (summary.outcome === outcome && summary.reason === reason) return summary;
  return { ...summary, outcome, reason, finishedAt: new Date(now).toISOString() };
}

function undecided(summary: RolloutSummary): RolloutSummary {
  return summary.outcome === "in-progress" ? summary : { ...summary, outcome: "in-progress", reason: null, finishedAt: null };
}
