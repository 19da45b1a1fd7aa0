import { describe, expect, it } from "vitest";
import { decideWait, type WaitInput } from "../../src/reconcile/wait-outcome.js";
import type { DesiredTarget, Plan, ReleaseRecord, ReleaseState } from "../../src/reconcile/types.js";

const spec = (id: string) => ({ id, requestedId: null, requestedRevision: null, path: `/srv/${id}`, requestedPath: `/srv/${id}`, revision: null, env: {}, generation: `g-${id}` });
const record = (id: string, state: ReleaseState, extra: Partial<ReleaseRecord> = {}): ReleaseRecord => ({ key: `g-${id}`, spec: spec(id), state, createdAt: 0, failedAttempts: 0, ...extra });
const target = (id: string | null): DesiredTarget => ({ stopped: id === null, release: id === null ? null : spec(id), replicas: {}, documentHash: "h" });
const plan = (serving: string | null, converged = false): Plan => ({ actions: [], conditions: [], converged, serving });

function input(over: Partial<WaitInput>): WaitInput {
  return {
    generation: "g-v2",
    stopped: false,
    drained: false,
    sinceSeq: 10,
    afterPass: true,
    target: target("v2"),
    desiredError: null,
    plan: plan(null),
    activeKey: "g-v1",
    records: new Map([record("v1", "active"), record("v2", "starting")].map((r) => [r.key, r])),
    adoption: { seq: 11, message: "desired state: release v2" },
    settled: () => true,
    draining: () => null,
    ...over,
  };
}
const records = (...rs: ReleaseRecord[]) => new Map(rs.map((r) => [r.key, r]));

describe("when a wait for a rollout ends", () => {
  it.each<{ name: string; over: Partial<WaitInput>; outcome: string | null }>([
    { name: "goes on while the release starts", over: {}, outcome: null },
    { name: "is converged once the release serves all new traffic", over: { records: records(record("v1", "draining"), record("v2", "active")), plan: plan("g-v2"), activeKey: "g-v2" }, outcome: "converged" },
    { name: "waits for a pass after the wait began before reading the plan", over: { afterPass: false, records: records(record("v2", "active")), plan: plan("g-v2") }, outcome: null },
    { name: "with drained, waits until the plan is converged", over: { drained: true, records: records(record("v1", "draining"), record("v2", "active")), plan: plan("g-v2") }, outcome: null },
    { name: "is superseded once a later adoption names another release", over: { target: target("v3"), adoption: { seq: 12, message: "desired state: release v3" } }, outcome: "superseded" },
    { name: "is not superseded by an adoption older than the write", over: { target: target("v1"), adoption: { seq: 9, message: "desired state: release v1" } }, outcome: null },
    { name: "fails on a failure recorded after the write, once its processes stopped", over: { records: records(record("v2", "failed", { failure: { reason: "boom", code: "HEALTH_FAILED", at: 5, seq: 12 } })) }, outcome: "failed" },
    { name: "waits for the failed rollout's processes to stop", over: { settled: () => false, records: records(record("v2", "failed", { failure: { reason: "boom", code: "HEALTH_FAILED", at: 5, seq: 12 } })) }, outcome: null },
    { name: "ignores a failure from before the write (a fresh attempt is starting)", over: { records: records(record("v2", "failed", { failure: { reason: "old", code: "HEALTH_FAILED", at: 5, seq: 3 } })) }, outcome: null },
    {
      name: "is rolled-back at once when the release was rolled back after the write, though it still drains and the desired file went back",
      over: {
        target: target("v1"),
        adoption: { seq: 13, message: "desired state: release v1" },
        records: records(record("v1", "active"), record("v2", "draining", { failure: { reason: "rolled back: 30 of 40 responses failed (75%) within 1.0 s of the switch", code: "ROLLED_BACK", at: 5, seq: 12, noRetry: true } })),
      },
      outcome: "rolled-back",
    },
    { name: "ignores a rollback from before the write", over: { records: records(record("v2", "failed", { failure: { reason: "rolled back", code: "ROLLED_BACK", at: 5, seq: 3, noRetry: true } })) }, outcome: null },
    { name: "a stopped write is converged when nothing serves", over: { generation: null, stopped: true, target: target(null), plan: plan(null, true), activeKey: null }, outcome: "converged" },
  ])("$name", ({ over, outcome }) => {
    expect(decideWait(input(over))?.outcome ?? null).toBe(outcome);
  });

  it("names the superseding adoption and the release still draining", () => {
    expect(decideWait(input({ target: target("v3"), adoption: { seq: 12, message: "desired state: release v3" } }))).toEqual({
      outcome: "superseded",
      message: "the desired state changed while waiting: desired state: release v3",
      releaseId: "v2",
    });
    const draining = { key: "g-v1", releaseId: "v1", inflight: 2, websockets: 0, deadline: null };
    const done = decideWait(input({ records: records(record("v1", "draining"), record("v2", "active")), plan: plan("g-v2"), draining: () => draining }));
    expect(done).toEqual({ outcome: "converged", message: "v2 serves all new traffic", releaseId: "v2", draining });
  });
});
