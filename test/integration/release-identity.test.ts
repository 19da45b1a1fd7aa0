// One id, one release: two revisions of one directory (or one explicit release.id used for two
// different releases) are two releases with distinct ids, the same in status, rollback targets,
// events, metrics and the state file — and after a daemon restart.
import { promises as fs } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { daemonEvents, freePort, startDaemon, until, statusWhen } from "../helpers/daemon.js";
import { get } from "../helpers/load.js";
import { httpGet, parsePrometheus } from "../helpers/operations.js";
import { STATE, Started, json, killDaemonHard, readState } from "../helpers/recovery.js";

const t = new Started();
afterEach(async () => {
  await t.cleanup();
});

const served = async (port: number) => JSON.parse((await get(port)).body) as { release: string };

describe("one id, one release", () => {
  it("two revisions of one directory get distinct ids everywhere, kept across a daemon restart", async () => {
    const metricsPort = await freePort();
    const d = await startDaemon({ extra: `statePath: ${STATE}\nmetrics: {host: 127.0.0.1, port: ${metricsPort}}`, proxy: { drainTimeoutMs: 1000 } });
    t.daemon = d;
    const dir = await d.release("20261201233517");
    expect((await d.cli(["deploy", "--release-path", dir, "--revision", "r1"])).code).toBe(0);
    const second = await d.cli(["deploy", "--release-path", dir, "--revision", "r2"]);
    expect(second.code, second.stderr).toBe(0);
    // The plan, the steps and the outcome name two releases, never "X → X".
    expect(second.stdout).toContain("wrote " + d.desiredPath + ": release 20261201233517-2");
    expect(second.stdout).toContain("switch traffic 20261201233517 → 20261201233517-2");
    expect(second.stdout).toMatch(/rolling out 20261201233517-2: 20261201233517 is already the id of another retained release \(revision r1\)/);
    expect(second.stdout).toMatch(/traffic switched to 20261201233517-2 from 20261201233517\n/);
    expect(second.stdout).toMatch(/✓ 20261201233517-2 (serves all new traffic|is active and converged)/);
    expect((await served(d.proxyPort)).release).toBe("20261201233517-2");

    const status = await statusWhen(d, (s) => s.converged, 15_000, "converged");
    expect(status.desired).toMatchObject({ releaseId: "20261201233517-2", revision: "r2" });
    expect(status.releases.map((r: { id: string; revision: string; state: string }) => `${r.id}:${r.revision}:${r.state}`)).toEqual(["20261201233517-2:r2:active", "20261201233517:r1:stopped"]);
    expect(status.processes.map((p: { releaseId: string }) => p.releaseId)).toEqual(["20261201233517-2"]);
    const started = daemonEvents(d, "rollout-started");
    expect(started.map((e) => e.releaseId)).toEqual(["20261201233517", "20261201233517-2"]);
    expect(started[1]!.data).toMatchObject({ baseId: "20261201233517", revision: "r2" });
    // Metrics: one series per release, under its own id.
    const { samples } = parsePrometheus((await httpGet(metricsPort, "/metrics")).body);
    const info = samples.filter((s) => s.name === "rollbridge_release_info").map((s) => `${s.labels.release}:${s.labels.state}`);
    expect(info.sort()).toEqual(["20261201233517-2:active", "20261201233517:stopped"]);
    // The state file holds both, under distinct ids, with what the desired state wrote.
    const state = await until(() => readState(d), 10_000, "state file");
    expect(state.releases.map((r: { id: string; revision: string; requestedRevision: string | null }) => `${r.id}:${r.revision}:${r.requestedRevision}`).sort()).toEqual(["20261201233517-2:r2:r2", "20261201233517:r1:r1"]);

    // Rollback targets use the ids: back to the first revision, and forward by the numbered id.
    const back = await d.cli(["rollback", "--json"]);
    expect(back.code, back.stderr).toBe(0);
    expect(JSON.parse(back.stdout)).toMatchObject({ fromReleaseId: "20261201233517-2", toReleaseId: "20261201233517", outcome: { outcome: "converged", releaseId: "20261201233517" } });
    expect((await served(d.proxyPort)).release).toBe("20261201233517");
    // The desired file names what the desired state had (path and revision), never the numbered id.
    expect(await fs.readFile(d.desiredPath, "utf8")).toBe(`release:\n  path: ${dir}\n  revision: r1\n`);
    const forward = await d.cli(["rollback", "--release-id", "20261201233517-2"]);
    expect(forward.code, forward.stderr).toBe(0);
    expect(forward.stdout).toMatch(/rolling back to 20261201233517-2 \(stopped\) from 20261201233517/);
    expect((await served(d.proxyPort)).release).toBe("20261201233517-2");

    // A daemon that dies and is started again takes the history back with the same ids.
    await until(async () => (await readState(d))?.activeKey === status.activeRelease.key, 10_000, "state file naming the active release");
    await killDaemonHard(d);
    expect((await d.cli(["recover", "--force"])).code).toBe(0);
    await t.daemonAgain(d);
    const after = await statusWhen(d, (s) => s.converged && s.activeRelease, 20_000, "the new daemon converged");
    expect(after.activeRelease).toMatchObject({ id: "20261201233517-2", key: status.activeRelease.key });
    expect(after.releases.map((r: { id: string }) => r.id).sort()).toEqual(["20261201233517", "20261201233517-2"]);
    expect((await served(d.proxyPort)).release).toBe("20261201233517-2");
  });

  it("an explicit release.id that names another retained release is numbered, and the desired file keeps the id as written", async () => {
    const d = await startDaemon({ proxy: { drainTimeoutMs: 1000 } });
    t.daemon = d;
    const a = await d.release("a");
    const b = await d.release("b");
    expect((await d.cli(["deploy", "--release-path", a, "--release-id", "shop"])).code).toBe(0);
    const r = await json(await d.cli(["deploy", "--release-path", b, "--release-id", "shop", "--json"]));
    expect(r).toMatchObject({ ok: true, releaseId: "shop-2", outcome: { outcome: "converged", releaseId: "shop-2" } });
    expect(r.changes.map((c: { message: string }) => c.message)).toContain("switch traffic shop → shop-2");
    expect(await fs.readFile(d.desiredPath, "utf8")).toBe(`release:\n  path: ${b}\n  id: shop\n`);
    expect((await served(d.proxyPort)).release).toBe("shop-2");
    const s = await d.status();
    expect(s.desired.releaseId).toBe("shop-2");
    expect(s.releases.map((x: { id: string; path: string }) => `${x.id}:${x.path}`)).toEqual([`shop-2:${b}`, `shop:${a}`]);
    // Rolling back to "shop" writes the id as the desired state had it.
    const back = await d.cli(["rollback", "--release-id", "shop"]);
    expect(back.code, back.stderr).toBe(0);
    expect(await fs.readFile(d.desiredPath, "utf8")).toBe(`release:\n  path: ${a}\n  id: shop\n`);
    expect((await served(d.proxyPort)).release).toBe("shop");
  });
});
