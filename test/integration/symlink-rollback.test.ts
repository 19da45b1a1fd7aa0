// Symlink workflows keep following the link: `rollback` and a `--timeout` abandon re-point a
// `current` symlink the desired file follows (atomically) and leave the file naming the link,
// so later flips are still rolled out; `deploy --release-path DIR` over such a file warns.
import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { get, startLoad, type Load } from "../helpers/load.js";
import { webProcess } from "../helpers/test-config.js";

let daemon: TestDaemon | null = null;
let load: Load | null = null;
afterEach(async () => {
  await load?.stop();
  load = null;
  await daemon?.stop();
  daemon = null;
});

// The web process of a release directory holding a SLOW file never gets to listen in time.
const PROCESSES = webProcess({ command: "sh -c 'if [ -f SLOW ]; then export BOOT_DELAY_MS=60000; fi; exec node {{APP}}'" });

function sh(script: string, cwd: string): Promise<void> {
  return new Promise((resolve, reject) => execFile("sh", ["-c", script], { cwd, timeout: 20_000 }, (error, _out, stderr) => (error ? reject(new Error(`${error.message}: ${stderr}`)) : resolve())));
}

/** The Capistrano layout under <dir>/app: releases/v1..v3 and current → releases/v1 (relative). */
async function capistrano(d: TestDaemon): Promise<string> {
  const app = path.join(d.dir, "app");
  for (const v of ["v1", "v2", "v3"]) await fs.mkdir(path.join(app, "releases", v), { recursive: true });
  await fs.symlink("releases/v1", path.join(app, "current"));
  return app;
}

/** Flips current atomically (mv -T), to a relative target or, with `absolute`, an absolute one. */
const flip = (app: string, to: string, absolute = false) => sh(`ln -s ${absolute ? path.join(app, "releases", to) : `releases/${to}`} .current.tmp && mv -T .current.tmp current`, app);

function activeIs(d: TestDaemon, id: string, timeoutMs = 20_000): Promise<any> {
  return until(
    async () => {
      const s = await d.status();
      return s.converged && s.activeRelease?.id === id && s.desired.releaseId === id ? s : null;
    },
    timeoutMs,
    `${id} active and converged`,
  );
}

const served = async (d: TestDaemon) => JSON.parse((await get(d.proxyPort)).body).release as string;

describe("symlink workflows keep following the link", () => {
  it("rollback re-points current (keeping it relative), the desired file keeps naming it, and a later flip is rolled out", async () => {
    daemon = await startDaemon({ processes: PROCESSES, proxy: { drainTimeoutMs: 1000 } });
    const d = daemon;
    const app = await capistrano(d);
    await fs.writeFile(d.desiredPath, "release:\n  path: app/current\n"); // relative to desired.yaml
    await activeIs(d, "v1");
    load = startLoad(d.proxyPort, { connections: 8 });
    await flip(app, "v2");
    await activeIs(d, "v2");

    const r = await d.cli(["rollback", "--json"]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ ok: true, fromReleaseId: "v2", toReleaseId: "v1", link: { path: path.join(app, "current"), target: "releases/v1" }, outcome: { outcome: "converged" } });
    expect(await fs.readlink(path.join(app, "current"))).toBe("releases/v1");
    // The file still names the link, exactly as it was written (no resolved path, no id).
    expect(await fs.readFile(d.desiredPath, "utf8")).toBe("release:\n  path: app/current\n");
    const back = await activeIs(d, "v1");
    expect(back.desired).toMatchObject({ requestedPath: path.join(app, "current"), path: path.join(app, "releases", "v1") });
    expect(await served(d)).toBe("v1");
    // No temp link left beside it.
    expect((await fs.readdir(app)).sort()).toEqual(["current", "releases"]);

    // The point of it all: the next flip is still followed.
    await flip(app, "v3");
    await activeIs(d, "v3");
    expect(await served(d)).toBe("v3");
    const stats = await load.stop();
    load = null;
    expect(stats.errors).toEqual([]);
    expect(stats.failed + stats.non2xx).toBe(0);
    expect(Object.keys(stats.byRelease).sort()).toEqual(["v1", "v2", "v3"]);
  });

  it("an absolute link is re-pointed with an absolute target, and rollback --release-id picks any retained release", async () => {
    daemon = await startDaemon({ processes: PROCESSES, proxy: { drainTimeoutMs: 1000 } });
    const d = daemon;
    const app = await capistrano(d);
    const current = path.join(app, "current");
    await fs.unlink(current);
    await fs.symlink(path.join(app, "releases", "v1"), current);
    expect((await d.cli(["deploy", "--release-path", current])).code).toBe(0);
    await flip(app, "v2", true);
    await activeIs(d, "v2");
    await flip(app, "v3", true);
    await activeIs(d, "v3");
    const r = await d.cli(["rollback", "--release-id", "v1"]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toContain(`re-pointed ${current} → ${path.join(app, "releases", "v1")} (the desired file keeps following it)`);
    expect(await fs.readlink(current)).toBe(path.join(app, "releases", "v1"));
    expect(await fs.readFile(d.desiredPath, "utf8")).toBe(`release:\n  path: ${current}\n`);
    await activeIs(d, "v1");
  });

  it("a --timeout abandon points current back at the release that kept serving", async () => {
    daemon = await startDaemon({ processes: PROCESSES, proxy: { drainTimeoutMs: 1000, healthTimeoutMs: 60000 } });
    const d = daemon;
    const app = await capistrano(d);
    const current = path.join(app, "current");
    await fs.writeFile(path.join(app, "releases", "v2", "SLOW"), "");
    expect((await d.cli(["deploy", "--release-path", current])).code).toBe(0);
    await flip(app, "v2");
    const r = await d.cli(["deploy", "--release-path", current, "--timeout", "3000"]);
    expect(r.code).toBe(124);
    expect(r.stderr).toMatch(/timeout: rollout of v2 abandoned .*the desired state is back to v1, which kept serving \(.*current points at it again\)/);
    expect(await fs.readlink(current)).toBe("releases/v1");
    expect(await fs.readFile(d.desiredPath, "utf8")).toBe(`release:\n  path: ${current}\n`);
    const s = await activeIs(d, "v1");
    expect(s.releases.find((x: { id: string }) => x.id === "v2").state).toBe("failed");
    expect(await served(d)).toBe("v1");
    // And the link is still followed afterwards.
    await flip(app, "v3");
    await activeIs(d, "v3");
  });

  it("deploy --release-path DIR over a link-following desired file warns that it stops following the link", async () => {
    daemon = await startDaemon({ processes: PROCESSES, proxy: { drainTimeoutMs: 1000 } });
    const d = daemon;
    const app = await capistrano(d);
    const current = path.join(app, "current");
    expect((await d.cli(["deploy", "--release-path", current])).code).toBe(0);
    const v2 = path.join(app, "releases", "v2");
    const r = await d.cli(["deploy", "--release-path", v2]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`warning: the desired file followed the symlink ${current}; it now names ${v2} directly, so later flips of current are not followed`);
    expect(r.stderr).toContain(`to keep following current, flip the link instead (ln -s ${v2} ${path.join(app, ".current.tmp")} && mv -T ${path.join(app, ".current.tmp")} ${current}) or deploy --release-path ${current}`);
    // With --json the warning is in the document; going back to the link warns about nothing.
    const json = await d.cli(["deploy", "--release-path", current, "--json"]);
    expect(JSON.parse(json.stdout).warnings).toEqual([]);
    const again = await d.cli(["apply", "--release-path", v2, "--json"]);
    expect(JSON.parse(again.stdout).warnings).toEqual([expect.objectContaining({ message: expect.stringContaining(`followed the symlink ${current}`) })]);
  });
});
