// The spine end to end: a real daemon, real fixture apps, real sockets.
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { isAlive, runCli, sleep, startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { get, startLoad } from "../helpers/load.js";

let daemon: TestDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

async function deploy(d: TestDaemon, release: string, extra: string[] = []) {
  const p = await d.release(release);
  const result = await d.cli(["apply", "--release-path", p, "--wait", ...extra]);
  return result;
}

describe("declarative deploys", () => {
  it("rolls out three releases and rejects a failing one under keep-alive load with zero failed requests", async () => {
    daemon = await startDaemon({
      processes: `  - id: web
    policy: proxied
    command: node {{APP}}
    port: {from: {{RANGE_FROM}}, to: {{RANGE_TO}}}
    health: {path: /ping, intervalMs: 50, timeoutMs: 3000}
    env: {HEALTH_DELAY_MS: "300"}
    restartDelayMs: 200
    gracefulStopMs: 3000`,
      proxy: { drainTimeoutMs: 3000 },
    });
    const first = await deploy(daemon, "v1");
    expect(first.code, first.stderr).toBe(0);
    expect((await get(daemon.proxyPort)).status).toBe(200);

    const load = startLoad(daemon.proxyPort, { connections: 32 });
    await sleep(300);

    // 1. apply --wait
    const second = await deploy(daemon, "v2");
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/traffic switched to v2/);
    expect(second.stdout).toMatch(/healthy in \d+ ms/);

    // 2. a hand-written desired.yaml renamed into place
    const v3 = await daemon.release("v3");
    const tmp = path.join(daemon.dir, ".desired.tmp");
    await fs.writeFile(tmp, `release:\n  path: ${v3}\n  revision: r3\n`);
    await fs.rename(tmp, daemon.desiredPath);
    await until(
      async () => {
        const s = await daemon!.status();
        return s.activeRelease?.id === "v3" && s.converged;
      },
      20_000,
      "v3 active and converged",
    );

    // 3. a release that never becomes healthy: refused, v3 keeps serving
    const v4 = await daemon.release("v4");
    const failing = await daemon.cli(["apply", "-f", "-", "--wait"], { input: `release: {path: ${v4}}\nenv: {HEALTH_FAIL: "1"}\n` });
    expect(failing.code).toBe(1);
    expect(failing.stderr).toMatch(/failed/);
    expect(failing.stderr).toMatch(/did not return 2xx/);
    let status = await daemon.status();
    expect(status.activeRelease.id).toBe("v3");
    const failed = status.releases.find((r: { id: string }) => r.id === "v4");
    expect(failed.state).toBe("failed");
    expect(failed.failure.reason).toMatch(/did not return 2xx/);
    expect(status.processes.filter((p: { releaseId: string; pid: number | null }) => p.releaseId === "v4" && p.pid !== null)).toEqual([]);

    // 4. and a good one after the failure (a whole document: flags would keep v4's env)
    const v5 = await daemon.release("v5");
    const fifth = await daemon.cli(["apply", "-f", "-", "--wait"], { input: `release: {path: ${v5}}\n` });
    expect(fifth.code, fifth.stderr).toBe(0);

    await sleep(300);
    const stats = await load.stop();
    status = await daemon.status();
    expect(status.activeRelease.id).toBe("v5");
    expect(stats.errors).toEqual([]);
    expect(stats.failed).toBe(0);
    expect(stats.non2xx).toBe(0);
    expect(stats.ok).toBeGreaterThan(500);
    expect(Object.keys(stats.byRelease).sort()).toEqual(["v1", "v2", "v3", "v5"]);
    // Only the last good release still runs.
    expect(status.processes.filter((p: { pid: number | null }) => p.pid !== null).map((p: { releaseId: string }) => p.releaseId)).toEqual(["v5"]);
  });

  it("keeps a WebSocket echoing during the drain and closes it after drainTimeoutMs", async () => {
    daemon = await startDaemon({ proxy: { drainTimeoutMs: 2000 } });
    expect((await deploy(daemon, "v1")).code).toBe(0);
    const oldPid = (await daemon.status()).processes[0].pid as number;

    const ws = new WebSocket(`ws://127.0.0.1:${daemon.proxyPort}/socket`);
    const messages: string[] = [];
    ws.on("message", (data) => messages.push(String(data)));
    const closed = new Promise<number>((resolve) => ws.on("close", () => resolve(Date.now())));
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    await until(() => messages.includes("hello v1"), 5000, "hello from v1");

    const started = Date.now();
    const pending = deploy(daemon, "v2");
    await until(async () => (await daemon!.status()).activeRelease?.id === "v2", 10_000, "v2 active");
    // Draining: the old connection still echoes.
    ws.send("still there?");
    await until(() => messages.includes("still there?"), 2000, "echo during drain");
    const drainingStatus = await daemon.status();
    const v1 = drainingStatus.releases.find((r: { id: string }) => r.id === "v1");
    expect(v1.state).toBe("draining");
    expect(v1.connections.websockets).toBe(1);

    const closedAt = await closed;
    expect(closedAt - started).toBeGreaterThanOrEqual(1500);
    const result = await pending;
    expect(result.code, result.stderr).toBe(0);
    await until(() => !isAlive(oldPid), 5000, "old process gone");
    const fresh = await get(daemon.proxyPort);
    expect(JSON.parse(fresh.body).release).toBe("v2");
  });

  it("diff exits 0 against the converged state and 1 against another release", async () => {
    daemon = await startDaemon();
    expect((await deploy(daemon, "v1")).code).toBe(0);
    const same = await daemon.cli(["diff"]);
    expect(same.code, same.stderr + same.stdout).toBe(0);
    expect(same.stdout).toMatch(/no changes/);
    const v2 = await daemon.release("v2");
    const other = await daemon.cli(["diff", "--release-path", v2]);
    expect(other.code).toBe(1);
    expect(other.stdout).toMatch(/switch traffic v1 → v2/);
    const json = await daemon.cli(["diff", "--release-path", v2, "--json"]);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout).changed).toBe(true);
    const bad = await daemon.cli(["diff", "--release-path", path.join(daemon.dir, "nope")]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/does not exist/);
  });

  it("restarts the active web process after kill -9 and serves again", async () => {
    daemon = await startDaemon();
    expect((await deploy(daemon, "v1")).code).toBe(0);
    const before = (await daemon.status()).processes[0];
    process.kill(before.pid, "SIGKILL");
    const after = await until(
      async () => {
        const p = (await daemon!.status()).processes[0];
        return p.state === "running" && p.pid !== before.pid && p.restarts === 1 ? p : null;
      },
      10_000,
      "web restarted",
    );
    expect(after.lastStartReason).toBe("crash");
    expect(after.port).toBe(before.port);
    const res = await get(daemon.proxyPort);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).pid).toBe(after.pid);
  });

  it("answers 503 before the first deploy and stops everything on SIGTERM", async () => {
    daemon = await startDaemon();
    const res = await get(daemon.proxyPort);
    expect(res.status).toBe(503);
    expect(res.body).toBe("No active release");
    expect((await deploy(daemon, "v1")).code).toBe(0);
    const pid = (await daemon.status()).processes[0].pid as number;
    daemon.child.kill("SIGTERM");
    await until(() => daemon!.child.exitCode !== null, 10_000, "daemon exit");
    expect(daemon.child.exitCode).toBe(0);
    expect(isAlive(pid)).toBe(false);
    await expect(fs.stat(daemon.socket)).rejects.toThrow();
  });
});

describe("validate", () => {
  it("reports several problems of one file at once, each with a fix", async () => {
    const dir = await fs.mkdtemp(path.join((await import("node:os")).tmpdir(), "rb-validate-"));
    try {
      const file = path.join(dir, "rollbridge.yaml");
      await fs.writeFile(file, ["application: bad", "proxy: {port: 99999}", "processes:", "  - {id: web, policy: companion, command: x}", "  - {id: web, policy: companion, command: y, replicaz: 2}"].join("\n"));
      const result = await runCli(["validate", "--config", file]);
      expect(result.code).toBe(1);
      const numbered = result.stderr.match(/^\d+\. /gm) ?? [];
      expect(numbered.length).toBeGreaterThanOrEqual(3);
      expect(result.stderr).toMatch(/proxied/);
      expect(result.stderr).toMatch(/Duplicate|duplicate/);
      expect(result.stderr).toMatch(/Fix:/);
      const json = await runCli(["validate", "--config", file, "--json"]);
      expect(json.code).toBe(1);
      expect(JSON.parse(json.stdout).issues.length).toBe(numbered.length);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
