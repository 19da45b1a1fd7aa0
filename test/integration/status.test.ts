// status as an operator reads it: CPU % and RSS of every process, the stopped processes of
// retired releases out of the way unless --all, a failed desired release with when it is tried
// again and how to stop that, and the conditions with their reasons under the desired line.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { deploy } from "../helpers/operations.js";
import { companionProcess, webProcess } from "../helpers/test-config.js";

// A web process and a worker that spins about 40% of a CPU.
const PROCESSES = [webProcess({ restartDelayMs: undefined }), companionProcess("busy", { env: '{BUSY_PERCENT: "40"}', gracefulStopMs: 3000 })].join("\n");

interface Proc {
  instanceId: string;
  releaseId: string;
  state: string;
  pid: number | null;
  cpuPercent: number | null;
  rssBytes: number | null;
}

let daemon: TestDaemon;
beforeAll(async () => {
  daemon = await startDaemon({ processes: PROCESSES, proxy: { drainTimeoutMs: 500 } });
  for (const release of ["v1", "v2"]) {
    const r = await deploy(daemon, release);
    expect(r.code, r.stderr).toBe(0);
  }
}, 60_000);
afterAll(async () => {
  await daemon?.stop();
});

describe("status", () => {
  it("shows CPU % and RSS of every running process, in the table and in --json", async () => {
    // CPU % needs two samples (2 s apart); a loaded machine may delay them. The web process's
    // first samples include its own start (and a loaded machine gives the busy worker less than
    // its 40%), so wait for a sample where the spinning worker is the busier one.
    const cpu = (running: Proc[], id: string) => running.find((p) => p.instanceId === id)?.cpuPercent ?? null;
    const s = await until(
      async () => {
        const doc = await daemon.status();
        const running = doc.processes.filter((p: Proc) => p.state === "running" && p.releaseId === "v2");
        if (running.length !== 2 || !running.every((p: Proc) => typeof p.cpuPercent === "number")) return null;
        return cpu(running, "busy")! > 10 && cpu(running, "web")! < cpu(running, "busy")! ? doc : null;
      },
      25_000,
      "a CPU sample of both running processes, the spinning worker above 10% and above the web process",
    );
    const running = s.processes.filter((p: Proc) => p.state === "running") as Proc[];
    expect(running.map((p) => `${p.instanceId}@${p.releaseId}`).sort()).toEqual(["busy@v2", "web@v2"]);
    for (const p of running) {
      expect(p.rssBytes).toBeGreaterThan(5 * 1024 * 1024); // a node process is tens of MB
      expect(p.cpuPercent).toBeGreaterThanOrEqual(0);
    }
    // It spins 40 ms of every 100: well above an idle process, even on a busy machine.
    expect(running.find((p) => p.instanceId === "busy")!.cpuPercent).toBeGreaterThan(10);
    const web = running.find((p) => p.instanceId === "web")!;
    expect(web.cpuPercent!).toBeLessThan(running.find((p) => p.instanceId === "busy")!.cpuPercent!);

    const table = (await daemon.cli(["status"])).stdout;
    expect(table).toMatch(/^PROCESS\s+RELEASE\s+STATE\s+PID\s+PORT\s+CPU\s+MEMORY\s+RESTARTS\s+UPTIME\s+LAST START$/m);
    expect(table).toMatch(/^busy\s+v2\s+running\s+\d+\s+-\s+\d+\.\d%\s+\d+\.\d MiB\s+0\s/m);
  }, 30_000);

  it("leaves out the stopped processes of retired releases unless --all", async () => {
    const s = await daemon.status();
    expect(s.processes.filter((p: Proc) => p.releaseId === "v1")).toEqual([]);
    expect(s.hiddenProcesses).toBe(2);
    const human = (await daemon.cli(["status"])).stdout;
    expect(human).not.toMatch(/^(web|busy)\s+v1\s/m);
    expect(human).toContain("(2 stopped processes of retired releases not shown: rollbridge status --all lists them)");

    const all = JSON.parse((await daemon.cli(["status", "--all", "--json"])).stdout);
    expect(all.hiddenProcesses).toBe(0);
    const v1 = all.processes.filter((p: Proc) => p.releaseId === "v1") as Proc[];
    expect(v1.map((p) => [p.instanceId, p.state, p.pid, p.cpuPercent, p.rssBytes]).sort()).toEqual([
      ["busy", "stopped", null, null, null],
      ["web", "stopped", null, null, null],
    ]);
    const allHuman = (await daemon.cli(["status", "-a"])).stdout;
    expect(allHuman).toMatch(/^web\s+v1\s+stopped\s+-\s/m);
    expect(allHuman).not.toContain("not shown");
  });

  it("shows when a failed desired release is tried again and how to stop that, with its condition", async () => {
    const v3 = await daemon.release("v3");
    const failing = await daemon.cli(["apply", "-f", "-", "--wait"], { input: `release: {path: ${v3}}\nenv: {EXIT_IMMEDIATELY: "1"}\n` });
    expect(failing.code).toBe(1);
    const s = await daemon.status();
    const failed = s.releases.find((r: { id: string }) => r.id === "v3");
    expect(failed).toMatchObject({ state: "failed", failure: { code: "PROCESS_EXITED", attempts: expect.any(Number), retryAt: expect.any(String) } });
    // The first retry comes 10 s after the failure, then 20 s, 40 s, ... up to 5 min (a slow
    // machine may have retried once already).
    expect(Date.parse(failed.failure.retryAt) - Date.parse(failed.failure.at)).toBe(10_000 * 2 ** (failed.failure.attempts - 1));
    // The desired release's processes stay listed: they say how it failed. (EXIT_IMMEDIATELY
    // makes both processes exit: whichever exits first fails the rollout.)
    const culprit = failed.failure.instanceId as string;
    expect(["web", "busy"]).toContain(culprit);
    expect(s.processes.find((p: Proc) => p.releaseId === "v3" && p.instanceId === culprit)).toMatchObject({ state: "crashed" });

    const human = (await daemon.cli(["status"])).stdout;
    const lines = human.split("\n");
    // Conditions come right under the desired line, with their reason.
    expect(lines[1]).toMatch(/^desired: v3 /);
    expect(lines[2]).toBe(`Degraded (RolloutFailed): ${culprit} exited with code 1 before it became ready`);
    expect(human).toContain(`failed v3: ${culprit} exited with code 1 before it became ready`);
    expect(human).toMatch(/it is the desired release: tried again (at \S+ \(in [\d.]+ m?s\)|now)/);
    expect(human).toContain("to stop that, change the desired state: deploy a fixed release, apply the active release v2 again, or rollbridge stop");

    // Once another release is desired, the failed one is not retried, and its processes are out of the way.
    const v4 = await daemon.release("v4");
    expect((await daemon.cli(["apply", "-f", "-", "--wait"], { input: `release: {path: ${v4}}\n` })).code).toBe(0);
    const after = await daemon.status();
    expect(after.releases.find((r: { id: string }) => r.id === "v3").failure.retryAt).toBeNull();
    expect(after.processes.filter((p: Proc) => p.releaseId === "v3")).toEqual([]);
    expect((await daemon.cli(["status"])).stdout).not.toContain("tried again");
  }, 60_000);
});
