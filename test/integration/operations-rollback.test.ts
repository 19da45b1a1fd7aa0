// rollback and release retention through the real CLI against a real daemon.
import { promises as fs } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { get } from "../helpers/load.js";
import { deploy } from "../helpers/operations.js";

let daemon: TestDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

const served = async (d: TestDaemon) => JSON.parse((await get(d.proxyPort)).body).release as string;

describe("rollback", () => {
  it("after two deploys serves the first release again, through the desired file", async () => {
    daemon = await startDaemon({ proxy: { drainTimeoutMs: 1000 } });
    expect((await deploy(daemon, "v1", ["--revision", "r1"])).code).toBe(0);
    const v2 = await deploy(daemon, "v2", ["--revision", "r2"]);
    expect(v2.code, v2.stderr).toBe(0);
    expect(await served(daemon)).toBe("v2");

    const r = await daemon.cli(["rollback", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ ok: true, fromReleaseId: "v2", toReleaseId: "v1", toState: "stopped", releaseId: "v1", outcome: { outcome: "converged", releaseId: "v1" } });
    expect(doc.events.map((e: { type: string }) => e.type)).toContain("traffic-switched");
    expect(await served(daemon)).toBe("v1");

    // The desired file names the first release again (its resolved path, id and revision).
    const desired = await fs.readFile(daemon.desiredPath, "utf8");
    expect(desired).toMatch(/releases\/v1/);
    expect(desired).toMatch(/revision: r1/);
    // The rollback answers once v1 serves; v2's drain and stop go on in the background (no --wait-drained).
    const d = daemon;
    await until(async () => (await d.status()).releases.find((x: { id: string }) => x.id === "v2")?.state === "stopped", 15_000, "v2 stopped");
    const status = await daemon.status();
    expect(status.activeRelease).toMatchObject({ id: "v1", revision: "r1" });
    expect(status.releases.find((x: { id: string }) => x.id === "v2").state).toBe("stopped");
    // Rolled back to the same record (same generation), not a new release.
    expect(status.releases.filter((x: { id: string }) => x.id === "v1")).toHaveLength(1);

    // And forward again by id, human output.
    const forward = await daemon.cli(["rollback", "--release-id", "v2"]);
    expect(forward.code, forward.stderr).toBe(0);
    expect(forward.stdout).toMatch(/rolling back to v2 \(stopped\) from v1/);
    expect(forward.stdout).toMatch(/✓ v2 (serves all new traffic|is active and converged)/);
    expect(await served(daemon)).toBe("v2");
  });

  it("after a failed deploy goes back to the release that kept serving, not past it", async () => {
    daemon = await startDaemon({ proxy: { drainTimeoutMs: 1000 } });
    expect((await deploy(daemon, "v1")).code).toBe(0);
    expect((await deploy(daemon, "v2")).code).toBe(0);
    const servingPid = (await daemon.status()).processes.find((p: { releaseId: string; state: string }) => p.releaseId === "v2" && p.state === "running").pid;
    // v3 never becomes healthy: its rollout fails and v2 keeps serving.
    const v3 = await daemon.release("v3");
    const failed = await daemon.cli(["apply", "-f", "-", "--wait"], { input: `release: {path: ${v3}}\nenv: {HEALTH_FAIL: "1"}\n` });
    expect(failed.code).toBe(1);
    expect(await served(daemon)).toBe("v2");

    // Naming the serving release goes back to it ("already active" only once it is desired again).
    const named = await daemon.cli(["rollback", "--release-id", "v2", "--json"]);
    expect(named.code, named.stderr).toBe(0);
    expect(JSON.parse(named.stdout)).toMatchObject({ toReleaseId: "v2", toState: "active" });
    expect((await daemon.cli(["rollback", "--release-id", "v2"])).stderr).toMatch(/already active/);

    // v3 once more, then a plain rollback.
    expect((await daemon.cli(["apply", "-f", "-", "--wait"], { input: `release: {path: ${v3}}\nenv: {HEALTH_FAIL: "1"}\n` })).code).toBe(1);
    const r = await daemon.cli(["rollback", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ fromReleaseId: "v2", toReleaseId: "v2", toState: "active", outcome: { outcome: "converged", releaseId: "v2" } });
    expect(await fs.readFile(daemon.desiredPath, "utf8")).toMatch(/releases\/v2/);
    const status = await daemon.status();
    expect(status.activeRelease.id).toBe("v2");
    expect(status.desired.releaseId).toBe("v2");
    // The same process keeps serving: nothing was restarted or switched.
    expect(status.processes.find((p: { releaseId: string; state: string }) => p.releaseId === "v2" && p.state === "running").pid).toBe(servingPid);
    expect(await served(daemon)).toBe("v2");
  });

  it("explains why there is nothing to roll back to, an unknown id, and an already-active one", async () => {
    daemon = await startDaemon({ proxy: { drainTimeoutMs: 1000 } });
    const none = await daemon.cli(["rollback", "--json"]);
    expect(none.code).toBe(1);
    expect(JSON.parse(none.stdout).error.code).toBe("NO_PREVIOUS_RELEASE");

    expect((await deploy(daemon, "v1")).code).toBe(0);
    const only = await daemon.cli(["rollback"]);
    expect(only.code).toBe(1);
    expect(only.stderr).toMatch(/no previous release to roll back to/);
    expect(only.stderr).toMatch(/fix: deploy at least twice/);

    expect((await deploy(daemon, "v2")).code).toBe(0);
    const unknown = await daemon.cli(["rollback", "--release-id", "v9", "--json"]);
    expect(unknown.code).toBe(1);
    const err = JSON.parse(unknown.stdout).error;
    expect(err.code).toBe("UNKNOWN_RELEASE");
    expect(err.message).toMatch(/no retained release "v9"/);
    expect(err.fix).toMatch(/v1 \(stopped\)/);

    const active = await daemon.cli(["rollback", "--release-id", "v2"]);
    expect(active.code).toBe(1);
    expect(active.stderr).toMatch(/release v2 is already active/);
    // None of that changed what runs.
    expect(await served(daemon)).toBe("v2");
    expect((await daemon.status()).desired.releaseId).toBe("v2");
  });

  it("brings back a still-draining release with the processes it still has", async () => {
    daemon = await startDaemon({ proxy: { drainTimeoutMs: 30000 } });
    expect((await deploy(daemon, "v1")).code).toBe(0);
    const v1Pid = (await daemon.status()).processes[0].pid as number;
    // An open WebSocket keeps v1 draining.
    const ws = new WebSocket(`ws://127.0.0.1:${daemon.proxyPort}/socket`);
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    try {
      const v2 = await daemon.release("v2");
      expect((await daemon.cli(["apply", "--release-path", v2])).code).toBe(0);
      await until(async () => (await daemon!.status()).releases.find((r: { id: string }) => r.id === "v1")?.state === "draining", 15_000, "v1 draining");

      const r = await daemon.cli(["rollback", "--json", "--timeout", "20000"]);
      expect(r.code, r.stderr + r.stdout).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ toReleaseId: "v1", toState: "draining", outcome: { outcome: "converged" } });
      expect(await served(daemon)).toBe("v1");
      const status = await daemon.status();
      // The same process serves again: nothing was restarted.
      expect(status.processes.find((p: { releaseId: string; pid: number | null }) => p.releaseId === "v1" && p.pid !== null).pid).toBe(v1Pid);
      expect(ws.readyState).toBe(WebSocket.OPEN);
    } finally {
      ws.terminate();
    }
  });
});

describe("releaseRetention", () => {
  it("keeps the active release plus `keep` stopped ones", async () => {
    daemon = await startDaemon({ proxy: { drainTimeoutMs: 1000 }, extra: "releaseRetention: {keep: 2}" });
    for (const name of ["v1", "v2", "v3", "v4"]) {
      const r = await deploy(daemon, name);
      expect(r.code, r.stderr).toBe(0);
    }
    const releases = await until(
      async () => {
        const s = await daemon!.status();
        return s.releases.length === 3 ? s.releases : null;
      },
      20_000,
      "three retained releases",
    );
    expect(releases.map((r: { id: string; state: string }) => `${r.id}:${r.state}`)).toEqual(["v4:active", "v3:stopped", "v2:stopped"]);
    const gone = await daemon.cli(["rollback", "--release-id", "v1"]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/no retained release "v1"/);
  });
});
