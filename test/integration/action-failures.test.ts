// The loop's failure policy on a real runtime (real proxy, fixture app, desired file): an action
// that keeps throwing backs off per action (1 s, 2 s, 4 s, …) instead of being retried every
// pass, a terminal error is not retried until the desired state changes, and both show in the
// status document. The failure is injected into the one proxy call switchTraffic makes
// (setActive); everything else is the real thing.
import { afterEach, describe, expect, it } from "vitest";
import { RollbridgeError } from "../../src/errors.js";
import type { ProxyServer } from "../../src/proxy/types.js";
import { buildStatus } from "../../src/reconcile/status.js";
import { get } from "../helpers/load.js";
import { sleep, until } from "../helpers/daemon.js";
import { startRuntime, type TestRuntime } from "../helpers/runtime.js";

let rt: TestRuntime | undefined;
afterEach(async () => {
  await rt?.stop();
  rt = undefined;
});

/** A proxy whose setActive throws `failure()` (when it returns an error) for a release. */
function failingSetActive(failure: () => Error | null, calls: { n: number }): (proxy: ProxyServer) => ProxyServer {
  return (proxy) =>
    new Proxy(proxy, {
      get(target, prop, receiver) {
        if (prop === "setActive")
          return (key: string | null) => {
            const error = key === null ? null : failure();
            if (error) {
              calls.n++;
              throw error;
            }
            target.setActive(key);
          };
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
}

function failedEvents(r: TestRuntime): { attempts: number; nextAttemptInMs: number | null; terminal: boolean; code: string | null; action: string }[] {
  return r.events
    .recent()
    .filter((e) => e.type === "action-failed")
    .map((e) => (e as unknown as { data: { attempts: number; nextAttemptInMs: number | null; terminal: boolean; code: string | null; action: string } }).data);
}

function status(r: TestRuntime) {
  return buildStatus(r.config, r.desiredPath, r.store.current(), r.executor, r.loop.latestPlan(), Date.now(), [], {}, r.loop.latestRollout(), false, r.loop.failingActions());
}

describe("failure policy", () => {
  it("backs a failing action off exponentially, shows it in status, and switches once the action succeeds", async () => {
    let failing = true;
    const calls = { n: 0 };
    rt = await startRuntime({ startLoop: true, wrapProxy: failingSetActive(() => (failing ? new Error("route table locked") : null), calls) });
    const v1 = await rt.release("v1");
    await rt.desire(`release: {path: ${v1}, revision: r1}\n`);

    // Three failures: 1 s, then 2 s, then 4 s until the next attempt.
    await until(() => failedEvents(rt!).length >= 3, 30_000, "three switchTraffic failures");
    const passesAtThird = rt.loop.passes;
    const failures = failedEvents(rt).slice(0, 3);
    expect(failures).toEqual([
      { action: "switchTraffic", code: null, attempts: 1, terminal: false, nextAttemptInMs: 1000 },
      { action: "switchTraffic", code: null, attempts: 2, terminal: false, nextAttemptInMs: 2000 },
      { action: "switchTraffic", code: null, attempts: 3, terminal: false, nextAttemptInMs: 4000 },
    ]);
    // Every failure is one call: the action is not run in the passes between its attempts.
    expect(calls.n).toBe(failedEvents(rt).length);

    const s = status(rt);
    expect(s.failingActions).toEqual([expect.objectContaining({ action: "switchTraffic", error: "route table locked", attempts: 3, terminal: false, code: null })]);
    expect(s.failingActions[0]?.nextAttemptInMs).toBeLessThanOrEqual(4000);
    expect(s.conditions).toContainEqual(expect.objectContaining({ type: "Degraded", status: true, reason: "ActionFailing" }));
    expect(s.converged).toBe(false);
    expect(s.activeRelease).toBeNull();

    // While it waits the loop does not spin: it wakes for the retry (and the 1 s resync), not every few ms.
    await sleep(1500);
    expect(rt.loop.passes - passesAtThird).toBeLessThan(50);

    failing = false;
    await until(() => rt!.executor.observe().activeKey !== null && rt!.loop.failingActions().length === 0, 30_000, "traffic switched after the backoff");
    const res = await get(rt.proxyPort, "/");
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).release).toBe("v1");
    await until(() => status(rt!).converged, 15_000, "converged");
    expect(status(rt).failingActions).toEqual([]);
    expect(status(rt).conditions.some((c) => c.reason === "ActionFailing")).toBe(false);
  }, 90_000);

  it("does not retry a terminal error until the desired state changes", async () => {
    let failing = true;
    const calls = { n: 0 };
    rt = await startRuntime({ startLoop: true, wrapProxy: failingSetActive(() => (failing ? new RollbridgeError("UNSAFE_PATH", "refusing the route table file: it is a symlink") : null), calls) });
    const v1 = await rt.release("v1");
    await rt.desire(`release: {path: ${v1}, revision: r1}\n`);
    await until(() => failedEvents(rt!).length >= 1, 30_000, "a switchTraffic failure");
    expect(failedEvents(rt)[0]).toEqual({ action: "switchTraffic", code: "UNSAFE_PATH", attempts: 1, terminal: true, nextAttemptInMs: null });

    // Passes go on (resync every second, health checks), the terminal action is not run again.
    const passes = rt.loop.passes;
    await until(() => rt!.loop.passes >= passes + 3, 20_000, "three more passes");
    expect(calls.n).toBe(1);
    const s = status(rt);
    expect(s.failingActions).toEqual([expect.objectContaining({ action: "switchTraffic", code: "UNSAFE_PATH", terminal: true, nextAttemptInMs: null, attempts: 1 })]);
    expect(s.conditions).toContainEqual(expect.objectContaining({ type: "Degraded", reason: "ActionFailedTerminally" }));

    // A new desired state is a fresh start: the action runs again (and now succeeds).
    failing = false;
    const v2 = await rt.release("v2");
    await rt.desire(`release: {path: ${v2}, revision: r2}\n`);
    await until(() => rt!.executor.observe().activeKey !== null, 30_000, "traffic switched to v2");
    expect(JSON.parse((await get(rt.proxyPort, "/")).body).release).toBe("v2");
    expect(rt.loop.failingActions()).toEqual([]);
  }, 90_000);
});
