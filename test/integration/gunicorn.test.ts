// A real non-Node app: the gunicorn example (examples/gunicorn) deployed twice under keep-alive
// load, with the example's own process definition. Skips, saying why, without gunicorn.
import { execFileSync } from "node:child_process";
import { promises as fs, readFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { daemonEvents, isAlive, ROOT, startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { get, startLoad } from "../helpers/load.js";

const EXAMPLE = path.join(ROOT, "examples/gunicorn");

function gunicornProblem(): string | null {
  try {
    execFileSync("/bin/sh", ["-c", "command -v gunicorn"], { stdio: "pipe" });
    return null;
  } catch {
    return "gunicorn is not on PATH (install it with `apt-get install gunicorn`, as .ci/run does when it runs as root)";
  }
}

/** The example's web process, with its port range swapped for the test's own block (and `extra` fields). */
function exampleProcess(extra: Record<string, unknown> = {}): string {
  const config = parse(readFileSync(path.join(EXAMPLE, "rollbridge.yaml"), "utf8")) as { processes: Record<string, unknown>[] };
  const { port: _port, health, ...web } = config.processes.find((p) => p["policy"] === "proxied")!;
  const entry = { ...web, health: { ...(health as object), intervalMs: 50 }, ...extra };
  const lines = stringify([entry], { lineWidth: 0 })
    .trimEnd()
    .split("\n")
    .map((line) => `  ${line}`);
  return [...lines, "    port: {from: {{RANGE_FROM}}, to: {{RANGE_TO}}}"].join("\n");
}

/** Pids whose process group is `pgid`, read from /proc (a gunicorn master leads its workers' group). */
async function groupMembers(pgid: number): Promise<number[]> {
  const members: number[] = [];
  for (const entry of await fs.readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await fs.readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[2]) === pgid) members.push(Number(entry));
  }
  return members;
}

const problem = gunicornProblem();
let daemon: TestDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

describe("a gunicorn app", () => {
  if (problem !== null) {
    console.warn(`gunicorn test skipped: ${problem}`);
    it.skip(`deploys twice under keep-alive load with zero failed requests (skipped: ${problem})`, () => undefined);
    return;
  }

  it("deploys twice under keep-alive load with zero failed requests and stops each old master gracefully", async () => {
    daemon = await startDaemon({ processes: exampleProcess(), proxy: { drainTimeoutMs: 10_000, forceStopTimeoutMs: 10_000 } });
    const d = daemon;
    const deploy = async (name: string) => {
      const release = await d.release(name);
      await fs.copyFile(path.join(EXAMPLE, "app.py"), path.join(release, "app.py"));
      const result = await d.cli(["deploy", "--release-path", release, "--revision", `rev-${name}`], { timeoutMs: 60_000 });
      expect(result.code, result.stdout + result.stderr).toBe(0);
      return (await d.status()).processes.find((p: { releaseId: string }) => p.releaseId === name) as { pid: number };
    };

    const v1 = await deploy("v1");
    expect(JSON.parse((await get(d.proxyPort, "/hello")).body)).toMatchObject({ release: "v1", revision: "rev-v1" });

    const load = startLoad(d.proxyPort, { connections: 16 });
    await new Promise((r) => setTimeout(r, 500));
    const v2 = await deploy("v2");
    await new Promise((r) => setTimeout(r, 500));
    await deploy("v3");
    await new Promise((r) => setTimeout(r, 500));
    const stats = await load.stop();

    expect(stats.errors).toEqual([]);
    expect(stats.failed + stats.non2xx).toBe(0);
    expect(stats.ok).toBeGreaterThan(100);
    expect(Object.keys(stats.byRelease).sort()).toEqual(["v1", "v2", "v3"]);

    // Each replaced master ran its graceful stop (SIGTERM → exit 0, not SIGKILL) and took its workers with it.
    // deploy returns at the switch, so v2 may still be draining: wait until both old releases have stopped.
    for (const name of ["v1", "v2"]) {
      await until(async () => (await d.status()).releases.find((r: { id: string; state: string }) => r.id === name && r.state === "stopped"), 30_000, `${name} stopped`);
    }
    const events = JSON.parse((await d.cli(["events", "--json", "--limit", "1000"])).stdout).events as { type: string; releaseId?: string; data?: { code: number | null; signal: string | null } }[];
    for (const [name, proc] of [
      ["v1", v1],
      ["v2", v2],
    ] as const) {
      const exit = events.find((e) => e.type === "process-exited" && e.releaseId === name);
      expect(exit?.data, `${name} exit`).toMatchObject({ code: 0, signal: null });
      expect(isAlive(proc.pid)).toBe(false);
      expect(await groupMembers(proc.pid)).toEqual([]);
    }
    expect((await d.status()).activeRelease.id).toBe("v3");
  }, 120_000);

  it("stops a replaced release through the master alone: gunicorn's own graceful shutdown, no warning per worker", async () => {
    // The example's stopSignalTarget: process, with gunicorn's log kept in a file per release.
    daemon = await startDaemon({ processes: exampleProcess({ logFile: { path: "gunicorn-{{releaseId}}.log" } }), proxy: { drainTimeoutMs: 10_000 } });
    const d = daemon;
    for (const name of ["v1", "v2"]) {
      const release = await d.release(name);
      await fs.copyFile(path.join(EXAMPLE, "app.py"), path.join(release, "app.py"));
      const result = await d.cli(["deploy", "--release-path", release], { timeoutMs: 60_000 });
      expect(result.code, result.stdout + result.stderr).toBe(0);
    }
    await until(async () => (await d.status()).releases.find((r: { id: string; state: string }) => r.id === "v1" && r.state === "stopped"), 30_000, "v1 stopped");

    const log = (await fs.readFile(path.join(d.dir, "gunicorn-v1.log"), "utf8")).split("\n");
    const term = log.findIndex((line) => line.includes("Handling signal: term"));
    expect(term, log.join("\n")).toBeGreaterThanOrEqual(0);
    expect(log.some((line) => line.includes("Shutting down: Master"))).toBe(true);
    // Both workers ran their own graceful exit, told by the master; none was signalled behind its back.
    expect(log.filter((line) => line.includes("Worker exiting")).length).toBe(2);
    expect(log.filter((line) => /Worker .*(terminated due to signal|was sent SIG)/.test(line))).toEqual([]);
    expect(log.slice(term).filter((line) => line.includes("Booting worker"))).toEqual([]);
    const exit = daemonEvents(d, "process-exited").find((e) => e.releaseId === "v1");
    expect(exit?.data).toMatchObject({ code: 0, signal: null });
  }, 120_000);
});
