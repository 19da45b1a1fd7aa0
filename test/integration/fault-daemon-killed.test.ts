// The daemon SIGKILLed in the middle of a rollout: its processes are orphaned (killed here by the
// pids status reported), and a new daemon started on the same config converges to the desired
// file on its own and serves it.
import { spawn, type ChildProcess } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { CLI, isAlive, startDaemon, until, waitForExit, type TestDaemon } from "../helpers/daemon.js";
import { get } from "../helpers/load.js";
import { quickStatus } from "../helpers/raw.js";

let daemon: TestDaemon | null = null;
let successor: ChildProcess | null = null;
afterEach(async () => {
  if (successor && successor.exitCode === null && successor.signalCode === null) {
    successor.kill("SIGTERM");
    if (!(await waitForExit(successor, 10_000))) successor.kill("SIGKILL");
  }
  successor = null;
  await daemon?.stop();
  daemon = null;
});

describe("daemon killed mid-rollout", () => {
  it("converges to the desired release after a restart on the same config", async () => {
    daemon = await startDaemon({ proxy: { drainTimeoutMs: 1000 } });
    const d = daemon;
    const v1 = await d.release("v1");
    expect((await d.cli(["apply", "--release-path", v1, "--wait"])).code).toBe(0);

    // v2 boots slowly: kill the daemon while it is starting.
    const v2 = await d.release("v2");
    const applied = await d.cli(["apply", "-f", "-"], { input: `release: {path: ${v2}}\nenv: {BOOT_DELAY_MS: "1500"}\n` });
    expect(applied.code, applied.stderr).toBe(0);
    const starting = await until(
      async () => {
        const s = await quickStatus(d.socket);
        const proc = s.processes.find((p: { releaseId: string; pid: number | null }) => p.releaseId === "v2" && p.pid !== null);
        return proc && s.activeRelease?.id === "v1" ? s : null;
      },
      10_000,
      "v2 starting while v1 is active",
    );
    const orphans: number[] = starting.processes.map((p: { pid: number | null }) => p.pid).filter((pid: number | null): pid is number => pid !== null);
    expect(orphans).toHaveLength(2);

    d.child.kill("SIGKILL");
    expect(await waitForExit(d.child, 5000)).toBe(true);
    // Nothing cleaned up after the daemon: its processes still run.
    expect(orphans.every(isAlive)).toBe(true);
    for (const pid of orphans) process.kill(-pid, "SIGKILL");
    await until(() => orphans.every((pid) => !isAlive(pid)), 5000, "orphans gone");

    successor = spawn(process.execPath, [CLI, "daemon", "--config", d.configPath], { cwd: d.dir, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    successor.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const next = successor;
    const converged = await until(
      async () => {
        if (next.exitCode !== null) throw new Error(`the new daemon exited: ${stderr}`);
        const s = await quickStatus(d.socket).catch(() => null);
        return s?.converged && s.activeRelease?.id === "v2" ? s : null;
      },
      20_000,
      "the new daemon to converge to v2",
    );
    expect(converged.daemonPid).toBe(next.pid);
    const res = await get(d.proxyPort);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).release).toBe("v2");
    expect(converged.processes.filter((p: { pid: number | null }) => p.pid !== null).map((p: { releaseId: string }) => p.releaseId)).toEqual(["v2"]);
  });
});
