// Faults during deploys, through a real daemon under keep-alive load: an old release that
// ignores SIGTERM, a health endpoint that hangs, a port range with no free port. Each ends with
// a clear outcome, the right release serving, and no failed request.
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { isAlive, sleep, startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { get, startLoad } from "../helpers/load.js";
import { expectDaemonServes, quickStatus, stdoutEvents } from "../helpers/raw.js";

let daemon: TestDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

const GRACE_MS = 500;
const DRAIN_MS = 300;

describe("faults during deploys", () => {
  it("SIGKILLs an old release that ignores SIGTERM after its grace period, and refuses a release whose health check hangs", async () => {
    daemon = await startDaemon({
      processes: `  - id: web
    policy: proxied
    command: node {{APP}}
    port: {from: {{RANGE_FROM}}, to: {{RANGE_TO}}}
    health: {path: /ping, intervalMs: 50, timeoutMs: 1000}
    gracefulStopMs: ${GRACE_MS}`,
      proxy: { drainTimeoutMs: DRAIN_MS },
    });
    const d = daemon;
    const apply = async (release: string, env: Record<string, string> = {}) => {
      const p = await d.release(release);
      return d.cli(["apply", "-f", "-", "--wait"], { input: `release: {path: ${p}}\nenv: ${JSON.stringify(env)}\n` });
    };
    expect((await apply("v1", { IGNORE_SIGTERM: "1" })).code).toBe(0);
    const stubborn = (await quickStatus(d.socket)).processes[0].pid as number;
    const load = startLoad(d.proxyPort, { connections: 8 });
    await sleep(200);

    // v1 ignores SIGTERM: it must outlive the grace period, then be SIGKILLed.
    let goneAt = 0;
    const watcher = (async () => {
      while (isAlive(stubborn)) await sleep(10);
      goneAt = Date.now();
    })();
    const second = await apply("v2");
    expect(second.code, second.stderr).toBe(0);
    await watcher;
    const switched = stdoutEvents(d.stdout).find((e) => e.type === "traffic-switched" && e.releaseId === "v2");
    expect(switched).toBeDefined();
    const afterSwitch = goneAt - Date.parse(switched!.at);
    expect(afterSwitch).toBeGreaterThanOrEqual(GRACE_MS);
    expect(afterSwitch).toBeLessThan(DRAIN_MS + GRACE_MS + 1500);
    // apply --wait returned once v2 served; v1's exit is reported in the background.
    const v1Exit = () => stdoutEvents(d.stdout).find((e) => e.releaseId === "v1" && /exited|killed/.test(e.message) && JSON.stringify(e).includes("SIGKILL"));
    await until(v1Exit, 5000, `v1's SIGKILL exit event (v1 events: ${JSON.stringify(stdoutEvents(d.stdout).filter((e) => e.releaseId === "v1"))})`);

    // v3's /ping never answers: the rollout fails after health.timeoutMs, v2 keeps serving.
    const started = Date.now();
    const third = await apply("v3", { HEALTH_HANG: "1" });
    expect(third.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(8000);
    expect(third.stderr).toMatch(/health check GET .*\/ping did not return 2xx within 1000ms/);
    expect(third.stderr).toMatch(/timed out/);
    const status = await quickStatus(d.socket);
    expect(status.activeRelease.id).toBe("v2");
    expect(status.releases.find((r: { id: string }) => r.id === "v3").state).toBe("failed");
    expect(status.processes.filter((p: { pid: number | null }) => p.pid !== null).map((p: { releaseId: string }) => p.releaseId)).toEqual(["v2"]);
    expect(JSON.parse((await get(d.proxyPort)).body).release).toBe("v2");

    const stats = await load.stop();
    expect(stats.errors).toEqual([]);
    expect(stats.failed + stats.non2xx).toBe(0);
    expect(stats.byRelease["v1"]).toBeGreaterThan(0);
    expect(stats.byRelease["v2"]).toBeGreaterThan(0);
    await expectDaemonServes(d, "v2");
  });

  it("fails a rollout with PORT_RANGE_EXHAUSTED when its one-port range is taken, and keeps the running release", async () => {
    const holder = net.createServer();
    const port = await new Promise<number>((resolve) => holder.listen(0, "127.0.0.1", () => resolve((holder.address() as net.AddressInfo).port)));
    daemon = await startDaemon({
      processes: `  - id: web
    policy: proxied
    command: node {{APP}}
    port: {from: ${port}, to: ${port}}
    health: {path: /ping, intervalMs: 50}
    gracefulStopMs: 1000`,
    });
    const d = daemon;
    const v1 = await d.release("v1");
    const blocked = await d.cli(["apply", "--release-path", v1, "--wait", "--timeout", "10000"]);
    expect(blocked.code).toBe(1);
    expect(blocked.stderr).toMatch(/PORT_RANGE_EXHAUSTED|no free port/);
    expect(blocked.stderr).toContain(`${port}-${port}`);
    expect(d.child.exitCode).toBeNull();

    await new Promise((resolve) => holder.close(resolve));
    const freed = await d.cli(["apply", "--release-path", v1, "--wait"]);
    expect(freed.code, freed.stderr).toBe(0);

    // Now v1 itself holds the only port: v2 cannot start, v1 keeps serving under load.
    const load = startLoad(d.proxyPort, { connections: 8 });
    const v2 = await d.release("v2");
    const second = await d.cli(["apply", "--release-path", v2, "--wait", "--timeout", "10000"]);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/no free port/);
    const stats = await load.stop();
    expect(stats.failed + stats.non2xx).toBe(0);
    expect(Object.keys(stats.byRelease)).toEqual(["v1"]);
    expect((await quickStatus(d.socket)).activeRelease.id).toBe("v1");
    await expectDaemonServes(d, "v1");
  });
});
