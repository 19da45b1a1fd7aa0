// status, logs and events through the real CLI against a real daemon: the JSON shapes, the
// human output, the follow streams, and failed commands recorded as events.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep, startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { WEB_AND_WORKERS, deploy, streamCli } from "../helpers/operations.js";

let daemon: TestDaemon;
beforeAll(async () => {
  daemon = await startDaemon({ processes: WEB_AND_WORKERS, proxy: { drainTimeoutMs: 1000 } });
  const first = await deploy(daemon, "v1", ["--revision", "r1"]);
  expect(first.code, first.stderr).toBe(0);
});
afterAll(async () => {
  await daemon?.stop();
});

describe("status", () => {
  it("reports desired vs observed, releases with connections, and every process with its restart data", async () => {
    const r = await daemon.cli(["status", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({
      application: expect.any(String),
      daemonPid: daemon.child.pid,
      converged: true,
      desired: { releaseId: "v1", revision: "r1", error: null, stopped: false, file: daemon.desiredPath },
      activeRelease: { id: "v1", revision: "r1", state: "active" },
      proxy: { host: "127.0.0.1", port: daemon.proxyPort, activeReleaseId: "v1" },
      orphans: [],
    });
    expect(s.desired.path).toBe(s.activeRelease.path);
    expect(s.releases).toEqual([expect.objectContaining({ id: "v1", state: "active", path: s.activeRelease.path, connections: { inflight: 0, websockets: 0 } })]);
    expect(s.conditions).toEqual(expect.arrayContaining([expect.objectContaining({ type: "Ready", status: true })]));
    const ids = s.processes.map((p: { instanceId: string }) => p.instanceId).sort();
    expect(ids).toEqual(["web", "worker#0", "worker#1"]);
    for (const p of s.processes) {
      expect(p).toMatchObject({ releaseId: "v1", state: "running", restarts: 0, lastStartReason: "deploy", memoryRestarts: 0 });
      expect(p.pid).toBeGreaterThan(0);
      expect(typeof p.startedAt).toBe("string");
      expect(p.uptimeMs).toBeGreaterThanOrEqual(0);
    }
    expect(s.processes.find((p: { id: string }) => p.id === "web")).toMatchObject({ policy: "proxied", port: expect.any(Number) });
    expect(s.processes.find((p: { instanceId: string }) => p.instanceId === "worker#1")).toMatchObject({ id: "worker", policy: "companion", port: null, replicaIndex: 1, replicaCount: 2 });
  });

  it("prints a readable table without colour codes when stdout is not a terminal", async () => {
    const r = await daemon.cli(["status"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/converged/);
    expect(r.stdout).toMatch(/^RELEASE\s+STATE\s+REVISION\s+CONNECTIONS\s+PATH$/m);
    expect(r.stdout).toMatch(/^v1\s+active\s+r1\s+0 http, 0 ws\s+\//m);
    expect(r.stdout).toMatch(/^worker#1\s+v1\s+running\s+\d+\s+-\s+0\s/m);
    expect(r.stdout).not.toContain("\u001b[");
  });
});

describe("logs", () => {
  it("shows retained output per process, by base id or replica id", async () => {
    await until(async () => (await daemon.cli(["logs", "--process", "worker#1", "--json"])).stdout.includes("heartbeat worker 1"), 5000, "a heartbeat");
    const all = JSON.parse((await daemon.cli(["logs", "--json"])).stdout);
    expect(all.processes.map((p: { instanceId: string }) => p.instanceId).sort()).toEqual(["web", "worker#0", "worker#1"]);
    const web = all.processes.find((p: { instanceId: string }) => p.instanceId === "web");
    expect(web.lines.some((l: string) => /listening on \d+/.test(l))).toBe(true);

    const base = JSON.parse((await daemon.cli(["logs", "--process", "worker", "--json"])).stdout);
    expect(base.processes.map((p: { instanceId: string }) => p.instanceId).sort()).toEqual(["worker#0", "worker#1"]);
    const one = await daemon.cli(["logs", "--process", "worker#0"]);
    expect(one.code).toBe(0);
    expect(one.stdout).toContain("==> worker#0 (v1) <==");
    expect(one.stdout).toMatch(/heartbeat worker 0 \d+/);
    expect(one.stdout).not.toContain("heartbeat worker 1");
  });

  it("refuses an unknown process with the valid ids", async () => {
    const r = await daemon.cli(["logs", "--process", "nope"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no process "nope"/);
    expect(r.stderr).toMatch(/web, worker/);
  });

  it("--follow streams new lines of one replica until interrupted", async () => {
    const follow = streamCli(["logs", "--process", "worker#1", "--follow", "--config", daemon.configPath], daemon.dir);
    try {
      await follow.waitFor(/heartbeat worker 1 \d+/);
      await sleep(200); // the retained lines have all arrived by now
      const newest = Math.max(...follow.lines.map((l) => Number(/heartbeat worker 1 (\d+)/.exec(l)?.[1] ?? -1)));
      // Heartbeats newer than any retained one arrive while it runs (one every 200 ms).
      await follow.waitFor(new RegExp(`heartbeat worker 1 ${newest + 3}\\b`), 10_000);
      expect(follow.lines.some((l) => l.includes("heartbeat worker 0"))).toBe(false);
      expect(follow.lines.every((l) => l.startsWith("worker#1 (v1) |"))).toBe(true);
    } finally {
      await follow.stop();
    }
  });

  it("--follow --json streams one JSON object per line, across a restart of the process", async () => {
    const follow = streamCli(["logs", "--process", "worker#0", "--follow", "--json", "--config", daemon.configPath], daemon.dir);
    try {
      await follow.waitFor(/"line":"heartbeat worker 0/);
      const status = await daemon.status();
      const pid = status.processes.find((p: { instanceId: string }) => p.instanceId === "worker#0").pid;
      const seen = follow.lines.length;
      process.kill(pid, "SIGKILL");
      // The slot gets a new process; the stream keeps following it.
      const line = await until(() => follow.lines.slice(seen).find((l) => l.includes('"line":"worker worker 0 started"')), 10_000, "the restarted worker's first line");
      expect(JSON.parse(line!)).toMatchObject({ instanceId: "worker#0", processId: "worker", releaseId: "v1", stream: "stdout", at: expect.any(Number) });
      for (const l of follow.lines) expect(() => JSON.parse(l)).not.toThrow();
    } finally {
      await follow.stop();
    }
  });
});

describe("events", () => {
  it("lists the structured history with --limit", async () => {
    const r = await daemon.cli(["events", "--json", "--limit", "500"]);
    expect(r.code, r.stderr).toBe(0);
    const { events } = JSON.parse(r.stdout);
    const types = events.map((e: { type: string }) => e.type);
    for (const t of ["daemon-started", "desired-changed", "rollout-started", "process-started", "process-healthy", "traffic-switched"]) expect(types).toContain(t);
    const started = events.find((e: { type: string; data?: { reason?: string } }) => e.type === "process-started");
    expect(started.data.reason).toBe("deploy");
    for (const e of events) expect(e).toMatchObject({ seq: expect.any(Number), at: expect.any(String), level: expect.stringMatching(/^(info|warn|error)$/), message: expect.any(String) });
    const limited = JSON.parse((await daemon.cli(["events", "--json", "--limit", "2"])).stdout).events;
    expect(limited).toHaveLength(2);
    // The newest ones, oldest first.
    expect(limited[0].seq).toBeLessThan(limited[1].seq);
    expect(limited[1].seq).toBeGreaterThanOrEqual(events[events.length - 1].seq);
    const human = await daemon.cli(["events", "--limit", "3"]);
    expect(human.stdout.trim().split("\n")).toHaveLength(3);
  });

  it("records a failed control command as a command-failed event", async () => {
    const bad = await daemon.cli(["restart", "--policy", "bogus"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/unknown policy "bogus"/);
    expect(bad.stderr).toMatch(/proxied, companion, singleton, service/);
    const { events } = JSON.parse((await daemon.cli(["events", "--json", "--limit", "5"])).stdout);
    const failed = events.filter((e: { type: string }) => e.type === "command-failed").pop();
    expect(failed).toMatchObject({ level: "warn", data: { method: "POST", path: "/v1/restart", status: 400, code: "USAGE" } });
    // The daemon's stdout log has it as one JSON line too.
    await until(() => daemon.stdout.some((l) => l.includes('"type":"command-failed"')), 3000, "command-failed on stdout");
  });

  it("--follow prints new events as they happen (a deploy) until interrupted", async () => {
    const follow = streamCli(["events", "--follow", "--limit", "1", "--config", daemon.configPath], daemon.dir);
    try {
      // The newest old event arrives first: from then on the stream is subscribed.
      await follow.waitFor(/./, 15_000);
      await sleep(300);
      expect(follow.lines).toHaveLength(1);
      const second = await deploy(daemon, "v2");
      expect(second.code, second.stderr).toBe(0);
      await follow.waitFor(/rolling out v2/);
      await follow.waitFor(/traffic switched to v2 from v1/);
      await follow.waitFor(/draining v1/);
    } finally {
      await follow.stop();
    }
  });
});
