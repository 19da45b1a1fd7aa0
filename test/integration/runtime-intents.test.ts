// One owner of runtime state (src/reconcile/runtime.ts): what is asked for from outside a pass
// is an intent the next pass applies, and what a process's callbacks see (its exit, its
// readiness) an observation the next pass records, never a change between passes or in the
// middle of one; a config reload waits for the pass in flight. Real executor, proxy and fixture
// app (test/helpers/runtime.ts), and an embedded daemon for the reload.
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { Daemon } from "../../src/main.js";
import { buildStatus } from "../../src/reconcile/status.js";
import type { ObservedProcess } from "../../src/reconcile/types.js";
import { FIXTURE_APP, freePort, isAlive, portRange, until } from "../helpers/daemon.js";
import { get } from "../helpers/load.js";
import { startRuntime, type TestRuntime } from "../helpers/runtime.js";

let rt: TestRuntime | undefined;
let daemon: Daemon | undefined;
let tmp: string | undefined;
afterEach(async () => {
  await rt?.stop();
  rt = undefined;
  await daemon?.shutdown("test done");
  daemon = undefined;
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  tmp = undefined;
});

function web(r: TestRuntime, key: string): ObservedProcess | undefined {
  return r.executor.observe().releases.find((rel) => rel.record.key === key)?.processes[0];
}

/** The slot as `status` shows it. */
function webStatus(r: TestRuntime, key: string) {
  const doc = buildStatus(r.config, r.desiredPath, r.store.current(), r.executor, r.loop.latestPlan(), Date.now());
  return doc.processes.find((p) => p.releaseKey === key && p.instanceId === "web");
}

/** The pid in an event's data. */
function eventPid(e: { data?: unknown }): number | undefined {
  return (e.data as { pid?: number } | undefined)?.pid;
}

/** Runs passes until `check` holds (no loop of its own runs: each pass is the test's). */
async function passUntil<T>(r: TestRuntime, check: () => T, what: string): Promise<Exclude<T, null | undefined | false | 0 | "">> {
  return until(
    async () => {
      await r.loop.runOnce();
      return check();
    },
    30_000,
    what,
  );
}

describe("intents: asked for outside a pass, applied by the next one", () => {
  it("a restart asked for while a pass runs is applied by the next pass, not in the middle of that one", async () => {
    rt = await startRuntime();
    const r = rt;
    // The hook runs inside a pass: after its actions, before the loop finishes the pass.
    let duringPass: (() => void) | null = null;
    const execute = r.executor.execute.bind(r.executor);
    r.executor.execute = async (actions) => {
      const ran = await execute(actions);
      const hook = duringPass;
      duringPass = null;
      hook?.();
      return ran;
    };
    await r.desire(`release: {path: ${await r.release("v1")}, revision: v1}\n`);
    const key = r.store.current().target?.release?.generation as string;
    const first = await passUntil(r, () => r.executor.observe().activeKey === key && web(r, key)?.health === "ready" && web(r, key), "v1 serves");
    const pid = first.pid as number;

    // Each pass that begins with intents queued: its number, and the slot right after it applied them.
    const applied: { pass: number; queued: number; after: ObservedProcess | undefined }[] = [];
    const beginPass = r.executor.beginPass.bind(r.executor);
    r.executor.beginPass = () => {
      const queued = r.executor.runtime.queued.length;
      beginPass();
      if (queued > 0) applied.push({ pass: r.loop.passes, queued, after: web(r, key) });
    };
    const asked: { pass: number; queuedAfter: number; midPass?: ObservedProcess } = { pass: 0, queuedAfter: 0 };
    duringPass = () => {
      r.executor.runtime.request({ type: "restart", targets: [{ key, instanceId: "web" }], reason: "manual", at: Date.now() });
      asked.pass = r.loop.passes;
      asked.queuedAfter = r.executor.runtime.queued.length;
      asked.midPass = web(r, key);
    };
    // (Passes may also come from the loop's own requeue timers: the hook fires in whichever runs first.)
    await until(
      async () => {
        await r.loop.runOnce();
        return asked.pass > 0;
      },
      30_000,
      "a pass ran the hook",
    );
    // Queued, not applied: the slot is untouched for the rest of that pass.
    expect(asked.queuedAfter).toBe(1);
    expect(asked.midPass).toMatchObject({ pid });
    expect(asked.midPass?.pendingRestart).toBeUndefined();
    expect(asked.midPass?.successor).toBeUndefined();

    // The next pass applies it before it observes, then plans with it: a successor starts (new-before-old).
    await until(() => applied.length > 0, 30_000, "a pass applied the intent");
    expect(applied).toEqual([{ pass: asked.pass + 1, queued: 1, after: expect.objectContaining({ pid, pendingRestart: "manual" }) }]);
    expect(r.executor.runtime.queued).toHaveLength(0);
    const replaced = await passUntil(r, () => web(r, key)?.pid !== pid && web(r, key)?.health === "ready" && web(r, key), "web replaced");
    expect(replaced.lastStartReason).toBe("manual");
    expect(replaced.pendingRestart).toBeUndefined();
    expect(isAlive(replaced.pid as number)).toBe(true);
  }, 90_000);

  it("an intent for a slot that is gone when the pass comes is dropped", async () => {
    rt = await startRuntime();
    const r = rt;
    await r.desire(`release: {path: ${await r.release("v1")}, revision: v1}\n`);
    const key = r.store.current().target?.release?.generation as string;
    await passUntil(r, () => r.executor.observe().activeKey === key, "v1 active");
    r.executor.runtime.request({ type: "restart", targets: [{ key, instanceId: "nope" }], reason: "manual", at: Date.now() });
    r.executor.runtime.request({ type: "applyAgain", key: "no-such-release" });
    await r.loop.runOnce();
    expect(r.executor.runtime.queued).toHaveLength(0);
    expect(web(r, key)?.pendingRestart).toBeUndefined();
    expect(r.executor.observe().releases.map((rel) => rel.record.key)).toEqual([key]);
  }, 60_000);
  it("an abandon (apply --wait --timeout) leaves the rollout starting until the next pass, which marks it failed and stops it; one for a release that is not starting is dropped", async () => {
    rt = await startRuntime();
    const r = rt;
    await r.desire(`release: {path: ${await r.release("v1")}, revision: v1}\n`);
    const v1 = r.store.current().target?.release?.generation as string;
    await passUntil(r, () => r.executor.observe().activeKey === v1 && web(r, v1)?.health === "ready", "v1 serves");
    // v2 never answers its health check: it stays starting.
    await r.desire(`release: {path: ${await r.release("v2")}, revision: v2}\nenv: {HEALTH_HANG: "1"}\n`);
    const v2 = r.store.current().target?.release?.generation as string;
    const pending = await passUntil(r, () => web(r, v2)?.health === "pending" && web(r, v2)?.pid !== undefined && web(r, v2), "v2 web started");

    const between = await r.loop.exclusive(() => {
      r.executor.runtime.request({ type: "abandon", key: v2, reason: "not ready within 1500 ms (--timeout)" });
      r.executor.runtime.request({ type: "abandon", key: v1, reason: "v1 is active, not starting" });
      return { state: r.executor.runtime.releases.get(v2)?.state, abandoned: r.executor.runtime.abandoned.size, queued: r.executor.runtime.queued.length };
    });
    // Queued, not applied: nothing changed outside a pass.
    expect(between).toEqual({ state: "starting", abandoned: 0, queued: 2 });

    await r.loop.runOnce();
    const rec = r.executor.runtime.releases.get(v2);
    expect(rec?.state).toBe("failed");
    expect(rec?.failure).toMatchObject({ code: "TIMEOUT", reason: "rollout of v2 abandoned: not ready within 1500 ms (--timeout)" });
    expect(web(r, v2)?.stopRequested).toBe(true);
    // Carried out once, then spent; the active release is untouched.
    expect(r.executor.runtime.abandoned.size).toBe(0);
    expect(r.executor.runtime.releases.get(v1)?.state).toBe("active");
    expect(r.executor.runtime.releases.get(v1)?.failure).toBeUndefined();
    const failed = r.events.recent().filter((e) => e.type === "rollout-failed" && e.releaseKey === v2);
    expect(failed.map((e) => e.message)).toEqual(["rollout of v2 failed: rollout of v2 abandoned: not ready within 1500 ms (--timeout)"]);
    await passUntil(r, () => !isAlive(pending.pid as number), "v2 web stopped");
    expect(JSON.parse((await get(r.proxyPort, "/")).body).release).toBe("v1");
  }, 60_000);
});

describe("observations: what a process's callbacks see is recorded by the next pass", () => {
  it("an exit between passes and a readiness result during one show in the records only once the next pass began; the slot then restarts", async () => {
    rt = await startRuntime();
    const r = rt;
    await r.desire(`release: {path: ${await r.release("v1")}, revision: v1}\n`);
    const key = r.store.current().target?.release?.generation as string;
    const first = await passUntil(r, () => r.executor.observe().activeKey === key && web(r, key)?.health === "ready" && web(r, key), "v1 serves");
    const pid = first.pid as number;

    // Every pass from the kill on: the slot right after the pass began (observations recorded).
    let killed = false;
    const began: (ObservedProcess | undefined)[] = [];
    const beginPass = r.executor.beginPass.bind(r.executor);
    r.executor.beginPass = () => {
      beginPass();
      if (killed) began.push(web(r, key));
    };
    // In the pass that starts the new process: once it is healthy (its callback ran), the slot as the rest of that pass sees it.
    let midPass: { observed: ObservedProcess | undefined; noted: string[]; pid: number } | undefined;
    const execute = r.executor.execute.bind(r.executor);
    r.executor.execute = async (actions) => {
      const ran = await execute(actions);
      const now = web(r, key);
      if (killed && !midPass && now?.pid !== undefined && now.pid !== pid && now.health === "pending") {
        const next = now.pid;
        await until(() => r.events.recent().some((e) => e.type === "process-healthy" && eventPid(e) === next), 20_000, "the new process healthy");
        midPass = { observed: web(r, key), noted: r.executor.runtime.noted.map((o) => o.type), pid: next };
      }
      return ran;
    };

    // Between passes (the loop's exclusive section: no pass can run), the process is killed.
    const between = await r.loop.exclusive(async () => {
      killed = true;
      process.kill(-pid, "SIGKILL");
      await until(() => r.executor.runtime.noted.some((o) => o.type === "exited" && o.process.pid === pid), 15_000, "the exit noted by its callback");
      return { observed: web(r, key), status: webStatus(r, key), crashed: r.events.recent().filter((e) => e.type === "process-crashed" && eventPid(e) === pid) };
    });
    // Announced at once; recorded not yet: the planner's view and status still show it running.
    expect(between.crashed).toHaveLength(1);
    expect(between.crashed[0]?.message).toBe("web (v1) crashed (signal SIGKILL)");
    expect(between.observed).toMatchObject({ pid, phase: "running", health: "ready", restarts: 0 });
    expect(between.observed?.exit).toBeUndefined();
    expect(between.status).toMatchObject({ state: "running", pid });
    expect(began).toEqual([]);

    // The next pass records the exit as it begins, before it observes; then the slot restarts (restartDelayMs) and becomes ready.
    await r.loop.runOnce();
    expect(began[0]).toMatchObject({ pid, phase: "exited", exit: { signal: "SIGKILL", requested: false } });
    expect(r.executor.runtime.noted.filter((o) => o.process.pid === pid)).toEqual([]);
    const restarted = await passUntil(r, () => midPass && web(r, key)?.health === "ready" && web(r, key), "web restarted and ready");
    expect(restarted).toMatchObject({ pid: midPass?.pid, phase: "running", restarts: 1, lastStartReason: "crash" });
    // Healthy in the middle of that pass: still pending for the rest of it, recorded ready by a later pass.
    expect(midPass?.observed).toMatchObject({ pid: midPass?.pid, health: "pending", phase: "starting" });
    expect(midPass?.noted).toContain("ready");
    expect(JSON.parse((await get(r.proxyPort, "/")).body).pid).toBe(midPass?.pid);
  }, 90_000);
});

describe("config reload", () => {
  it("waits for the pass in flight: the config changes only between passes", async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), "rb-reload-"));
    const range = portRange();
    const config = (delay: number) =>
      [
        `application: reload-${path.basename(tmp!)}`,
        `control: {path: ${path.join(tmp!, "control.sock")}}`,
        `desiredPath: ${path.join(tmp!, "desired.yaml")}`,
        `statePath: false`,
        `proxy: {host: 127.0.0.1, port: ${proxyPort}}`,
        `processes:`,
        `  - id: web`,
        `    policy: proxied`,
        `    command: node ${FIXTURE_APP}`,
        `    port: {from: ${range.from}, to: ${range.to}}`,
        `    restartDelayMs: ${delay}`,
        "",
      ].join("\n");
    const proxyPort = await freePort();
    const file = path.join(tmp, "rollbridge.yaml");
    await fs.writeFile(file, config(100));
    daemon = new Daemon(await loadConfig(file, tmp), { explicitConfigPath: file, cwd: tmp, eventSink: null });
    await daemon.start();
    const d = daemon;
    await d.loop.runOnce();

    // Hold the loop's exclusive section as a long pass would.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    const pass = d.loop.exclusive(async () => {
      entered();
      await held;
    });
    await inside;
    await fs.writeFile(file, config(4321));
    const reloading = d.reload("test");
    // The new file is read and checked meanwhile, but not swapped in while the "pass" runs.
    try {
      await new Promise((r) => setTimeout(r, 500));
      expect(d.config.processes[0]?.restartDelayMs).toBe(100);
      expect(d.executor.config.processes[0]?.restartDelayMs).toBe(100);
    } finally {
      release();
    }
    await pass;
    await reloading;
    expect(d.config.processes[0]?.restartDelayMs).toBe(4321);
    expect(d.executor.config.processes[0]?.restartDelayMs).toBe(4321);
  }, 60_000);
});
