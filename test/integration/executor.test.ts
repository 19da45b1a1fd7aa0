// Executor tests: between the planner's tables and the full binary. Each action is applied
// twice to a real executor (real proxy on 127.0.0.1, the fixture app as a real process group),
// and the result is read through the observed snapshot (executor.observe()), never through the
// executor's calls: an action is idempotent when the second application changes nothing.
import { afterEach, describe, expect, it } from "vitest";
import { get } from "../helpers/load.js";
import { isAlive, until } from "../helpers/daemon.js";
import { startRuntime, type TestRuntime } from "../helpers/runtime.js";
import type { Action, ObservedProcess, ReleaseSpec } from "../../src/reconcile/types.js";

let rt: TestRuntime | undefined;
afterEach(async () => {
  await rt?.stop();
  rt = undefined;
});

async function twice(r: TestRuntime, action: Action): Promise<void> {
  await r.executor.execute([action]);
  await r.executor.execute([action]);
}

function web(r: TestRuntime, key: string): ObservedProcess[] {
  return r.executor.observe().releases.find((rel) => rel.record.key === key)?.processes ?? [];
}

/** The slots once a pass would begin: what the processes' callbacks saw (exits, readiness) is recorded then, not before. */
function atNextPass(r: TestRuntime, key: string): ObservedProcess[] {
  r.executor.beginPass();
  return web(r, key);
}

/** A desired release's spec, as the desired store resolves it. */
async function specOf(r: TestRuntime, name: string): Promise<ReleaseSpec> {
  const dir = await r.release(name);
  const { promises: fs } = await import("node:fs");
  await fs.writeFile(r.desiredPath, `release: {path: ${dir}, revision: ${name}}\n`);
  const snapshot = await r.store.refresh();
  const spec = snapshot.target?.release;
  if (!spec) throw new Error(`no release in the desired file: ${snapshot.error?.message}`);
  return spec;
}

/** A running, healthy, routed `web` of release v1. */
async function serving(r: TestRuntime): Promise<{ key: string; pid: number }> {
  const spec = await specOf(r, "v1");
  const key = spec.generation;
  await twice(r, { type: "createRelease", spec });
  await twice(r, { type: "startProcess", key, processId: "web", replicaIndex: 0, replicaCount: 1, reason: "deploy" });
  await until(() => atNextPass(r, key)[0]?.health === "ready", 20_000, "web healthy");
  await twice(r, { type: "switchTraffic", key, previousKey: null });
  return { key, pid: web(r, key)[0]?.pid as number };
}

describe("executor actions, each applied twice", () => {
  it("createRelease, startProcess and switchTraffic: one release, one process, traffic to it", async () => {
    rt = await startRuntime();
    const { key, pid } = await serving(rt);
    const observed = rt.executor.observe();
    expect(observed.releases.map((r) => [r.record.key, r.record.state])).toEqual([[key, "active"]]);
    expect(web(rt, key)).toEqual([expect.objectContaining({ instanceId: "web", phase: "running", pid, stopRequested: false, restarts: 0 })]);
    expect(observed.activeKey).toBe(key);
    expect(isAlive(pid)).toBe(true);
    const res = await get(rt.proxyPort, "/");
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ release: "v1", pid });
    // A second start of a running slot is a no-op: still the same process.
    await twice(rt, { type: "startProcess", key, processId: "web", replicaIndex: 0, replicaCount: 1, reason: "deploy" });
    expect(web(rt, key).map((p) => p.pid)).toEqual([pid]);
  }, 60_000);

  it("a restart stop keeps the slot: the process exits, the slot stays wanted, the next start reuses it", async () => {
    rt = await startRuntime();
    const { key, pid } = await serving(rt);
    await twice(rt, { type: "stopProcess", key, instanceId: "web", kind: "restart", reason: "manual restart" });
    // At once, before the process is gone: the slot is not retired.
    expect(web(rt, key)).toEqual([expect.objectContaining({ instanceId: "web", stopRequested: false })]);
    await until(() => atNextPass(rt!, key)[0]?.phase === "exited", 15_000, "the old process exited");
    expect(web(rt, key)).toEqual([expect.objectContaining({ instanceId: "web", stopRequested: false })]);
    await twice(rt, { type: "startProcess", key, processId: "web", replicaIndex: 0, replicaCount: 1, reason: "manual" });
    const after = web(rt, key);
    expect(after).toHaveLength(1);
    expect(after[0]).toMatchObject({ instanceId: "web", stopRequested: false, lastStartReason: "manual" });
    expect(after[0]?.pid).not.toBe(pid);
    await until(() => atNextPass(rt!, key)[0]?.health === "ready", 20_000, "restarted web healthy");
    expect(JSON.parse((await get(rt.proxyPort, "/")).body).pid).toBe(web(rt, key)[0]?.pid);
  }, 60_000);

  it("a retire stop ends the slot: stop requested at once, the process exits and is not started again by itself", async () => {
    rt = await startRuntime();
    const { key, pid } = await serving(rt);
    await twice(rt, { type: "stopProcess", key, instanceId: "web", kind: "retire", reason: "scaled down" });
    expect(web(rt, key)).toEqual([expect.objectContaining({ instanceId: "web", stopRequested: true })]);
    await until(() => atNextPass(rt!, key)[0]?.phase === "exited" && !isAlive(pid), 15_000, "the process exited");
    expect(web(rt, key)).toEqual([expect.objectContaining({ stopRequested: true, phase: "exited" })]);
    await twice(rt, { type: "forgetProcess", key, instanceId: "web" });
    expect(web(rt, key)).toEqual([]);
  }, 60_000);

  it("beginDrain and markStopped: the release drains once (one deadline) and ends stopped", async () => {
    rt = await startRuntime();
    const { key } = await serving(rt);
    await twice(rt, { type: "switchTraffic", key: null, previousKey: key });
    expect(rt.executor.observe().activeKey).toBeNull();
    await rt.executor.execute([{ type: "beginDrain", key }]);
    const deadline = rt.executor.observe().releases[0]?.record.drainDeadline;
    expect(deadline).toBeGreaterThan(0);
    await rt.executor.execute([{ type: "beginDrain", key }]);
    expect(rt.executor.observe().releases[0]?.record).toMatchObject({ state: "draining", drainDeadline: deadline });
    await twice(rt, { type: "stopProcess", key, instanceId: "web", kind: "retire", reason: "drained" });
    await until(() => atNextPass(rt!, key)[0]?.phase === "exited", 15_000, "web exited");
    await twice(rt, { type: "markStopped", key });
    expect(rt.executor.observe().releases[0]?.record.state).toBe("stopped");
    expect(rt.events.recent().filter((e) => e.type === "release-stopped")).toHaveLength(1);
    expect(rt.events.recent().filter((e) => e.type === "drain-started")).toHaveLength(1);
  }, 60_000);
});
