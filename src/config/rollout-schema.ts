// The `rollout` section (CONTRACT.md §7): how a new release is judged on its live traffic after
// the switch (bake window), in canary steps before it, and when it is rolled back by itself.
// The config carries the defaults; a desired file may carry the same keys for one deploy.
import { z } from "zod";
import { MAX_TIMER_MS } from "./constants.js";

/** Defaults of the config's `rollout` section: no bake, no canary — a deploy as in §3. */
export const ROLLOUT_DEFAULTS = {
  bakeMs: 0,
  maxErrorRate: 0.05,
  minRequests: 20,
  windowMs: 30_000,
  maxP99Ms: 0,
  steps: [] as { weight: number; pauseMs: number }[],
  sticky: "cookie" as "cookie" | "ip" | "none",
} as const;

/** How long a `--canary 10,50` step lasts when it names no pause of its own. */
export const DEFAULT_CANARY_PAUSE_MS = 60_000;

/** At most this many canary steps: a rollout is a few steps, never a schedule. */
export const MAX_CANARY_STEPS = 20;

const timerMs = () =>
  z
    .number()
    .nonnegative()
    .max(MAX_TIMER_MS, { error: `must be at most ${MAX_TIMER_MS} ms (about 24.8 days)` });

const stepSchema = z.strictObject({
  weight: z
    .number()
    .int({ error: "weight must be a whole percentage" })
    .min(1, { error: "weight must be at least 1 (%)" })
    .max(99, { error: "weight must be at most 99 (%): 100% is the end of the canary, which follows the last step by itself" })
    .meta({ description: "Percentage of new requests (and new WebSockets) sent to the new release during this step.", examples: [10] }),
  pauseMs: timerMs()
    .positive()
    .meta({ description: "How long this step lasts (judged on the new release's responses all along) before the next one.", examples: [60000] }),
});

const stepsSchema = z
  .array(stepSchema)
  .max(MAX_CANARY_STEPS, { error: `at most ${MAX_CANARY_STEPS} canary steps` })
  .refine((steps) => steps.every((s, i) => i === 0 || s.weight > (steps[i - 1]?.weight ?? 0)), {
    message: "canary weights must rise from step to step",
    params: { fix: "order the steps by weight, e.g. [{weight: 10, pauseMs: 60000}, {weight: 50, pauseMs: 60000}]" },
  });

const fields = {
  bakeMs: timerMs().meta({ description: "After the switch, the old release stays running and ready this long while the new one is judged; 0: no bake window.", examples: [60000] }),
  maxErrorRate: z
    .number()
    .min(0)
    .max(1)
    .meta({ description: "Share (0..1) of the new release's responses that may be 5xx or upstream errors; above it, traffic goes back to the old release.", examples: [0.05] }),
  minRequests: z
    .number()
    .int()
    .min(1)
    .meta({ description: "Responses of the new release needed in the window before it is judged.", examples: [20] }),
  windowMs: timerMs()
    .min(1000)
    .meta({ description: "The sliding window the error rate (and the p99 of maxP99Ms) is measured over.", examples: [30000] }),
  maxP99Ms: timerMs()
    .int({ error: "maxP99Ms must be a whole number of milliseconds" })
    .meta({
      description: "Bound on the p99 of the new release's response times (to the response headers), over the same window; above it, once minRequests are in, traffic goes back to the old release. 0: no bound.",
      examples: [500],
    }),
  steps: stepsSchema.meta({ description: "Canary steps before the switch: each sends weight% of new requests to the new release for pauseMs.", examples: [[{ weight: 10, pauseMs: 60000 }]] }),
  sticky: z.enum(["cookie", "ip", "none"]).meta({ description: "During a canary, how a client stays on one side: a cookie the proxy sets, a hash of the client address, or not at all.", examples: ["cookie"] }),
};

/** The config's `rollout` section, with defaults. */
export const rolloutConfigSchema = z
  .strictObject({
    bakeMs: fields.bakeMs.default(ROLLOUT_DEFAULTS.bakeMs),
    maxErrorRate: fields.maxErrorRate.default(ROLLOUT_DEFAULTS.maxErrorRate),
    minRequests: fields.minRequests.default(ROLLOUT_DEFAULTS.minRequests),
    windowMs: fields.windowMs.default(ROLLOUT_DEFAULTS.windowMs),
    maxP99Ms: fields.maxP99Ms.default(ROLLOUT_DEFAULTS.maxP99Ms),
    steps: fields.steps.default([]),
    sticky: fields.sticky.default(ROLLOUT_DEFAULTS.sticky),
  })
  .meta({ description: "Bake window, automatic rollback and canary steps of every deploy (a desired file may override them for one deploy)." });

/** A desired file's `rollout` section: the same keys, each optional, for this deploy only. */
export const rolloutDesiredSchema = z
  .strictObject({
    bakeMs: fields.bakeMs.optional(),
    maxErrorRate: fields.maxErrorRate.optional(),
    minRequests: fields.minRequests.optional(),
    windowMs: fields.windowMs.optional(),
    maxP99Ms: fields.maxP99Ms.optional(),
    steps: fields.steps.optional(),
    sticky: fields.sticky.optional(),
  })
  .meta({ description: "This deploy's rollout settings, over the config's rollout section." });

export type RolloutSettings = z.output<typeof rolloutConfigSchema>;
export type RolloutOverride = z.output<typeof rolloutDesiredSchema>;

/** The settings a deploy runs with: the desired file's keys over the config's. */
export function effectiveRollout(base: RolloutSettings, override: RolloutOverride | undefined): RolloutSettings {
  if (!override) return base;
  return {
    bakeMs: override.bakeMs ?? base.bakeMs,
    maxErrorRate: override.maxErrorRate ?? base.maxErrorRate,
    minRequests: override.minRequests ?? base.minRequests,
    windowMs: override.windowMs ?? base.windowMs,
    maxP99Ms: override.maxP99Ms ?? base.maxP99Ms,
    steps: override.steps ?? base.steps,
    sticky: override.sticky ?? base.sticky,
  };
}

/** `--canary 10,50` or `10:30000,50:60000`: weights in %, each with an optional pause in ms. */
export function parseCanarySteps(text: string): { weight: number; pauseMs: number }[] | string {
  const steps: { weight: number; pauseMs: number }[] = [];
  for (const item of text.split(",")) {
    const m = /^\s*(\d+)\s*(?::\s*(\d+)\s*)?$/.exec(item);
    if (!m || m[1] === undefined) return `"${item}" is not WEIGHT or WEIGHT:PAUSE_MS`;
    steps.push({ weight: Number(m[1]), pauseMs: m[2] === undefined ? DEFAULT_CANARY_PAUSE_MS : Number(m[2]) });
  }
  const parsed = stepsSchema.safeParse(steps);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return issue ? `${issue.path.length ? `step ${Number(issue.path[0]) + 1}: ` : ""}${issue.message}` : "invalid steps";
  }
  return steps;
}
