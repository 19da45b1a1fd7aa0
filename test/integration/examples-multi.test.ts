// examples/multi as shipped (its scripts and its process definitions, on test ports): a deploy
// keeps the broker, lets old workers finish the job in hand, and never runs two schedulers.
import { promises as fs, readFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { freePort, ROOT, sleep, startDaemon, until, type TestDaemon } from "../helpers/daemon.js";

const EXAMPLE = path.join(ROOT, "examples/multi");

interface Event {
  seq: number;
  type: string;
  releaseId?: string;
  data?: { instanceId?: string; code?: number | null; signal?: string | null; pid?: number };
}

/** The example's processes, with test ports and short job and schedule intervals. */
function exampleProcesses(brokerPort: number): string {
  const config = parse(readFileSync(path.join(EXAMPLE, "rollbridge.yaml"), "utf8")) as { processes: Record<string, any>[] };
  const processes = config.processes.map((p) => {
    const copy: Record<string, any> = { ...p, env: { ...(p["env"] ?? {}) } };
    if (p["id"] === "broker") copy["port"] = brokerPort;
    if (p["id"] === "worker") copy["env"]["JOB_MS"] = "1500";
    if (p["id"] === "scheduler") copy["env"]["INTERVAL_MS"] = "300";
    if (p["policy"] === "proxied") {
      delete copy["port"];
      copy["health"] = { ...p["health"], intervalMs: 50 };
    }
    return copy;
  });
  const lines = stringify(processes, { lineWidth: 0 })
    .trimEnd()
    .split("\n")
    .map((line) => `  ${line}`);
  // The proxied entry is last in the example; its port range goes at its end.
  return [...lines, "    port: {from: {{RANGE_FROM}}, to: {{RANGE_TO}}}"].join("\n");
}

let daemon: TestDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

describe("examples/multi", () => {
  it("keeps the broker across a deploy, lets old workers finish their jobs, and never runs two schedulers", async () => {
    const brokerPort = await freePort();
    daemon = await startDaemon({ processes: exampleProcesses(brokerPort), proxy: { drainTimeoutMs: 5000 } });
    const d = daemon;
    const deploy = async (name: string) => {
      const release = await d.release(name);
      for (const file of ["web.mjs", "worker.mjs", "scheduler.mjs", "broker.mjs"]) await fs.copyFile(path.join(EXAMPLE, file), path.join(release, file));
      // --wait-drained: the old workers' exits (after their current job) are what this test reads.
      const result = await d.cli(["deploy", "--release-path", release, "--wait-drained"], { timeoutMs: 60_000 });
      expect(result.code, result.stdout + result.stderr).toBe(0);
      return d.status();
    };
    const stats = async () => (await (await fetch(`http://127.0.0.1:${brokerPort}/stats`)).json()) as { enqueued: number; taken: number };

    const first = await deploy("r1");
    const ids = first.processes.map((p: { instanceId: string }) => p.instanceId).sort();
    expect(ids).toEqual(["broker", "scheduler", "web", "worker#0", "worker#1", "worker#2"]);
    const brokerPid = first.processes.find((p: { id: string }) => p.id === "broker").pid;

    // Jobs flow: through the web process into the broker, and out to the workers.
    const queued = await fetch(`http://127.0.0.1:${d.proxyPort}/jobs`, { method: "POST" });
    expect(queued.status).toBe(201);
    await until(async () => (await stats()).taken >= 3, 15_000, "workers taking jobs");

    const second = await deploy("r2");
    expect(second.activeRelease.id).toBe("r2");
    expect(second.processes.find((p: { id: string }) => p.id === "broker").pid).toBe(brokerPid);
    expect(second.processes.filter((p: { releaseId: string; state: string }) => p.releaseId === "r1" && p.state === "running")).toEqual([]);

    const eventsRun = await d.cli(["events", "--json", "--limit", "1000"]);
    expect(eventsRun.code, eventsRun.stderr).toBe(0);
    const events = JSON.parse(eventsRun.stdout).events as Event[];
    // Each old worker finished its job and exited by itself on SIGINT: exit code 0, no SIGKILL.
    const oldWorkerExits = events.filter((e) => e.type === "process-exited" && e.releaseId === "r1" && e.data?.instanceId?.startsWith("worker#"));
    expect(oldWorkerExits.map((e) => e.data?.code)).toEqual([0, 0, 0]);
    const logs = JSON.parse((await d.cli(["logs", "--json"])).stdout).lines as { instanceId: string; releaseId: string; line: string }[];
    const oldWorkerLines = logs.filter((l) => l.releaseId === "r1" && l.instanceId.startsWith("worker#")).map((l) => l.line);
    expect(oldWorkerLines.some((line) => /stopping after the current job/.test(line))).toBe(true);
    expect(oldWorkerLines.filter((line) => /exiting$/.test(line))).toHaveLength(3);

    // The new scheduler started only after the old one had exited.
    const oldSchedulerExit = events.find((e) => e.type === "process-exited" && e.releaseId === "r1" && e.data?.instanceId === "scheduler");
    const newSchedulerStart = events.find((e) => e.type === "process-started" && e.releaseId === "r2" && e.data?.instanceId === "scheduler");
    expect(oldSchedulerExit).toBeDefined();
    expect(newSchedulerStart!.seq).toBeGreaterThan(oldSchedulerExit!.seq);

    // The new release keeps working through the same broker.
    const before = (await stats()).taken;
    await sleep(500);
    await until(async () => (await stats()).taken > before, 15_000, "new workers taking jobs");
  }, 90_000);
});
