// Process policies and supervision with a real daemon: services, companions, singletons,
// replicas, restart policies, memory limits and stop signals.
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { isAlive, sleep, startDaemon, until, type DaemonEvent, type TestDaemon, daemonEvents as events } from "../helpers/daemon.js";
import { get } from "../helpers/load.js";

let daemon: TestDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

function started(d: TestDaemon, instanceId: string): DaemonEvent[] {
  return events(d).filter((e) => e.type === "process-started" && e.data?.instanceId === instanceId);
}

async function deploy(d: TestDaemon, release: string, extra: string[] = []) {
  const result = await d.cli(["apply", "--release-path", await d.release(release), "--wait", ...extra]);
  expect(result.code, result.stderr).toBe(0);
  return result;
}

const WEB = `  - id: web
    policy: proxied
    command: node {{APP}}
    port: {from: {{RANGE_FROM}}, to: {{RANGE_TO}}}
    health: {path: /ping, intervalMs: 50, timeoutMs: 5000}
    env: {BROKER_PORT: "{{ports.broker}}"}`;

describe("policies", () => {
  it("starts services, then companions, then the proxied process; a service survives deploys on its port", async () => {
    daemon = await startDaemon({
      processes: `  - id: broker
    policy: service
    command: node {{APP}}
    port: {from: {{RANGE_FROM}}, to: {{RANGE_TO}}}
  - id: worker
    policy: companion
    command: node {{WORKER}}
${WEB}`,
    });
    await deploy(daemon, "v1");
    const order = events(daemon)
      .filter((e) => e.type === "process-started")
      .map((e) => e.data?.instanceId);
    expect(order).toEqual(["broker", "worker", "web"]);
    const before = (await daemon.status()).processes.find((p: { id: string }) => p.id === "broker");
    expect(before.policy).toBe("service");

    await deploy(daemon, "v2");
    await deploy(daemon, "v3");
    const after = (await daemon.status()).processes.filter((p: { id: string }) => p.id === "broker");
    expect(after).toHaveLength(1);
    expect(after[0].pid).toBe(before.pid);
    expect(after[0].port).toBe(before.port);
    expect(started(daemon, "broker")).toHaveLength(1);
    // The web process was given the service's port through {{ports.broker}}.
    const res = await get(daemon.proxyPort);
    expect(JSON.parse(res.body).headers).toBeDefined();
    // Its restart template follows the latest good release.
    expect(events(daemon).some((e) => e.type === "services-refreshed" && e.releaseId === "v3")).toBe(true);
    process.kill(after[0].pid, "SIGKILL");
    const restarted = await until(
      async () => {
        const b = (await daemon!.status()).processes.find((p: { id: string }) => p.id === "broker");
        return b?.state === "running" && b.pid !== after[0].pid ? b : null;
      },
      10_000,
      "broker restarted",
    );
    expect(restarted.releaseId).toBe("v3");
    expect(restarted.port).toBe(before.port);
    expect(restarted.lastStartReason).toBe("crash");
  });

  it("stops the services a failed first rollout started", async () => {
    daemon = await startDaemon({
      processes: `  - id: broker
    policy: service
    command: node {{APP}}
    port: {from: {{RANGE_FROM}}, to: {{RANGE_TO}}}
${WEB}`,
    });
    const v1 = await daemon.release("v1");
    const failed = await daemon.cli(["apply", "-f", "-", "--wait"], { input: `release: {path: ${v1}}\nenv: {HEALTH_FAIL: "1"}\n` });
    expect(failed.code).toBe(1);
    const brokerStart = events(daemon).find((e) => e.type === "process-started" && e.data?.instanceId === "broker");
    expect(brokerStart).toBeDefined();
    await until(() => !isAlive(brokerStart!.data!.pid as number), 10_000, "broker stopped");
    const s = await daemon.status();
    expect(s.processes.filter((p: { id: string; pid: number | null }) => p.id === "broker" && p.pid !== null)).toEqual([]);
  });

  it("never runs two singletons at once across a deploy", async () => {
    daemon = await startDaemon({
      processes: `  - id: scheduler
    policy: singleton
    command: node {{WORKER}}
    env: {GRACEFUL_MS: "300"}
${WEB.replace(/    env: .*\n?/, "")}`,
    });
    await deploy(daemon, "v1");
    await until(() => started(daemon!, "scheduler").length === 1, 5000, "v1 scheduler");
    await deploy(daemon, "v2");
    await until(() => started(daemon!, "scheduler").length === 2, 5000, "v2 scheduler");
    const all = events(daemon);
    const exitOld = all.find((e) => e.type === "process-exited" && e.data?.instanceId === "scheduler" && e.releaseId === "v1");
    const startNew = all.find((e) => e.type === "process-started" && e.data?.instanceId === "scheduler" && e.releaseId === "v2");
    const switched = all.find((e) => e.type === "traffic-switched" && e.releaseId === "v2");
    expect(exitOld && startNew && switched).toBeTruthy();
    // Old stopped before new started, and only after the new release took traffic.
    expect(exitOld!.seq).toBeLessThan(startNew!.seq);
    expect(switched!.seq).toBeLessThan(startNew!.seq);
    const running = (await daemon.status()).processes.filter((p: { id: string; pid: number | null }) => p.id === "scheduler" && p.pid !== null);
    expect(running).toHaveLength(1);
    expect(running[0].releaseId).toBe("v2");
  });

  it("runs companion replicas with distinct indices and scales them in place through the desired state", async () => {
    daemon = await startDaemon({
      processes: `  - id: worker
    policy: companion
    command: node {{WORKER}}
    replicas: 3
${WEB.replace(/    env: .*\n?/, "")}`,
    });
    await deploy(daemon, "v1");
    let s = await daemon.status();
    const workers = () => s.processes.filter((p: { id: string; pid: number | null }) => p.id === "worker" && p.pid !== null);
    expect(
      workers()
        .map((p: { instanceId: string }) => p.instanceId)
        .sort(),
    ).toEqual(["worker#0", "worker#1", "worker#2"]);
    expect(
      workers()
        .map((p: { replicaIndex: number }) => p.replicaIndex)
        .sort(),
    ).toEqual([0, 1, 2]);
    const logs = JSON.parse((await daemon.cli(["logs", "--process", "worker#2", "--json"])).stdout);
    expect(logs.lines.map((l: { line: string }) => l.line).join("\n")).toMatch(/worker worker 2 started/);
    const webPid = s.processes.find((p: { id: string }) => p.id === "web").pid;
    const originalPids = new Map(workers().map((p: { instanceId: string; pid: number }) => [p.instanceId, p.pid]));

    expect((await daemon.cli(["apply", "--replicas", "worker=5", "--wait"])).code).toBe(0);
    s = await daemon.status();
    expect(workers()).toHaveLength(5);
    for (const [id, pid] of originalPids) expect(workers().find((p: { instanceId: string }) => p.instanceId === id)?.pid).toBe(pid);
    expect(started(daemon, "worker#3")).toHaveLength(1);
    expect(started(daemon, "worker#4")).toHaveLength(1);

    expect((await daemon.cli(["apply", "--replicas", "worker=2", "--wait"])).code).toBe(0);
    s = await daemon.status();
    expect(
      workers()
        .map((p: { instanceId: string }) => p.instanceId)
        .sort(),
    ).toEqual(["worker#0", "worker#1"]);
    expect(
      workers()
        .map((p: { pid: number }) => p.pid)
        .sort(),
    ).toEqual([originalPids.get("worker#0"), originalPids.get("worker#1")].sort());
    // No new release, the web process untouched.
    expect(s.releases).toHaveLength(1);
    expect(s.processes.find((p: { id: string }) => p.id === "web").pid).toBe(webPid);
  });

  it("fails a rollout whose companion exits while starting, leaving nothing of it running", async () => {
    // The web process takes 2 s to become healthy, so the companion's exit lands while the
    // release is still starting (after the switch a crashing companion is supervised instead).
    daemon = await startDaemon({
      processes: `  - id: crasher
    policy: companion
    command: node {{WORKER}}
    env: {EXIT_IMMEDIATELY: "1"}
${WEB.replace(/    env: .*\n?/, '    env: {HEALTH_DELAY_MS: "2000"}\n')}`,
    });
    const result = await daemon.cli(["apply", "--release-path", await daemon.release("v1"), "--wait"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/crasher exited with code 1/);
    expect(result.stderr).toMatch(/boom/);
    const status = await daemon.status();
    expect(status.releases[0].state).toBe("failed");
    expect(status.processes.filter((p: { pid: number | null }) => p.pid !== null)).toEqual([]);
  });

  it("gives up on a process that crash-loops in the active release after maxRestarts", async () => {
    daemon = await startDaemon({
      processes: `  - id: worker
    policy: companion
    command: node {{WORKER}}
    replicas: 2
    restartDelayMs: 100
  - id: crasher
    policy: companion
    command: node {{WORKER}}
    env: {EXIT_AFTER_MS: "{{env.CRASH_AFTER}}"}
    restartDelayMs: 200
    restart: {maxRestarts: 2, windowMs: 60000, backoffFactor: 3}
${WEB.replace(/    env: .*\n?/, "")}`,
      daemonEnv: { CRASH_AFTER: "1500" },
    });
    await deploy(daemon, "v1");
    const killed = (await daemon.status()).processes.find((p: { instanceId: string }) => p.instanceId === "worker#1");
    process.kill(killed.pid, "SIGKILL");
    const back = await until(
      async () => {
        const p = (await daemon!.status()).processes.find((x: { instanceId: string }) => x.instanceId === "worker#1");
        return p.state === "running" && p.pid !== killed.pid ? p : null;
      },
      10_000,
      "worker#1 restarted",
    );
    expect(back.lastStartReason).toBe("crash");
    expect(back.restarts).toBe(1);

    const crasher = await until(
      async () => {
        const p = (await daemon!.status()).processes.find((x: { id: string }) => x.id === "crasher");
        return p.state === "failed" ? p : null;
      },
      20_000,
      "crasher failed",
    );
    expect(crasher.restarts).toBe(2);
    const starts = started(daemon, "crasher").map((e) => Date.parse(e.at));
    const exits = events(daemon)
      .filter((e) => e.type === "process-crashed" && e.data?.instanceId === "crasher")
      .map((e) => Date.parse(e.at));
    expect(starts).toHaveLength(3);
    // Backoff: 200 ms, then 600 ms.
    expect(starts[1]! - exits[0]!).toBeGreaterThanOrEqual(180);
    expect(starts[2]! - exits[1]!).toBeGreaterThanOrEqual(550);
    await until(() => events(daemon!).some((e) => e.type === "process-failed" && e.data?.instanceId === "crasher"), 5000, "the crasher's process-failed event");
    // Conditions come from the pass after the event: wait for that pass's status.
    await until(async () => ((await daemon!.status()).conditions as { type: string; reason: string }[]).some((c) => c.type === "Degraded" && c.reason === "ProcessFailed"), 10_000, "a Degraded condition with reason ProcessFailed");
  });

  it("restarts a process that grows past memory.limitBytes with reason memory", async () => {
    daemon = await startDaemon({
      processes: `  - id: leaky
    policy: companion
    command: node {{WORKER}}
    env: {LEAK_MB_PER_SEC: "{{env.LEAK}}"}
    memory: {limitBytes: 157286400, warnBytes: 104857600, checkIntervalMs: 200}
${WEB.replace(/    env: .*\n?/, "")}`,
      daemonEnv: { LEAK: "80" },
    });
    await deploy(daemon, "v1");
    const first = (await daemon.status()).processes.find((p: { id: string }) => p.id === "leaky");
    const after = await until(
      async () => {
        const p = (await daemon!.status()).processes.find((x: { id: string }) => x.id === "leaky");
        return p.memoryRestarts >= 1 && p.state === "running" && p.pid !== first.pid ? p : null;
      },
      20_000,
      "memory restart",
    );
    expect(after.lastStartReason).toBe("memory");
    expect(after.lastMemoryRestartAt).not.toBeNull();
    expect(after.restarts).toBe(0);
    // Sampled every few seconds: right after the restart the new process may not have one yet.
    expect(typeof after.rssBytes === "number" || after.rssBytes === null || after.rssBytes === undefined).toBe(true);
    const all = events(daemon);
    expect(all.some((e) => e.type === "memory-warning")).toBe(true);
    expect(all.some((e) => e.type === "memory-limit")).toBe(true);
    expect(all.some((e) => e.type === "process-started" && e.data?.reason === "memory")).toBe(true);
    await until(() => !isAlive(first.pid), 5000, "old leaky gone");
  });

  it("stops a companion with its stopSignal and takes its grandchildren with it", async () => {
    const logDir = await import("node:os").then((os) => fs.mkdtemp(path.join(os.tmpdir(), "rb-sig-")));
    const signalLog = path.join(logDir, "signals.log");
    try {
      daemon = await startDaemon({
        processes: `  - id: worker
    policy: companion
    command: node {{WORKER}}
    stopSignal: SIGINT
    env: {SIGNAL_LOG: "${signalLog}", SPAWN_CHILD: "1"}
${WEB.replace(/    env: .*\n?/, "")}`,
      });
      await deploy(daemon, "v1");
      const logs = await until(
        async () => {
          const out = JSON.parse((await daemon!.cli(["logs", "--process", "worker", "--json"])).stdout);
          return out.lines.map((l: { line: string }) => l.line).find((l: string) => /child pid \d+/.test(l));
        },
        5000,
        "grandchild pid",
      );
      const grandchild = Number(/child pid (\d+)/.exec(logs)![1]);
      expect(isAlive(grandchild)).toBe(true);
      await deploy(daemon, "v2");
      await until(async () => (await fs.readFile(signalLog, "utf8").catch(() => "")).includes("SIGINT"), 5000, "SIGINT logged");
      expect(await fs.readFile(signalLog, "utf8")).not.toMatch(/SIGTERM/);
      await until(() => !isAlive(grandchild), 5000, "grandchild gone");
    } finally {
      await fs.rm(logDir, { recursive: true, force: true });
    }
  });
});

describe("stop sequences", () => {
  it("runs lifecycle hooks on a retired companion, and a hook that hangs does not wedge the stop", async () => {
    const os = await import("node:os");
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "rb-hook-"));
    const marker = path.join(dir, "quiet.marker");
    try {
      daemon = await startDaemon({
        processes: `  - id: worker
    policy: companion
    command: node {{WORKER}}
    gracefulStopMs: 500
    lifecycle: {quietCommand: "echo $ROLLBRIDGE_PID > ${marker}; sleep 30"}
${WEB.replace(/    env: .*\n?/, "")}`,
      });
      await deploy(daemon, "v1");
      const old = (await daemon.status()).processes.find((p: { id: string }) => p.id === "worker");
      const started = Date.now();
      await deploy(daemon, "v2");
      await until(() => !isAlive(old.pid), 5000, "old worker gone");
      expect(Date.now() - started).toBeLessThan(8000);
      expect((await fs.readFile(marker, "utf8")).trim()).toBe(String(old.pid));
      expect(events(daemon).some((e) => e.type === "process-stop-step" && e.data?.phase === "quiet" && e.data?.ok === false)).toBe(true);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe("config reload", () => {
  it("reloads when the config file is saved, and keeps the running config when the new one is invalid", async () => {
    daemon = await startDaemon();
    await deploy(daemon, "v1");
    const text = await fs.readFile(daemon.configPath, "utf8");
    await fs.writeFile(daemon.configPath, text.replace("processes:", "processes:\n  - {id: web, policy: companion}"));
    const failed = await until(() => events(daemon!).find((e) => e.type === "config-reload-failed"), 5000, "invalid config reported");
    expect(failed.message).toMatch(/keeping the running config/);
    expect((await get(daemon.proxyPort)).status).toBe(200);

    await fs.writeFile(daemon.configPath, text.replace("policy: proxied", "policy: proxied\n    env: {GREETING: saved}"));
    const reloaded = await until(() => events(daemon!).find((e) => e.type === "config-reloaded"), 5000, "reload on save");
    expect(reloaded.message).toMatch(/config file changed/);
    await deploy(daemon, "v2");
    expect(JSON.parse((await get(daemon.proxyPort)).body).greeting).toBe("saved");
  });

  it("applies new process definitions to the next release on SIGHUP and refuses to move the proxy", async () => {
    daemon = await startDaemon();
    await deploy(daemon, "v1");
    const text = await fs.readFile(daemon.configPath, "utf8");
    await fs.writeFile(daemon.configPath, text.replace("policy: proxied", "policy: proxied\n    env: {GREETING: reloaded}"));
    daemon.child.kill("SIGHUP");
    await until(() => events(daemon!).some((e) => e.type === "config-reloaded"), 5000, "reload");
    // The running process keeps the definition it was started with...
    expect(JSON.parse((await get(daemon.proxyPort)).body).greeting).toBeNull();
    // ...and the next release gets the new one.
    await deploy(daemon, "v2");
    const body = JSON.parse((await get(daemon.proxyPort)).body);
    expect(body.release).toBe("v2");
    expect(body.greeting).toBe("reloaded");

    await fs.writeFile(daemon.configPath, text.replace(/port: \d+\n/, "port: 1\n"));
    daemon.child.kill("SIGHUP");
    await until(() => events(daemon!).some((e) => e.type === "config-reload-refused"), 5000, "refusal");
    await sleep(100);
    expect((await get(daemon.proxyPort)).status).toBe(200);
  });
});
