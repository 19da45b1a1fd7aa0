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
    // PORT, then CPU and MEMORY ("-" until sampled), then RESTARTS.
    expect(r.stdout).toMatch(/^worker#1\s+v1\s+running\s+\d+\s+-\s+(-|[\d.]+%)\s+(-|[\d.]+ [KMG]?i?B)\s+0\s/m);
    expect(r.stdout).not.toContain("\u001b[");
  });
});

describe("logs", () => {
  interface Line {
    at: string;
    instanceId: string;
    processId: string;
    releaseId: string;
    pid: number;
    stream: string;
    line: string;
  }
  const logs = async (...args: string[]): Promise<Line[]> => {
    const r = await daemon.cli(["logs", "--json", ...args]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout).lines;
  };

  it("shows every retained line with its time, release, instance id, pid and stream, oldest first", async () => {
    await until(async () => (await logs("--process", "worker#1")).some((l) => l.line.startsWith("heartbeat worker 1")), 5000, "a heartbeat");
    const all = await logs();
    expect([...new Set(all.map((l) => l.instanceId))].sort()).toEqual(["web", "worker#0", "worker#1"]);
    const status = await daemon.status();
    const pidOf = (id: string) => status.processes.find((p: { instanceId: string }) => p.instanceId === id).pid;
    for (const l of all) {
      expect(l).toMatchObject({ releaseId: "v1", stream: expect.stringMatching(/^std(out|err)$/), pid: pidOf(l.instanceId), line: expect.any(String) });
      expect(new Date(l.at).toISOString()).toBe(l.at);
    }
    expect(all.map((l) => l.at)).toEqual([...all.map((l) => l.at)].sort());
    expect(all.find((l) => l.instanceId === "web" && /listening on \d+/.test(l.line))).toMatchObject({ processId: "web", stream: "stdout" });

    const base = await logs("--process", "worker");
    expect([...new Set(base.map((l) => l.instanceId))].sort()).toEqual(["worker#0", "worker#1"]);
    const one = await daemon.cli(["logs", "--process", "worker#0"]);
    expect(one.code).toBe(0);
    const text = one.stdout.trim().split("\n");
    expect(text.length).toBeGreaterThan(0);
    for (const line of text) expect(line).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z v1 worker#0\\[${pidOf("worker#0")}\\] std(out|err) \\| `));
    expect(one.stdout).toMatch(/ stdout \| heartbeat worker 0 \d+$/m);
    expect(one.stdout).not.toContain("heartbeat worker 1");
  });

  it("keeps the time, pid and stream of an earlier process's lines across a restart", async () => {
    const before = await logs("--process", "worker#1");
    const oldPid = before[0]!.pid;
    process.kill(oldPid, "SIGKILL");
    const after = await until(
      async () => {
        const lines = await logs("--process", "worker#1");
        return lines.some((l) => l.pid !== oldPid && l.line === "worker worker 1 started") ? lines : null;
      },
      10_000,
      "the restarted worker's first line",
    );
    const newPid = after.find((l) => l.line === "worker worker 1 started" && l.pid !== oldPid)!.pid;
    // Every line the earlier process wrote keeps its own time, pid and stream after the restart.
    const kept = before.filter((b) => after.some((a) => a.at === b.at && a.line === b.line));
    expect(kept.length).toBeGreaterThan(0);
    for (const b of kept) expect(after.find((a) => a.at === b.at && a.line === b.line)).toEqual(b);
    // ... and comes before the new process's lines.
    expect(after.findIndex((l) => l.pid === newPid)).toBeGreaterThan(after.findLastIndex((l) => l.pid === oldPid));
    const human = (await daemon.cli(["logs", "--process", "worker#1"])).stdout;
    expect(human).toContain(`worker#1[${oldPid}] stdout | heartbeat worker 1`);
    expect(human).toContain(`worker#1[${newPid}] stdout | worker worker 1 started`);
  });

  it("--lines N gives the last N lines and --since only the recent ones", async () => {
    const all = await logs();
    const last3 = await logs("--lines", "3");
    expect(last3).toHaveLength(3);
    // The last three of everything retained (newer lines may have arrived between the two calls).
    expect(last3[0]!.at >= all[all.length - 3]!.at).toBe(true);
    const short = await daemon.cli(["logs", "-n", "2", "--process", "worker#0"]);
    expect(short.stdout.trim().split("\n")).toHaveLength(2);

    await sleep(1500);
    const recent = await logs("--since", "1s", "--process", "worker#0");
    const cutoff = Date.now() - 3000;
    expect(recent.length).toBeGreaterThan(0);
    expect(recent.length).toBeLessThan((await logs("--process", "worker#0")).length);
    for (const l of recent) expect(Date.parse(l.at)).toBeGreaterThan(cutoff);
    const iso = new Date(Date.now() - 60 * 60_000).toISOString();
    expect((await logs("--since", iso, "--process", "worker#0")).length).toBeGreaterThan(0);
    expect(await logs("--since", new Date(Date.now() + 60_000).toISOString())).toEqual([]);
  });

  it("refuses an unknown process with the valid ids, and a bad --lines or --since with exit 2", async () => {
    const r = await daemon.cli(["logs", "--process", "nope"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unknown process "nope"/);
    expect(r.stderr).toMatch(/web, worker/);
    const lines = await daemon.cli(["logs", "--lines", "0"]);
    expect(lines.code).toBe(2);
    expect(lines.stderr).toContain("--lines 0: expected a positive integer");
    const since = await daemon.cli(["logs", "--since", "yesterday"]);
    expect(since.code).toBe(2);
    expect(since.stderr).toContain('--since "yesterday": not a duration or a time');
    expect(since.stderr).toContain("30s, 5m, 2h, 1d");
  });

  it("--follow streams new lines of one replica with the same fields until interrupted", async () => {
    const follow = streamCli(["logs", "--process", "worker#1", "--follow", "--lines", "2", "--config", daemon.configPath], daemon.dir);
    try {
      await follow.waitFor(/heartbeat worker 1 \d+/);
      await sleep(200); // the retained lines have all arrived by now
      const newest = Math.max(...follow.lines.map((l) => Number(/heartbeat worker 1 (\d+)/.exec(l)?.[1] ?? -1)));
      // Heartbeats newer than any retained one arrive while it runs (one every 200 ms).
      await follow.waitFor(new RegExp(`heartbeat worker 1 ${newest + 3}\\b`), 10_000);
      expect(follow.lines.some((l) => l.includes("heartbeat worker 0"))).toBe(false);
      for (const l of follow.lines) expect(l).toMatch(/^\S+Z v1 worker#1\[\d+\] std(out|err) \| /);
    } finally {
      await follow.stop();
    }
  });

  it("--follow --json streams one JSON object per line, across a restart of the process", async () => {
    const follow = streamCli(["logs", "--process", "worker#0", "--follow", "--json", "--lines", "0", "--config", daemon.configPath], daemon.dir);
    try {
      await follow.waitFor(/"line":"heartbeat worker 0/);
      // --lines 0: no retained line, only new ones.
      expect(follow.lines.some((l) => l.includes('"retained":true'))).toBe(false);
      const status = await daemon.status();
      const pid = status.processes.find((p: { instanceId: string }) => p.instanceId === "worker#0").pid;
      const seen = follow.lines.length;
      process.kill(pid, "SIGKILL");
      // The slot gets a new process; the stream keeps following it.
      const line = await until(() => follow.lines.slice(seen).find((l) => l.includes('"line":"worker worker 0 started"')), 10_000, "the restarted worker's first line");
      const parsed = JSON.parse(line!);
      expect(parsed).toMatchObject({ instanceId: "worker#0", processId: "worker", releaseId: "v1", stream: "stdout", at: expect.any(String), pid: expect.any(Number) });
      expect(parsed.pid).not.toBe(pid);
      expect(new Date(parsed.at).toISOString()).toBe(parsed.at);
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
