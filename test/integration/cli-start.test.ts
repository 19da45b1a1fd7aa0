// CLI start-up: each command loads only what it needs. `--version` loads no package at all;
// `status` against a daemon whose config file is the text it validated reads the daemon's
// record instead of parsing the file (no yaml, no zod); once the text differs it does the full
// load, and the daemon's record catches up with the new text.
import { execFile } from "node:child_process";
import { promises as fs, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, ROOT, startDaemon, until, type CliResult, type TestDaemon } from "../helpers/daemon.js";

const TRACE = path.join(ROOT, "test/fixtures/trace-packages.mjs");
/** What `status` and `--version` must never load: the parser, the schema, the proxy, the watcher, the process library. */
const HEAVY = ["yaml", "zod", "undici", "chokidar", "execa", "http-proxy-3", "p-queue"];

let daemon: TestDaemon;
beforeAll(async () => {
  daemon = await startDaemon();
}, 30_000);
afterAll(async () => {
  await daemon?.stop();
});

/** Runs the built CLI with the package tracer; resolves with its result and the packages it loaded. */
async function traced(args: string[], cwd: string): Promise<CliResult & { packages: string[] }> {
  const file = path.join(daemon.dir, `trace-${Math.random().toString(36).slice(2)}.txt`);
  await fs.writeFile(file, "");
  const result = await new Promise<CliResult>((resolve) => {
    execFile(process.execPath, ["--import", TRACE, CLI, ...args], { cwd, timeout: 30_000, env: { ...process.env, TRACE_PACKAGES_FILE: file } }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, stdout, stderr });
    });
  });
  const packages = [...new Set((await fs.readFile(file, "utf8")).split("\n").filter(Boolean))].sort();
  return { ...result, packages };
}

describe("CLI start", () => {
  it("prints the package version for --version without loading any package", async () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string };
    for (const flag of ["--version", "-v", "version"]) {
      const r = await traced([flag], daemon.dir);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(`${pkg.version}\n`);
      expect(r.stderr).toBe("");
      expect(r.packages).toEqual([]);
    }
  });

  it("answers status from the daemon's record of the unchanged config, loading none of the heavy packages", async () => {
    const r = await traced(["status", "--json", "--config", daemon.configPath], daemon.dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    const doc = JSON.parse(r.stdout) as { daemonPid: number; desired: { file: string } };
    expect(doc.daemonPid).toBe(daemon.child.pid);
    expect(doc.desired.file).toBe(daemon.desiredPath);
    for (const name of HEAVY) expect(r.packages).not.toContain(name);
    // The human table too (it escapes what the daemon sends, still without the heavy packages).
    const human = await traced(["status", "--config", daemon.configPath], daemon.dir);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain(`daemon pid ${daemon.child.pid}`);
    for (const name of HEAVY) expect(human.packages).not.toContain(name);
  });

  it("deploys with apply --release-path --wait and apply -f FILE without the parser or the schema (the daemon parses)", async () => {
    const v1 = await daemon.release("v1");
    const deploy = await traced(["apply", "--release-path", v1, "--revision", "r1", "--wait", "--config", daemon.configPath], daemon.dir);
    expect(deploy.code, deploy.stderr).toBe(0);
    expect(deploy.stdout).toContain("release v1");
    for (const name of HEAVY) expect(deploy.packages).not.toContain(name);
    const file = path.join(daemon.dir, "next.yaml");
    await fs.writeFile(file, `release: {path: ${await daemon.release("v2")}}\n`);
    const fromFile = await traced(["apply", "-f", file, "--wait", "--config", daemon.configPath], daemon.dir);
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(fromFile.stdout).toContain("release v2");
    for (const name of HEAVY) expect(fromFile.packages).not.toContain(name);
    expect((await daemon.status()).activeRelease.id).toBe("v2");
  });

  it("loads the config in full when its text is not what the daemon validated, and is fast again once the daemon has read it", async () => {
    const original = await fs.readFile(daemon.configPath, "utf8");
    // Other text, the same config: the daemon's watcher reads it and records the new fingerprint.
    await fs.writeFile(daemon.configPath, `# edited while the daemon runs\n${original}`);
    const first = await traced(["status", "--json", "--config", daemon.configPath], daemon.dir);
    expect(first.code, first.stderr).toBe(0);
    expect((JSON.parse(first.stdout) as { daemonPid: number }).daemonPid).toBe(daemon.child.pid);
    const fast = await until(
      async () => {
        const r = await traced(["status", "--json", "--config", daemon.configPath], daemon.dir);
        expect(r.code, r.stderr).toBe(0);
        expect((JSON.parse(r.stdout) as { daemonPid: number }).daemonPid).toBe(daemon.child.pid);
        return r.packages.includes("yaml") ? null : r;
      },
      20_000,
      "status without the YAML parser after the daemon read the edited config",
    );
    for (const name of HEAVY) expect(fast.packages).not.toContain(name);
  });

  it("reports a broken config as before: a warning, then the daemon's answer through the socket the file names", async () => {
    const good = await fs.readFile(daemon.configPath, "utf8");
    try {
      await fs.writeFile(daemon.configPath, good.replace(/^resyncIntervalMs: .*$/m, "resyncIntervalMs: soon"));
      const r = await traced(["status", "--json", "--config", daemon.configPath], daemon.dir);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain("warning: the config file cannot be used");
      expect(r.stderr).toContain("resyncIntervalMs");
      expect((JSON.parse(r.stdout) as { daemonPid: number }).daemonPid).toBe(daemon.child.pid);
    } finally {
      await fs.writeFile(daemon.configPath, good);
    }
  });
});
