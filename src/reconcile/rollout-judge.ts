// Judging a release on its live traffic (pure): is it over its error budget, and the phase line
// status and `apply --wait` show (`canary 25%, step 1 of 2, 41 s left, 0.4% errors`).
import type { RolloutSettings } from "../config/rollout-schema.js";
import type { ResponseCounts, RolloutProgress } from "./types.js";

/** The failure code of a release rolled back on its live traffic (or by `rollbridge abort`). */
export const ROLLED_BACK = "ROLLED_BACK" as const;

/** Why the release must go back, or null while it is within its budget (or has too few responses yet). */
export function breach(settings: RolloutSettings, counts: ResponseCounts | undefined, progress: RolloutProgress, now: number): string | null {
  if (!counts || counts.total < settings.minRequests || counts.total === 0) return null;
  const since = progress.phase === "canary" && progress.step === 0 ? "of the canary's start" : "of the switch";
  const within = `within ${seconds(now - progress.judgingSince)} ${since}`;
  if (counts.failed > settings.maxErrorRate * counts.total) {
    return `rolled back: ${counts.failed} of ${counts.total} responses failed (${percent(counts.failed / counts.total, 0)}) ${within}`;
  }
  // p99 over the bound exactly when more than 1% of the responses were slower than it.
  if (settings.maxP99Ms > 0 && counts.slow !== undefined && counts.slow * 100 > counts.total) {
    const p99 = counts.p99Ms ?? settings.maxP99Ms + 1;
    return `rolled back: p99 ${p99} ms over ${settings.maxP99Ms} ms after ${counts.total} responses (${counts.slow} slower) ${within}`;
  }
  return null;
}

/** `canary 25%, step 1 of 2, 41 s left, 0.4% errors` or `baking, 20 s left, 0.0% errors (12 responses)`. */
export function phaseLine(settings: RolloutSettings, progress: RolloutProgress, counts: ResponseCounts | undefined, now: number): string {
  const p99 = settings.maxP99Ms > 0 && counts?.p99Ms !== undefined && counts.p99Ms !== null ? `, p99 ${counts.p99Ms} ms of ${settings.maxP99Ms}` : "";
  const errors = counts && counts.total > 0 ? `${percent(counts.failed / counts.total, 1)} errors${p99}` : "no responses yet";
  const few = counts && counts.total > 0 && counts.total < settings.minRequests ? ` (${counts.total} of ${settings.minRequests} responses needed)` : "";
  if (progress.phase === "canary") {
    const step = settings.steps[progress.step];
    const left = step ? Math.max(0, progress.phaseStartedAt + step.pauseMs - now) : 0;
    return `canary ${step?.weight ?? 0}%, step ${progress.step + 1} of ${settings.steps.length}, ${Math.ceil(left / 1000)} s left, ${errors}${few}`;
  }
  const left = Math.max(0, progress.phaseStartedAt + settings.bakeMs - now);
  return `baking, ${Math.ceil(left / 1000)} s left, ${errors}${few}`;
}

function percent(share: number, decimals: number): string {
  return `${(share * 100).toFixed(decimals)}%`;
}

function seconds(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
}
