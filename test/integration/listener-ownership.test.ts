// Traffic only to processes Rollbridge started (issue 12.6), tried as another local user would:
// bind the port a starting instance was given (it never listens there itself) and answer its
// health check, or bind a crashed instance's port while it waits to restart. The stranger must
// never get a proxied request; the rollout fails naming its pid and uid, and a crash restart
// moves to another port. Runs as root only (it creates the second user).
import { promises as fs } from "node:fs";
import http from "node:http";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { daemonEvents, sleep, startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { createLocalUser, localUserProblem, startStrangerServer, type LocalUser, type StrangerServer } from "../helpers/local-user.js";

const SECRET = "Bearer rb-listener-secret";

/** A request through the proxy carrying credentials the stranger must never see. */
function proxied(port: number, urlPath = "/hello"): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: urlPath, agent: false, timeout: 20_000, headers: { Authorization: SECRET, Cookie: "session=rb-listener-cookie" } }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

/** Sends proxied requests back to back until stopped; returns every answer. */
function keepRequesting(port: number): { stop: () => Promise<{ status: number; body: string }[]> } {
  const answers: { status: number; body: string }[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      answers.push(await proxied(port).catch((error: Error) => ({ status: 0, body: error.message })));
      await sleep(30);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return answers;
    },
  };
}

/** Requests that reached the stranger and were not Rollbridge's own health probes. */
function proxiedRequestsCaught(stranger: StrangerServer) {
  return stranger.requests.filter((r) => r.headers["user-agent"] !== "rollbridge-health" || r.headers["authorization"] !== undefined || r.headers["cookie"] !== undefined);
}

const problem = localUserProblem();
let user: LocalUser | null = null;
let daemon: TestDaemon | null = null;
const strangers: StrangerServer[] = [];

beforeAll(() => {
  if (problem === null) user = createLocalUser("rbsec-ls");
});
afterEach(async () => {
  for (const s of strangers.splice(0)) s.stop();
  await daemon?.stop();
  daemon = null;
});
afterAll(() => user?.remove());

function webProcess(extra: string[] = []): string {
  return [
    "  - id: web",
    "    policy: proxied",
    "    command: node {{APP}}",
    "    port: {from: {{RANGE_FROM}}, to: {{RANGE_TO}}}",
    "    health: {path: /ping, intervalMs: 50, timeoutMs: 8000}",
    "    gracefulStopMs: 3000",
    ...extra.map((line) => `    ${line}`),
  ].join("\n");
}

async function deploy(d: TestDaemon, name: string, options: { deaf?: string[] } = {}) {
  const release = await d.release(name);
  for (const file of options.deaf ?? []) await fs.writeFile(path.join(release, file), "");
  return d.cli(["apply", "--release-path", release, "--wait"], { timeoutMs: 60_000 });
}

/** The port of the first `process-started` event matching `match`, once the daemon printed it. */
async function startedPort(d: TestDaemon, match: (e: { releaseId?: string; data?: Record<string, unknown> }) => boolean): Promise<number> {
  return until(() => daemonEvents(d, "process-started").find(match)?.data?.["port"] as number | undefined, 15_000, "the starting instance's port");
}

describe("traffic only to processes Rollbridge started", () => {
  if (problem !== null) {
    console.warn(`listener ownership tests skipped: ${problem}`);
    it.skip(`a stranger on a starting instance's port (skipped: ${problem})`, () => undefined);
    return;
  }

  it("fails a rollout whose port another user answers on, naming its pid and uid; the previous release keeps serving", async () => {
    daemon = await startDaemon({ processes: webProcess(["env: {NO_LISTEN_IF_EXISTS: '{{releasePath}}/deaf'}"]) });
    const d = daemon;
    expect((await deploy(d, "v1")).code).toBe(0);
    const load = keepRequesting(d.proxyPort);

    const rollout = deploy(d, "v2", { deaf: ["deaf"] });
    const port = await startedPort(d, (e) => e.releaseId === "v2");
    const stranger = await startStrangerServer(user!, port);
    strangers.push(stranger);
    const result = await rollout;
    const answers = await load.stop();

    // Without the check this rollout would have gone through: the stranger passed the health check.
    expect(stranger.requests.some((r) => r.path === "/ping" && r.headers["user-agent"] === "rollbridge-health")).toBe(true);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stderr).toContain(`is held by pid ${stranger.pid} (uid ${user!.uid})`);
    expect(result.stderr).not.toMatch(/code unknown/);

    const status = await d.status();
    expect(status.activeRelease.id).toBe("v1");
    const failed = status.releases.find((r: { id: string }) => r.id === "v2");
    expect(failed.state).toBe("failed");
    expect(failed.failure).toMatchObject({ code: "LISTENER_NOT_OWNED", instanceId: "web" });
    const event = daemonEvents(d, "listener-not-owned").find((e) => e.releaseId === "v2");
    expect(event?.data?.["holders"]).toEqual([{ endpoint: `127.0.0.1:${port}`, uid: user!.uid, pid: stranger.pid }]);

    // Every request was served by v1, before, during and after; none reached the stranger.
    expect(answers.length).toBeGreaterThan(5);
    expect(answers.filter((a) => a.status !== 200 || JSON.parse(a.body).release !== "v1")).toEqual([]);
    expect(JSON.parse((await proxied(d.proxyPort)).body).release).toBe("v1");
    expect(proxiedRequestsCaught(stranger)).toEqual([]);
  }, 90_000);

  it("moves a crash restart off a port another user took while it was down", async () => {
    // A restart delay long enough for the stranger to bind the port on a loaded machine.
    daemon = await startDaemon({ processes: webProcess(["restartDelayMs: 5000"]), proxy: { holdTimeoutMs: 15_000 } });
    const d = daemon;
    expect((await deploy(d, "v1")).code).toBe(0);
    const before = (await d.status()).processes.find((p: { id: string }) => p.id === "web") as { pid: number; port: number };

    process.kill(before.pid, "SIGKILL");
    await until(() => daemonEvents(d, "process-crashed")[0], 10_000, "web crashed");
    const stranger = await startStrangerServer(user!, before.port);
    strangers.push(stranger);
    // Requests while web is down wait for a ready backend (proxy.holdTimeoutMs), then go to the restart.
    const load = keepRequesting(d.proxyPort);

    const after = await until(
      async () => (await d.status()).processes.find((p: { id: string; state: string; pid: number; health: string }) => p.id === "web" && p.state === "running" && p.health === "ready" && p.pid !== before.pid),
      30_000,
      "web restarted",
    );
    const answers = await load.stop();
    expect(after.port).not.toBe(before.port);
    const moved = daemonEvents(d, "port-moved")[0];
    expect(moved?.message).toContain(`port ${before.port} is held by pid ${stranger.pid} (uid ${user!.uid})`);
    expect(moved?.data).toMatchObject({ from: before.port, to: after.port });

    const served = JSON.parse((await proxied(d.proxyPort)).body) as { pid: number; port: number };
    expect(served).toMatchObject({ pid: after.pid, port: after.port });
    expect(answers.filter((a) => a.status === 200 && JSON.parse(a.body).pid !== after.pid)).toEqual([]);
    // The stranger got nothing at all: not a proxied request, not even a health probe.
    expect(stranger.requests).toEqual([]);
  }, 90_000);

  it("fails a rollout when a stranger holds one replica's port, and keeps the running release", async () => {
    daemon = await startDaemon({ processes: webProcess(["replicas: 2", "env: {NO_LISTEN_IF_EXISTS: '{{releasePath}}/deaf-{{replicaIndex}}'}"]) });
    const d = daemon;
    expect((await deploy(d, "v1")).code).toBe(0);

    const rollout = deploy(d, "v2", { deaf: ["deaf-1"] });
    const port = await startedPort(d, (e) => e.releaseId === "v2" && e.data?.["instanceId"] === "web#1");
    const stranger = await startStrangerServer(user!, port);
    strangers.push(stranger);
    const result = await rollout;

    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stderr).toContain(`web#1's port 127.0.0.1:${port} is held by pid ${stranger.pid} (uid ${user!.uid})`);
    expect((await d.status()).activeRelease.id).toBe("v1");
    for (let i = 0; i < 6; i++) expect(JSON.parse((await proxied(d.proxyPort)).body).release).toBe("v1");
    expect(proxiedRequestsCaught(stranger)).toEqual([]);
  }, 90_000);

  it("abandons a zero-downtime replacement whose port a stranger answers on; the running process keeps serving", async () => {
    daemon = await startDaemon({ processes: webProcess(["env: {NO_LISTEN_IF_EXISTS: '{{releasePath}}/deaf'}"]) });
    const d = daemon;
    expect((await deploy(d, "v1")).code).toBe(0);
    const before = (await d.status()).processes.find((p: { id: string }) => p.id === "web") as { pid: number; port: number };
    await fs.writeFile(path.join(d.dir, "releases", "v1", "deaf"), "");

    const restart = await d.cli(["restart", "--process", "web", "--no-wait"]);
    expect(restart.code, restart.stderr).toBe(0);
    const port = await startedPort(d, (e) => e.data?.["replacement"] === true);
    const stranger = await startStrangerServer(user!, port);
    strangers.push(stranger);

    const abandoned = await until(() => daemonEvents(d, "replacement-failed")[0], 20_000, "the replacement abandoned");
    expect(abandoned.message).toContain(`is held by pid ${stranger.pid} (uid ${user!.uid})`);
    const web = (await d.status()).processes.find((p: { id: string }) => p.id === "web");
    expect(web).toMatchObject({ pid: before.pid, port: before.port, state: "running" });
    for (let i = 0; i < 6; i++) expect(JSON.parse((await proxied(d.proxyPort)).body).pid).toBe(before.pid);
    expect(proxiedRequestsCaught(stranger)).toEqual([]);
  }, 90_000);
});

describe("a proxied process without a health check", () => {
  const noHealth = (extra: string[]) => ["  - id: web", "    policy: proxied", "    command: node {{APP}}", "    port: {from: {{RANGE_FROM}}, to: {{RANGE_TO}}}", "    health: false", ...extra.map((line) => `    ${line}`)].join("\n");

  it("gets traffic once its own process listens on its port, not when it is spawned", async () => {
    daemon = await startDaemon({ processes: noHealth(["env: {BOOT_DELAY_MS: '1500'}"]) });
    const d = daemon;
    const result = await deploy(d, "v1");
    expect(result.code, result.stdout + result.stderr).toBe(0);
    // Traffic moved only once the app listened: the first request after the switch is served.
    expect(JSON.parse((await proxied(d.proxyPort)).body).release).toBe("v1");
    const healthy = daemonEvents(d, "process-healthy").find((e) => e.releaseId === "v1");
    expect(healthy?.data?.["ms"]).toBeGreaterThanOrEqual(1_400);
  }, 60_000);

  it("fails the rollout when it never listens within proxy.healthTimeoutMs", async () => {
    daemon = await startDaemon({ processes: noHealth(["env: {NO_LISTEN_IF_EXISTS: '{{releasePath}}/deaf'}"]), proxy: { healthTimeoutMs: 2_000 } });
    const d = daemon;
    const result = await deploy(d, "v1", { deaf: ["deaf"] });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/web did not listen on 127\.0\.0\.1:\d+ within 2000 ms/);
  }, 60_000);
});
