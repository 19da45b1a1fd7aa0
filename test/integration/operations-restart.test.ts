// restart through the real CLI: in place with reason manual, by id, replica id or policy, and
// the proxied process replaced with zero failed requests.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep, startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { isAlive } from "../helpers/process.js";
import { startLoad } from "../helpers/load.js";
import { WEB_AND_WORKERS, deploy } from "../helpers/operations.js";

interface Proc {
  instanceId: string;
  pid: number | null;
  state: string;
  lastStartReason: string;
  restarts: number;
}

let daemon: TestDaemon;
beforeAll(async () => {
  // Plus a daemon-wide service, which lives outside any release.
  const processes = `${WEB_AND_WORKERS}
  - id: broker
    policy: service
    command: node {{WORKER}}
    gracefulStopMs: 3000`;
  daemon = await startDaemon({ processes, proxy: { drainTimeoutMs: 2000 } });
  const r = await deploy(daemon, "v1");
  expect(r.code, r.stderr).toBe(0);
});
afterAll(async () => {
  await daemon?.stop();
});

async function pids(): Promise<Record<string, Proc>> {
  const s = await daemon.status();
  return Object.fromEntries(s.processes.filter((p: Proc) => p.state === "running").map((p: Proc) => [p.instanceId, p]));
}

describe("restart", () => {
  it("with no flags restarts the whole release and the services, the proxied process with zero downtime after the others, under load with no failed request", async () => {
    const before = await pids();
    const load = startLoad(daemon.proxyPort, { connections: 16 });
    await sleep(300);
    const r = await daemon.cli(["restart", "--json"]);
    await sleep(300);
    const stats = await load.stop();
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.ok).toBe(true);
    expect(doc.releaseId).toBe("v1");
    expect(doc.instances.map((i: { instanceId: string }) => i.instanceId).sort()).toEqual(["broker", "web", "worker#0", "worker#1"]);
    expect(doc.instances.find((i: { instanceId: string }) => i.instanceId === "broker")).toMatchObject({ policy: "service", zeroDowntime: false });
    expect(doc.instances.find((i: { instanceId: string }) => i.instanceId === "web")).toMatchObject({ policy: "proxied", releaseId: "v1", zeroDowntime: true });
    for (const i of doc.instances) {
      if (i.processId === "worker") expect(i).toMatchObject({ policy: "companion", releaseId: "v1", zeroDowntime: false });
      expect(i.pid).toBe(before[i.instanceId]!.pid);
      expect(i.newPid).not.toBe(i.pid);
    }
    // Zero downtime for the web process: every request during the restart was answered.
    expect(stats.errors).toEqual([]);
    expect(stats.failed + stats.non2xx).toBe(0);
    expect(stats.ok).toBeGreaterThan(100);
    for (const i of doc.instances) await until(async () => !(await isAlive(i.pid)), 10_000, `old ${i.instanceId} gone`);
    const after = await pids();
    for (const id of ["web", "worker#0", "broker"]) expect(after[id]).toMatchObject({ lastStartReason: "manual", pid: doc.instances.find((i: { instanceId: string }) => i.instanceId === id).newPid });
    // A manual restart is not a crash: the crash-restart budget is untouched.
    expect(after["worker#0"]!.restarts).toBe(0);
    // Deploy order: the new web instance started only after the workers and the service were started again.
    const { events } = JSON.parse((await daemon.cli(["events", "--json", "--limit", "60"])).stdout);
    const manual = events.filter((e: { type: string; data?: { reason?: string } }) => e.type === "process-started" && e.data?.reason === "manual");
    const replacement = manual.find((e: { data: { replacement?: boolean } }) => e.data.replacement);
    expect(replacement.message).toMatch(/^started a replacement for web \(v1, pid \d+, port \d+, reason manual\)$/);
    const others = manual.filter((e: { data: { replacement?: boolean } }) => !e.data.replacement);
    expect(others.map((e: { data: { instanceId: string } }) => e.data.instanceId).sort()).toEqual(["broker", "worker#0", "worker#1"]);
    for (const e of others) expect(e.seq).toBeLessThan(replacement.seq);
  });

  it("restarts one replica by its replica id, or a policy group", async () => {
    const before = await pids();
    const one = await daemon.cli(["restart", "--process", "worker#1"]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toMatch(/restarting worker#1 \(companion, pid \d+\)/);
    expect(one.stdout).toMatch(/✓ worker#1 running again \(pid \d+\)/);
    let after = await pids();
    expect(after["worker#0"]!.pid).toBe(before["worker#0"]!.pid);
    expect(after["worker#1"]!.pid).not.toBe(before["worker#1"]!.pid);

    const group = JSON.parse((await daemon.cli(["restart", "--policy", "companion", "--json"])).stdout);
    expect(group.instances.map((i: { instanceId: string }) => i.instanceId).sort()).toEqual(["worker#0", "worker#1"]);
    after = await pids();
    expect(after.web!.pid).toBe(before.web!.pid);
    expect(after.broker!.pid).toBe(before.broker!.pid);

    const service = JSON.parse((await daemon.cli(["restart", "--policy", "service", "--json"])).stdout);
    expect(service.instances.map((i: { instanceId: string }) => i.instanceId)).toEqual(["broker"]);
    after = await pids();
    expect(after.broker).toMatchObject({ lastStartReason: "manual", pid: service.instances[0].newPid });
    expect(after.broker!.pid).not.toBe(before.broker!.pid);
  });

  it("replaces the proxied process new-before-old when named, with no failed request", async () => {
    const before = await pids();
    const load = startLoad(daemon.proxyPort, { connections: 16 });
    await sleep(300);
    const r = await daemon.cli(["restart", "--process", "web", "--json"]);
    await sleep(300);
    const stats = await load.stop();
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.instances).toEqual([expect.objectContaining({ instanceId: "web", policy: "proxied", zeroDowntime: true, pid: before.web!.pid })]);
    expect(doc.instances[0].newPid).not.toBe(before.web!.pid);
    expect(stats.errors).toEqual([]);
    expect(stats.failed + stats.non2xx).toBe(0);
    expect(stats.ok).toBeGreaterThan(100);
    await until(async () => !(await isAlive(before.web!.pid!)), 10_000, "old web process gone");
    const after = await pids();
    expect(after.web).toMatchObject({ lastStartReason: "manual", pid: doc.instances[0].newPid });
    // The workers were not touched.
    expect(after["worker#0"]!.pid).toBe(before["worker#0"]!.pid);
  });

  it("refuses an unknown process or policy, listing the valid ones, and changes nothing", async () => {
    const before = await pids();
    const unknown = await daemon.cli(["restart", "--process", "nope", "--json"]);
    expect(unknown.code).toBe(1);
    const err = JSON.parse(unknown.stdout).error;
    expect(err).toMatchObject({ code: "UNKNOWN_PROCESS" });
    expect(err.fix).toMatch(/web, worker, broker, worker#0, worker#1/);
    const policy = await daemon.cli(["restart", "--policy", "singleton"]);
    expect(policy.code).toBe(1);
    expect(policy.stderr).toMatch(/no running singleton process in release v1/);
    const pidsOf = (m: Record<string, Proc>) => Object.fromEntries(Object.entries(m).map(([k, p]) => [k, p.pid]));
    expect(pidsOf(await pids())).toEqual(pidsOf(before));
  });
});
