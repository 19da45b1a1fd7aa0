// Planner tables for rollouts judged on live traffic (CONTRACT.md §7): bake window, automatic
// rollback, canary steps, promote/abort intents, and what a newer desired state does to them.
import { describe, expect, it } from "vitest";
import { plan } from "../../src/reconcile/plan.js";
import type { PlannerConfig } from "../../src/reconcile/planner-config.js";
import type { DesiredTarget, ObservedState, Plan, RolloutProgress } from "../../src/reconcile/types.js";
import { ROLLOUT_DEFAULTS } from "../../src/config/rollout-schema.js";
import { SECOND, T, crashed, describeAction, desired, healthy, keyOf, observed, plannerConfig, release, running, singletonProcess, webProcess, workerProcess } from "./plan-fixtures.js";

interface Row {
  name: string;
  config?: PlannerConfig;
  desired: DesiredTarget;
  observed: ObservedState;
  now?: number;
  actions: string[];
  converged?: boolean;
  requeueAfterMs?: number;
  condition?: { type: string; reason: string; message?: string | RegExp };
}

function run(row: Pick<Row, "config" | "desired" | "observed" | "now">): Plan {
  return plan(row.config ?? plannerConfig(), row.desired, row.observed, row.now ?? T);
}

function check(row: Row): Plan {
  const result = run(row);
  expect(result.actions.map(describeAction)).toEqual(row.actions);
  if (row.converged !== undefined) expect(result.converged).toBe(row.converged);
  if (row.requeueAfterMs !== undefined) expect(result.requeueAfterMs).toBe(row.requeueAfterMs);
  if (row.condition) {
    const found = result.conditions.find((c) => c.type === row.condition?.type && c.reason === row.condition.reason);
    expect(found, JSON.stringify(result.conditions)).toBeDefined();
    if (row.condition.message instanceof RegExp) expect(found?.message).toMatch(row.condition.message);
    else if (row.condition.message !== undefined) expect(found?.message).toBe(row.condition.message);
  }
  return result;
}

const rollout = (patch: Partial<PlannerConfig["rollout"]>): PlannerConfig => plannerConfig({ rollout: { ...ROLLOUT_DEFAULTS, steps: [], ...patch } });
const bake30 = rollout({ bakeMs: 30 * SECOND });
const canary = rollout({
  steps: [
    { weight: 10, pauseMs: 60 * SECOND },
    { weight: 50, pauseMs: 60 * SECOND },
  ],
  sticky: "ip",
});
const canaryBake = rollout({ steps: [{ weight: 25, pauseMs: 10 * SECOND }], bakeMs: 30 * SECOND, sticky: "none" });

function baking(startedAgoMs: number, patch: Partial<RolloutProgress> = {}): { record: { rollout: RolloutProgress; activatedAt: number } } {
  return { record: { activatedAt: T - startedAgoMs, rollout: { previousKey: keyOf("v1"), phase: "bake", step: 0, phaseStartedAt: T - startedAgoMs, judgingSince: T - startedAgoMs, ...patch } } };
}

function inCanary(step: number, startedAgoMs: number, judgingAgoMs = startedAgoMs): { record: { rollout: RolloutProgress } } {
  return { record: { rollout: { previousKey: keyOf("v1"), phase: "canary", step, phaseStartedAt: T - startedAgoMs, judgingSince: T - judgingAgoMs } } };
}

describe("without a rollout section", () => {
  it.each<Row>([{ name: "a ready release switches and the old one drains at once", desired: desired("v2"), observed: observed("v1", healthy("v1"), healthy("v2", "starting")), actions: ["switchTraffic v2 from v1", "beginDrain v1"] }])(
    "$name",
    (row) => void check(row),
  );
});

describe("bake window", () => {
  it.each<Row>([
    {
      name: "the switch leaves the old release standing by, not draining",
      config: bake30,
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), healthy("v2", "starting")),
      actions: ["switchTraffic v2 from v1", "beginBake v2 30000 ms back to v1"],
    },
    {
      name: "a desired file's rollout.bakeMs bakes one deploy over a config without one",
      desired: desired("v2", { rollout: { bakeMs: 5 * SECOND } }),
      observed: observed("v1", healthy("v1"), healthy("v2", "starting")),
      actions: ["switchTraffic v2 from v1", "beginBake v2 5000 ms back to v1"],
    },
    {
      name: "a first deploy has nothing to go back to: no bake",
      config: bake30,
      desired: desired("v2"),
      observed: observed(null, healthy("v2", "starting")),
      actions: ["switchTraffic v2 from none"],
    },
    {
      name: "while it bakes within its budget nothing moves, the old release is supervised, and it does not serve yet",
      config: bake30,
      desired: desired("v2"),
      observed: observed("v2", healthy("v1"), healthy("v2", "active", { ...baking(10 * SECOND), responses: { total: 200, failed: 2 } })),
      actions: [],
      converged: false,
      requeueAfterMs: 20 * SECOND,
      condition: { type: "Progressing", reason: "Baking", message: "v2: baking, 20 s left, 1.0% errors" },
    },
    {
      name: "the old release's crashed process is restarted while it stands by",
      config: bake30,
      desired: desired("v2"),
      observed: observed("v2", release("v1", "active", [crashed("worker", T - 10 * SECOND), running("web")]), healthy("v2", "active", baking(10 * SECOND))),
      actions: ["startProcess v1 worker[0/1] crash"],
    },
    {
      name: "over its error budget once minRequests are in: one rollback, with the numbers",
      config: bake30,
      desired: desired("v2"),
      observed: observed("v2", healthy("v1"), healthy("v2", "active", { ...baking(4200), responses: { total: 120, failed: 37 } })),
      actions: ["rollBack v2 to v1: rolled back: 37 of 120 responses failed (31%) within 4.2 s of the switch"],
    },
    {
      name: "every response failed but fewer than minRequests: not judged yet",
      config: bake30,
      desired: desired("v2"),
      observed: observed("v2", healthy("v1"), healthy("v2", "active", { ...baking(SECOND), responses: { total: 19, failed: 19 } })),
      actions: [],
      condition: { type: "Progressing", reason: "Baking", message: /19 of 20 responses needed/ },
    },
    {
      name: "exactly at maxErrorRate is within the budget",
      config: bake30,
      desired: desired("v2"),
      observed: observed("v2", healthy("v1"), healthy("v2", "active", { ...baking(SECOND), responses: { total: 100, failed: 5 } })),
      actions: [],
    },
    {
      name: "passing: the rollout ends, and only then the old release drains",
      config: bake30,
      desired: desired("v2"),
      observed: observed("v2", healthy("v1"), healthy("v2", "active", { ...baking(30 * SECOND), responses: { total: 500, failed: 3 } })),
      actions: ["finishRollout v2 passed", "beginDrain v1"],
    },
    {
      name: "the old release was lost meanwhile: nothing to go back to, the rollout is decided",
      config: bake30,
      desired: desired("v2"),
      observed: observed("v2", healthy("v2", "active", baking(10 * SECOND))),
      actions: ["finishRollout v2 passed"],
    },
  ])("$name", (row) => void check(row));

  it("does not serve during the bake window and serves once it has passed", () => {
    const during = run({ config: bake30, desired: desired("v2"), observed: observed("v2", healthy("v1"), healthy("v2", "active", baking(10 * SECOND))) });
    expect(during.serving).toBeNull();
    const after = run({ config: bake30, desired: desired("v2"), observed: observed("v2", healthy("v1", "draining"), healthy("v2")) });
    expect(after.serving).toBe(keyOf("v2"));
  });

  it("a singleton moves only once the rollout is decided", () => {
    const config = plannerConfig({ processes: [webProcess(), workerProcess(), singletonProcess("clock")], rollout: { ...ROLLOUT_DEFAULTS, steps: [], bakeMs: 30 * SECOND } });
    const result = check({
      name: "",
      config,
      desired: desired("v2"),
      observed: observed("v2", release("v1", "active", [running("worker"), running("web"), running("clock")]), healthy("v2", "active", baking(SECOND))),
      actions: [],
    });
    expect(result.actions.some((a) => a.type === "startProcess" && a.processId === "clock")).toBe(false);
  });
});

describe("rolled back", () => {
  const rolledBack = { reason: "rolled back: 37 of 120 responses failed (31%) within 4.2 s of the switch", code: "ROLLED_BACK" as const, at: T - SECOND, noRetry: true };
  it.each<Row>([
    {
      name: "while the desired file still names it, it drains and is not resumed",
      config: bake30,
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), healthy("v2", "draining", { record: { failure: rolledBack }, connections: { inflight: 2 } })),
      actions: [],
      converged: false,
      condition: { type: "Degraded", reason: "RolledBack", message: rolledBack.reason },
    },
    {
      name: "failed after its drain, it is never retried by itself, long after the backoff",
      config: bake30,
      desired: desired("v2"),
      now: T + 3_600_000,
      observed: observed("v1", healthy("v1"), release("v2", "failed", [], { record: { failure: rolledBack } })),
      actions: [],
      condition: { type: "Degraded", reason: "RolledBack" },
    },
    {
      name: "the desired file back on the old release: the old one serves, the rolled-back one drains",
      config: bake30,
      desired: desired("v1"),
      observed: observed("v1", healthy("v1"), healthy("v2", "draining", { record: { failure: rolledBack, drainDeadline: T - 1 } })),
      actions: ["stopProcess v2 worker", "stopProcess v2 web"],
    },
  ])("$name", (row) => void check(row));
});

describe("canary steps", () => {
  it.each<Row>([
    {
      name: "a ready release starts with the first step; the old one stays active",
      config: canary,
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), healthy("v2", "starting")),
      actions: ["beginCanary v2 step 1/2 10% ip back to v1"],
    },
    {
      name: "a first deploy has no one to share with: it switches",
      config: canary,
      desired: desired("v2"),
      observed: observed(null, healthy("v2", "starting")),
      actions: ["switchTraffic v2 from none"],
    },
    {
      name: "during a step, judged within budget: it waits out the step",
      config: canary,
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), healthy("v2", "starting", { ...inCanary(0, 19 * SECOND), responses: { total: 250, failed: 1 } })),
      actions: [],
      requeueAfterMs: 41 * SECOND,
      condition: { type: "Progressing", reason: "Canary", message: "v2: canary 10%, step 1 of 2, 41 s left, 0.4% errors" },
    },
    {
      name: "a step over: the next one",
      config: canary,
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), healthy("v2", "starting", inCanary(0, 60 * SECOND))),
      actions: ["beginCanary v2 step 2/2 50% ip back to v1"],
    },
    {
      name: "the last step over and no bake window: 100%, and the old release drains",
      config: canary,
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), healthy("v2", "starting", inCanary(1, 60 * SECOND, 120 * SECOND))),
      actions: ["switchTraffic v2 from v1", "finishRollout v2 passed", "beginDrain v1"],
    },
    {
      name: "the last step over with a bake window: 100% and the bake window",
      config: canaryBake,
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), healthy("v2", "starting", inCanary(0, 10 * SECOND))),
      actions: ["switchTraffic v2 from v1", "beginBake v2 30000 ms back to v1"],
    },
    {
      name: "over its budget during a step: rolled back",
      config: canary,
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), healthy("v2", "starting", { ...inCanary(0, 3 * SECOND), responses: { total: 40, failed: 30 } })),
      actions: ["rollBack v2 to v1: rolled back: 30 of 40 responses failed (75%) within 3.0 s of the canary's start"],
    },
    {
      name: "a canary process that exits is rolled back too (it had live traffic)",
      config: canary,
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), release("v2", "starting", [running("worker"), crashed("web", T - 100)], inCanary(0, 3 * SECOND))),
      actions: ["rollBack v2 to v1: rolled back: web exited with code 1 before it became ready"],
    },
  ])("$name", (row) => void check(row));
});

describe("by hand: promote and abort", () => {
  const intent = (kind: "promote" | "abort") => ({ key: keyOf("v2"), kind });
  it.each<Row>([
    {
      name: "promote during a canary step: straight to 100%, no bake",
      config: canaryBake,
      desired: desired("v2"),
      observed: { ...observed("v1", healthy("v1"), healthy("v2", "starting", inCanary(0, SECOND))), rolloutIntent: intent("promote") },
      actions: ["switchTraffic v2 from v1", "finishRollout v2 passed", "beginDrain v1"],
    },
    {
      name: "promote during the bake window: done, the old release drains",
      config: bake30,
      desired: desired("v2"),
      observed: { ...observed("v2", healthy("v1"), healthy("v2", "active", baking(SECOND))), rolloutIntent: intent("promote") },
      actions: ["finishRollout v2 passed", "beginDrain v1"],
    },
    {
      name: "abort during the bake window: rolled back at once",
      config: bake30,
      desired: desired("v2"),
      observed: { ...observed("v2", healthy("v1"), healthy("v2", "active", baking(2500))), rolloutIntent: intent("abort") },
      actions: ["rollBack v2 to v1: rolled back by hand (rollbridge abort) 2.5 s after the switch"],
    },
    {
      name: "abort during a canary step: rolled back at once",
      config: canary,
      desired: desired("v2"),
      observed: { ...observed("v1", healthy("v1"), healthy("v2", "starting", inCanary(1, SECOND))), rolloutIntent: intent("abort") },
      actions: ["rollBack v2 to v1: rolled back by hand (rollbridge abort) during canary step 2"],
    },
  ])("$name", (row) => void check(row));
});

describe("a newer desired state during a rollout", () => {
  it.each<Row>([
    {
      name: "during a canary step: the canary stops getting requests and is stopped; the old release serves on",
      config: canary,
      desired: desired("v3"),
      observed: observed("v1", healthy("v1"), healthy("v2", "starting", inCanary(0, SECOND))),
      actions: ["createRelease v3", "finishRollout v2 superseded", "stopProcess v2 worker", "stopProcess v2 web"],
    },
    {
      name: "during a bake window: the baking release serves until the newer one switches, its standby drains",
      config: bake30,
      desired: desired("v3"),
      observed: observed("v2", healthy("v1"), healthy("v2", "active", baking(SECOND))),
      actions: ["createRelease v3", "beginDrain v1", "finishRollout v2 superseded"],
    },
  ])("$name", (row) => void check(row));
});

describe("a p99 bound (rollout.maxP99Ms)", () => {
  const p99 = rollout({ bakeMs: 30 * SECOND, maxP99Ms: 500 });
  it.each<Row>([
    {
      name: "more than 1% of the responses slower than the bound once minRequests are in: rolled back, naming the p99",
      config: p99,
      desired: desired("v2"),
      observed: observed("v2", healthy("v1"), healthy("v2", "active", { ...baking(4200), responses: { total: 120, failed: 0, slow: 3, p99Ms: 812 } })),
      actions: ["rollBack v2 to v1: rolled back: p99 812 ms over 500 ms after 120 responses (3 slower) within 4.2 s of the switch"],
    },
    {
      name: "1% of the responses slower (the p99 itself within the bound): not rolled back, the phase line shows the p99",
      config: p99,
      desired: desired("v2"),
      observed: observed("v2", healthy("v1"), healthy("v2", "active", { ...baking(10 * SECOND), responses: { total: 200, failed: 0, slow: 2, p99Ms: 447 } })),
      actions: [],
      requeueAfterMs: 20 * SECOND,
      condition: { type: "Progressing", reason: "Baking", message: "v2: baking, 20 s left, 0.0% errors, p99 447 ms of 500" },
    },
    {
      name: "every response slow but fewer than minRequests: not judged yet",
      config: p99,
      desired: desired("v2"),
      observed: observed("v2", healthy("v1"), healthy("v2", "active", { ...baking(SECOND), responses: { total: 19, failed: 0, slow: 19, p99Ms: 2047 } })),
      actions: [],
      condition: { type: "Progressing", reason: "Baking", message: /19 of 20 responses needed/ },
    },
    {
      name: "the error budget is named first when both are over",
      config: p99,
      desired: desired("v2"),
      observed: observed("v2", healthy("v1"), healthy("v2", "active", { ...baking(4200), responses: { total: 120, failed: 37, slow: 60, p99Ms: 1791 } })),
      actions: ["rollBack v2 to v1: rolled back: 37 of 120 responses failed (31%) within 4.2 s of the switch"],
    },
    {
      name: "without a bound, slow responses are not judged",
      config: bake30,
      desired: desired("v2"),
      observed: observed("v2", healthy("v1"), healthy("v2", "active", { ...baking(10 * SECOND), responses: { total: 120, failed: 0, slow: 120, p99Ms: 9000 } })),
      actions: [],
    },
    {
      name: "a desired file's maxP99Ms bounds one deploy over a config without one",
      config: bake30,
      desired: desired("v2", { rollout: { maxP99Ms: 200 } }),
      observed: observed("v2", healthy("v1"), healthy("v2", "active", { ...baking(4200), responses: { total: 50, failed: 0, slow: 1, p99Ms: 255 } })),
      actions: ["rollBack v2 to v1: rolled back: p99 255 ms over 200 ms after 50 responses (1 slower) within 4.2 s of the switch"],
    },
  ])("$name", (row) => void check(row));

  it("the judge settings of beginBake carry the bound", () => {
    const result = run({ config: p99, desired: desired("v2"), observed: observed("v1", healthy("v1"), healthy("v2", "starting")) });
    const begin = result.actions.find((a) => a.type === "beginBake");
    expect(begin).toMatchObject({ judge: { minRequests: 20, maxErrorRate: 0.05, windowMs: 30_000, maxP99Ms: 500 } });
    const plain = run({ config: bake30, desired: desired("v2"), observed: observed("v1", healthy("v1"), healthy("v2", "starting")) }).actions.find((a) => a.type === "beginBake");
    expect(plain && "judge" in plain ? plain.judge.maxP99Ms : "absent").toBeUndefined();
  });
});

describe("a bake window resumed by a daemon that adopted both releases", () => {
  it.each<Row>([
    {
      name: "the switch was 50 s ago of a 60 s window, counts start empty: 10 s left, the old release stands by",
      config: rollout({ bakeMs: 60 * SECOND }),
      desired: desired("v2"),
      observed: observed("v2", healthy("v1"), healthy("v2", "active", { ...baking(50 * SECOND), responses: { total: 0, failed: 0 } })),
      actions: [],
      requeueAfterMs: 10 * SECOND,
      condition: { type: "Progressing", reason: "Baking", message: "v2: baking, 10 s left, no responses yet" },
    },
    {
      name: "the window ended while no daemon ran: it passes now and only then the old release drains",
      config: rollout({ bakeMs: 60 * SECOND }),
      desired: desired("v2"),
      observed: observed("v2", healthy("v1"), healthy("v2", "active", { ...baking(70 * SECOND), responses: { total: 0, failed: 0 } })),
      actions: ["finishRollout v2 passed", "beginDrain v1"],
    },
  ])("$name", (row) => void check(row));
});
