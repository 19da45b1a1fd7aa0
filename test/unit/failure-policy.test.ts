import { describe, expect, it } from "vitest";
import { RollbridgeError, type ErrorCode } from "../../src/errors.js";
import { ActionFailures, actionIdentity, backoffDelay, isTerminalCode } from "../../src/reconcile/failure-policy.js";
import type { Action } from "../../src/reconcile/types.js";

const drain = (key: string): Action => ({ type: "beginDrain", key });
const start = (key: string, replicaIndex: number, reason: "deploy" | "crash" = "deploy"): Action => ({ type: "startProcess", key, processId: "web", replicaIndex, replicaCount: 2, reason });

describe("backoffDelay", () => {
  it.each([
    [0, 0],
    [1, 1000],
    [2, 2000],
    [3, 4000],
    [5, 16_000],
    [6, 30_000],
    [7, 30_000],
    [1000, 30_000],
  ])("after %i failures waits %i ms", (attempts, ms) => {
    expect(backoffDelay(attempts)).toBe(ms);
  });

  it("follows other settings", () => {
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, { initialMs: 100, maxMs: 500 }))).toEqual([100, 200, 400, 500]);
  });
});

describe("isTerminalCode", () => {
  it.each<[ErrorCode | undefined, boolean]>([
    ["TEMPLATE_UNRESOLVED", true],
    ["TEMPLATE_UNSAFE", true],
    ["UNSAFE_PATH", true],
    ["CONFIG_INVALID", true],
    ["PORT_RANGE_EXHAUSTED", false],
    ["SPAWN_FAILED", false],
    ["TIMEOUT", false],
    [undefined, false],
  ])("%s terminal: %s", (code, terminal) => {
    expect(isTerminalCode(code)).toBe(terminal);
  });
});

describe("actionIdentity", () => {
  it("names the slot, not the reason", () => {
    expect(actionIdentity(start("g1", 0, "deploy"))).toBe(actionIdentity(start("g1", 0, "crash")));
    expect(actionIdentity(start("g1", 0))).not.toBe(actionIdentity(start("g1", 1)));
    expect(actionIdentity(drain("g1"))).not.toBe(actionIdentity(drain("g2")));
    const stop = (kind: "retire" | "restart"): Action => ({ type: "stopProcess", key: "g1", instanceId: "web", kind, reason: "x" });
    expect(actionIdentity(stop("retire"))).not.toBe(actionIdentity(stop("restart")));
  });
});

describe("ActionFailures", () => {
  it.each([
    // [failures so far, ms since the last one, may it run?]
    [1, 999, false],
    [1, 1000, true],
    [2, 1999, false],
    [2, 2000, true],
    [4, 7999, false],
    [4, 8000, true],
    [10, 29_999, false],
    [10, 30_000, true],
  ])("after %i failures, %i ms later: runs %s", (failures, later, runs) => {
    const f = new ActionFailures();
    let t = 0;
    for (let i = 0; i < failures; i++) f.failed(drain("g1"), new Error("boom"), (t += 1));
    expect(f.mayRun(drain("g1"), t + later)).toBe(runs);
    expect(f.mayRun(drain("g2"), t)).toBe(true);
  });

  it("never runs a terminal failure again, until cleared", () => {
    const f = new ActionFailures();
    const entry = f.failed(drain("g1"), new RollbridgeError("TEMPLATE_UNRESOLVED", "{{nope}} is not a template variable"), 0);
    expect(entry).toMatchObject({ terminal: true, code: "TEMPLATE_UNRESOLVED", nextAttemptAt: null, attempts: 1 });
    expect(f.mayRun(drain("g1"), 10 * 60_000)).toBe(false);
    expect(f.nextAttemptAt()).toBeUndefined();
    expect(f.status(0)).toEqual([expect.objectContaining({ action: "beginDrain", releaseKey: "g1", terminal: true, nextAttemptInMs: null })]);
    f.clear();
    expect(f.mayRun(drain("g1"), 0)).toBe(true);
  });

  it("a success, or the planner no longer asking, forgets the failure", () => {
    const f = new ActionFailures();
    f.failed(drain("g1"), new Error("a"), 0);
    f.failed(drain("g2"), new Error("b"), 0);
    f.failed(drain("g2"), new Error("b"), 1000);
    expect(f.nextAttemptAt()).toBe(1000);
    f.succeeded(drain("g1"));
    expect(f.status(1500)).toEqual([expect.objectContaining({ action: "beginDrain", releaseKey: "g2", attempts: 2, error: "b", code: null, nextAttemptInMs: 1500 })]);
    f.retain([drain("g1")]);
    expect(f.status(0)).toEqual([]);
    // Counting starts afresh: the first failure after that waits 1 s again.
    expect(f.failed(drain("g2"), new Error("b"), 5000).nextAttemptAt).toBe(6000);
  });
});
