// predeploy-cleanup end to end: orphans first, then the legacy supervisor's screens and
// processes — only while no Rollbridge release is active, never the CLI or Rollbridge's own.
import { spawnSync } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runCli, sleep, startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { get } from "../helpers/load.js";
import { deploy, isAlive, json, killDaemonHard, Started, WEB } from "../helpers/recovery.js";

let daemon: TestDaemon;
const t = new Started();
afterEach(() => t.cleanup());

describe("predeploy-cleanup", () => {
  async function legacySetup() {
    const dir = await t.tempDir("rb-legacy-");
    const marker = path.join(dir, "legacy-marker");
    const legacy = t.detached([process.execPath, "-e", "setInterval(()=>{},1e3)", marker, "--port", "8082"]);
    const other = t.detached([process.execPath, "-e", "setInterval(()=>{},1e3)", path.join(dir, "other-marker"), "--port", "8082"]);
    await until(async () => (await fs.readFile(`/proc/${legacy.pid}/cmdline`, "utf8").catch(() => "")).includes(marker), 5000, "legacy process up");
    return { dir, marker, legacy, other };
  }

  it("stops a legacy process matched by every includes string and leaves a non-matching one and itself alone", async () => {
    const { dir, marker, legacy, other } = await legacySetup();
    const configPath = path.join(dir, "rollbridge.yaml");
    await fs.mkdir(path.join(dir, "releases/v1"), { recursive: true });
    await fs.writeFile(
      configPath,
      [
        "application: legacy-test",
        `control: {path: ${path.join(dir, "control.sock")}}`,
        "processes:",
        "  - {id: web, policy: proxied, command: 'true', port: 20998}",
        "legacyTakeover:",
        "  processes:",
        `    - {name: legacy web, includes: ["${marker}", "--port 8082"]}`,
        // Matches the CLI's own command line (its --config argument): must never stop itself.
        `    - {name: self, includes: ["${configPath}"]}`,
      ].join("\n"),
    );
    const args = ["predeploy-cleanup", "--release-path", path.join(dir, "releases/v1"), "--config", configPath, "--json"];
    const dry = await runCli([...args, "--dry-run"]);
    expect(dry.code, dry.stderr).toBe(0);
    expect((await json(dry)).legacy.processes.map((p: { pid: number; outcome: string }) => [p.pid, p.outcome])).toEqual([[legacy.pid, "would-stop"]]);
    expect(isAlive(legacy.pid!)).toBe(true);

    const result = await runCli(args);
    expect(result.code, result.stderr).toBe(0);
    const report = await json(result);
    expect(report.legacy.skipped).toBeNull();
    expect(report.legacy.processes).toEqual([expect.objectContaining({ name: "legacy web", pid: legacy.pid, outcome: "exited", program: "node" })]);
    expect(JSON.stringify(report)).not.toContain("setInterval");
    expect(isAlive(legacy.pid!)).toBe(false);
    expect(isAlive(other.pid!)).toBe(true);

    const missing = await runCli(["predeploy-cleanup", "--release-path", path.join(dir, "nope"), "--config", configPath]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/not a directory/);
    expect((await runCli(["predeploy-cleanup", "--config", configPath])).code).toBe(2);
  });

  it("stops nothing of the legacy setup while a Rollbridge release is active, and never takes a process a Rollbridge daemon started for legacy", async () => {
    const { marker, legacy } = await legacySetup();
    // The managed web process carries a tag of this test only (never match other tests' processes).
    const tag = `${marker}-managed-web`;
    t.daemon = daemon = await startDaemon({
      processes: WEB("{}").replace("command: node {{APP}}", `command: node {{APP}} ${tag}`),
      // No state file: once the daemon dies, nothing records its web process (no orphan to recover).
      extra: `statePath: false\nlegacyTakeover:\n  processes:\n    - {name: legacy web, includes: ["${marker}", "--port 8082"]}\n    - {name: too broad, includes: ["${tag}"]}`,
    });
    await deploy(daemon, "v1");
    const result = await daemon.cli(["predeploy-cleanup", "--release-path", await daemon.release("v1"), "--json"]);
    expect(result.code, result.stderr).toBe(0);
    const report = await json(result);
    expect(report.legacy.skipped).toMatch(/v1 is active/);
    expect(report.legacy.processes).toEqual([]);
    await sleep(200);
    expect(isAlive(legacy.pid!)).toBe(true);
    expect((await get(daemon.proxyPort)).status).toBe(200);

    // The daemon dies (no statePath: its web process is lost track of). Its command line matches
    // "too broad", yet it carries ROLLBRIDGE_INSTANCE_ID: it is Rollbridge's, never legacy.
    const web = (await daemon.status()).processes[0].pid as number;
    await killDaemonHard(daemon);
    try {
      const after = await json(await daemon.cli(["predeploy-cleanup", "--release-path", await daemon.release("v1"), "--json"]));
      expect(after.legacy.skipped).toBeNull();
      expect(after.legacy.processes.map((p: { pid: number; outcome: string }) => [p.pid, p.outcome])).toEqual([[legacy.pid, "exited"]]);
      expect(isAlive(legacy.pid!)).toBe(false);
      expect(isAlive(web)).toBe(true);
    } finally {
      if (isAlive(web)) process.kill(-web, "SIGKILL");
    }
  });

  const hasScreen = spawnSync("screen", ["-v"]).error === undefined;
  if (!hasScreen) console.warn("screen is not installed (apt-get install -y screen): the screen takeover test is skipped");
  it.skipIf(!hasScreen)("quits a configured GNU screen session by name and leaves other sessions running", async () => {
    const dir = await t.tempDir("rb-screen-");
    const name = `rb-legacy-${process.pid}-${Date.now()}`;
    const keep = `${name}-other`;
    expect(spawnSync("screen", ["-dmS", name, "sleep", "600"]).status).toBe(0);
    expect(spawnSync("screen", ["-dmS", keep, "sleep", "600"]).status).toBe(0);
    const sessions = () => spawnSync("screen", ["-ls"], { encoding: "utf8" }).stdout;
    try {
      await until(() => sessions().includes(`.${name}\t`) && sessions().includes(`.${keep}\t`), 5000, "screen sessions up");
      await fs.mkdir(path.join(dir, "releases/v1"), { recursive: true });
      const configPath = path.join(dir, "rollbridge.yaml");
      await fs.writeFile(configPath, `application: screen-test\ncontrol: {path: ${path.join(dir, "control.sock")}}\nprocesses:\n  - {id: web, policy: proxied, command: 'true', port: 20997}\nlegacyTakeover:\n  screens: [${name}]\n`);
      const result = await runCli(["predeploy-cleanup", "--release-path", path.join(dir, "releases/v1"), "--config", configPath, "--json"]);
      expect(result.code, result.stderr).toBe(0);
      const report = await json(result);
      expect(report.legacy.screenInstalled).toBe(true);
      expect(report.legacy.screens).toEqual([expect.objectContaining({ name, outcome: "quit" })]);
      expect(sessions()).not.toContain(`.${name}\t`);
      expect(sessions()).toContain(`.${keep}\t`);
    } finally {
      spawnSync("screen", ["-S", name, "-X", "quit"]);
      spawnSync("screen", ["-S", keep, "-X", "quit"]);
    }
  });
});
