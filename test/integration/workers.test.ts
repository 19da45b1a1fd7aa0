// Web worker pools and app signals: proxied replicas, rolling restarts, IPC readiness and
// self-requested replacement, request holding, log files, deploy abort.
import { promises as fs } from "node:fs";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { isAlive, sleep, startDaemon, until, type TestDaemon, daemonEvents as events } from "../helpers/daemon.js";
import { get, startLoad } from "../helpers/load.js";

let daemon: TestDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

async function deploy(d: TestDaemon, release: string) {
  const result = await d.cli(["apply", "--release-path", await d.release(release), "--wait"]);
  expect(result.code, result.stderr).toBe(0);
}

const web = (extra = "", env = "") => `  - id: web
    policy: proxied
    command: node {{APP}}
    port: {from: {{RANGE_FROM}}, to: {{RANGE_TO}}}
    health: {path: /ping, intervalMs: 50, timeoutMs: 5000}
    restartDelayMs: 100
${env ? `    env: {${env}}\n` : ""}${extra}`;

describe("proxied replicas", () => {
  it("spreads requests over 3 web workers with none under 15%", async () => {
    daemon = await startDaemon({ processes: web("    replicas: 3\n") });
    await deploy(daemon, "v1");
    const s = await daemon.status();
    const pids: number[] = s.processes.filter((p: { id: string }) => p.id === "web").map((p: { pid: number }) => p.pid);
    expect(pids).toHaveLength(3);
    expect(new Set(s.processes.map((p: { port: number }) => p.port)).size).toBe(3);
    const counts = new Map<number, number>();
    // 480 requests, 8 at a time.
    for (let batch = 0; batch < 60; batch++) {
      const answers = await Promise.all(Array.from({ length: 8 }, () => get(daemon!.proxyPort, "/slow?ms=5")));
      for (const a of answers) {
        const pid = JSON.parse(a.body).pid as number;
        counts.set(pid, (counts.get(pid) ?? 0) + 1);
      }
    }
    expect([...counts.keys()].sort()).toEqual([...pids].sort());
    for (const n of counts.values()) expect(n / 480).toBeGreaterThanOrEqual(0.15);
  });

  it("switches a deploy only when all new workers are ready, and rolls a restart one worker at a time with zero failed requests", async () => {
    daemon = await startDaemon({ processes: web("    replicas: 2\n", `HEALTH_DELAY_MS: "300"`), proxy: { drainTimeoutMs: 3000 } });
    await deploy(daemon, "v1");
    const load = startLoad(daemon.proxyPort, { connections: 16 });
    await sleep(300);
    await deploy(daemon, "v2");
    const switched = events(daemon).find((e) => e.type === "traffic-switched" && /v2/.test(e.message))!;
    const healthy = events(daemon).filter((e) => e.type === "process-healthy" && e.seq < switched.seq && /web#/.test(e.message));
    expect(healthy.length).toBeGreaterThanOrEqual(4); // v1's two and v2's two, all before the switch

    const before = (await daemon.status()).processes.filter((p: { id: string }) => p.id === "web");
    const restart = await daemon.cli(["restart", "--process", "web"]);
    expect(restart.code, restart.stderr).toBe(0);
    await until(
      async () => {
        const now = (await daemon!.status()).processes.filter((p: { id: string; pid: number | null }) => p.id === "web" && p.pid !== null);
        return now.length === 2 && now.every((p: { pid: number; lastStartReason: string }) => p.lastStartReason === "manual" && !before.some((b: { pid: number }) => b.pid === p.pid));
      },
      20_000,
      "both workers replaced",
    );
    await sleep(300);
    const stats = await load.stop();
    expect(stats.errors).toEqual([]);
    expect(stats.failed + stats.non2xx).toBe(0);
    for (const b of before) await until(() => !isAlive(b.pid), 5000, `old worker ${b.pid} gone`);
    // One at a time: the second replacement started only after the first was promoted.
    const all = events(daemon);
    const replacements = all.filter((e) => e.type === "process-started" && e.data?.replacement === true);
    const promotions = all.filter((e) => e.type === "process-replaced");
    expect(replacements).toHaveLength(2);
    expect(promotions.length).toBeGreaterThanOrEqual(1);
    expect(promotions[0]!.seq).toBeLessThan(replacements[1]!.seq);
  });
});

describe("app signals", () => {
  it("replaces a worker that sends offline, new before old, with zero failed requests", async () => {
    daemon = await startDaemon({ processes: web("", `SEND_OFFLINE_AFTER_MS: "{{env.OFFLINE_AFTER}}", GRACEFUL_MS: "2000"`), daemonEnv: { OFFLINE_AFTER: "1500" } });
    await deploy(daemon, "v1");
    const first = (await daemon.status()).processes[0];
    const load = startLoad(daemon.proxyPort, { connections: 16, path: "/slow?ms=20" });
    await until(() => events(daemon!).some((e) => e.type === "process-replaced"), 10_000, "a replacement");
    await sleep(500);
    const stats = await load.stop();
    expect(stats.errors).toEqual([]);
    expect(stats.failed + stats.non2xx).toBe(0);
    expect(events(daemon).some((e) => e.type === "restart-requested")).toBe(true);
    await until(() => !isAlive(first.pid), 5000, "the requester is gone");
    const now = (await daemon.status()).processes.find((p: { id: string; pid: number | null }) => p.id === "web" && p.pid !== null);
    expect(now.pid).not.toBe(first.pid);
    expect(now.lastStartReason).toBe("requested");
  });

  it("goes live on an IPC online message when health.ipc is set, even though its health path fails", async () => {
    daemon = await startDaemon({
      processes: `  - id: web
    policy: proxied
    command: node {{APP}}
    port: {from: {{RANGE_FROM}}, to: {{RANGE_TO}}}
    health: {ipc: true, timeoutMs: 5000}
    env: {HEALTH_FAIL: "1", SEND_ONLINE: "1"}`,
    });
    await deploy(daemon, "v1");
    const res = await get(daemon.proxyPort);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).release).toBe("v1");
    // Without the message, the rollout fails on the IPC timeout.
    const v2 = await daemon.release("v2");
    const failed = await daemon.cli(["apply", "-f", "-", "--wait"], { input: `release: {path: ${v2}}\nenv: {SEND_ONLINE: "0"}\n` });
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/did not send "online" or "ready"/);
  });

  it("holds requests while the only web worker restarts after kill -9: zero failed GETs", async () => {
    daemon = await startDaemon({ processes: web() });
    await deploy(daemon, "v1");
    const load = startLoad(daemon.proxyPort, { connections: 16 });
    await sleep(300);
    for (let i = 0; i < 2; i++) {
      const victim = (await daemon.status()).processes[0];
      process.kill(victim.pid, "SIGKILL");
      await until(
        async () => {
          const p = (await daemon!.status()).processes[0];
          return p.state === "running" && p.pid !== victim.pid;
        },
        10_000,
        "web restarted",
      );
      await sleep(300);
    }
    const stats = await load.stop();
    expect(stats.errors).toEqual([]);
    expect(stats.failed + stats.non2xx).toBe(0);
    expect(stats.ok).toBeGreaterThan(100);
  });
});

describe("log files", () => {
  it("rotates 2000 lines of output into gzipped files", async () => {
    daemon = await startDaemon({
      processes: `  - id: chatty
    policy: companion
    command: node -e "for (let i = 0; i < 2000; i++) console.log('line ' + i + ' ' + 'x'.repeat(60)); setInterval(() => {}, 1000)"
    logFile: {path: "logs/{{processId}}-{{replicaIndex}}.log", maxBytes: 20000, keep: 3, gzip: true}
${web()}`,
    });
    await deploy(daemon, "v1");
    const dir = path.join(daemon.dir, "logs");
    // The writer is asynchronous: once the last line is in the current file, every rotation
    // (gzip included) before it has finished, so the listing below is final.
    const current = await until(
      async () => {
        const text = await fs.readFile(path.join(dir, "chatty-0.log"), "utf8").catch(() => "");
        const lines = text.trim().split("\n");
        return /^line 1999 x+$/.test(lines.at(-1) ?? "") ? lines : null;
      },
      10_000,
      "the last line in the log file",
    );
    const files = (await fs.readdir(dir)).sort();
    expect(files).toEqual(["chatty-0.log", "chatty-0.log.1.gz", "chatty-0.log.2.gz", "chatty-0.log.3.gz"]);
    const rotated = gunzipSync(await fs.readFile(path.join(dir, "chatty-0.log.1.gz")))
      .toString("utf8")
      .trim()
      .split("\n");
    expect(rotated.length).toBeGreaterThan(100);
    expect(Buffer.byteLength(rotated.join("\n"))).toBeLessThanOrEqual(20000);
    // Lines stay in order across the rotation boundary.
    const lastRotated = Number(/^line (\d+)/.exec(rotated.at(-1)!)![1]);
    expect(Number(/^line (\d+)/.exec(current[0]!)![1])).toBe(lastRotated + 1);
  });
});

describe("deploy abort", () => {
  it("abandons a rollout not ready within --timeout and keeps the previous release", async () => {
    daemon = await startDaemon({ processes: web() });
    await deploy(daemon, "v1");
    const v2 = await daemon.release("v2");
    const started = Date.now();
    const result = await daemon.cli(["apply", "-f", "-", "--wait", "--timeout", "1500"], { input: `release: {path: ${v2}}\nenv: {BOOT_DELAY_MS: "30000"}\n` });
    expect(result.code).toBe(124);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(result.stderr).toMatch(/abandoned/);
    const s = await until(
      async () => {
        const st = await daemon!.status();
        return st.converged ? st : null;
      },
      10_000,
      "converged back on v1",
    );
    expect(s.activeRelease.id).toBe("v1");
    expect(s.desired.releaseId).toBe("v1");
    expect(s.releases.find((r: { id: string }) => r.id === "v2").state).toBe("failed");
    expect(s.processes.filter((p: { releaseId: string; pid: number | null }) => p.releaseId === "v2" && p.pid !== null)).toEqual([]);
    expect(JSON.parse((await get(daemon.proxyPort)).body).release).toBe("v1");
  });
});
