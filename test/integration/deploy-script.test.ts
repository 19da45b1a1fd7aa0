// examples/deploy.sh against a real daemon: tarballs unpacked into timestamped release
// directories, deployed with their revision, old directories pruned, a broken release refused.
import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CLI, ROOT, startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { get } from "../helpers/load.js";

const SCRIPT = path.join(ROOT, "examples/deploy.sh");

let daemon: TestDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

function runScript(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("bash", [SCRIPT, ...args], { env: { ...process.env, ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

async function tarball(dir: string, name: string, serverSource: string): Promise<string> {
  const src = path.join(dir, `src-${name}`);
  await fs.mkdir(src, { recursive: true });
  await fs.writeFile(path.join(src, "server.mjs"), serverSource);
  const file = path.join(dir, `${name}.tar.gz`);
  await new Promise<void>((resolve, reject) => execFile("tar", ["-czf", file, "-C", src, "."], (error) => (error ? reject(error) : resolve())));
  return file;
}

describe("examples/deploy.sh", () => {
  it("deploys each tarball as a timestamped release, keeps the newest KEEP_RELEASES directories, and refuses a broken release", async () => {
    daemon = await startDaemon({
      processes: `  - id: web
    policy: proxied
    command: node server.mjs
    port: {from: {{RANGE_FROM}}, to: {{RANGE_TO}}}
    health: {path: /ping, intervalMs: 50, timeoutMs: 3000}
    env: {BOOT_DELAY_MS: "50"}
    gracefulStopMs: 3000`,
    });
    const d = daemon;
    const appRoot = path.join(d.dir, "app");
    const env = { APP_ROOT: appRoot, ROLLBRIDGE_CONFIG: d.configPath, ROLLBRIDGE: CLI, KEEP_RELEASES: "2" };
    const good = await tarball(d.dir, "good", await fs.readFile(path.join(ROOT, "examples/app/server.mjs"), "utf8"));

    const active: string[] = [];
    for (const revision of ["r1", "r2", "r3"]) {
      const result = await runScript([good, revision], env);
      expect(result.code, result.stdout + result.stderr).toBe(0);
      const status = await d.status();
      expect(status.activeRelease.revision).toBe(revision);
      expect(status.activeRelease.path.startsWith(path.join(appRoot, "releases"))).toBe(true);
      expect(status.activeRelease.id).toMatch(/^\d{14}$/);
      active.push(status.activeRelease.path);
      expect(JSON.parse((await get(d.proxyPort, "/")).body).revision).toBe(revision);
    }
    // The first release directory is gone, the newest two are kept, nothing half-unpacked is left.
    expect((await fs.readdir(path.join(appRoot, "releases"))).sort()).toEqual(active.slice(1).map((p) => path.basename(p)));

    const broken = await tarball(d.dir, "broken", "process.exit(3);\n");
    const refused = await runScript([broken, "r4"], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/previous release keeps serving/);
    const status = await d.status();
    expect(status.activeRelease.revision).toBe("r3");
    // A failed deploy prunes nothing.
    expect((await fs.readdir(path.join(appRoot, "releases"))).length).toBe(3);

    const usage = await runScript([], env);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/usage:/);
  }, 90_000);
});
