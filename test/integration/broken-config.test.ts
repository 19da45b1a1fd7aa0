// A broken config on disk never locks the CLI out (issue 13, item 1): after an invalid config is
// saved while the daemon runs, the commands that only need the daemon still reach it — through
// the socket the file still names, or, when the file does not parse at all, through the record
// the daemon keeps for its config path — print the problem as a warning on stderr (never in
// --json stdout), and work. When the file is valid again the daemon says so.
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { writeConfigRecord } from "../../src/config/config-record.js";
import { configRecordPath } from "../../src/config/runtime-dir.js";
import { daemonEvents, startDaemon, until, waitForExit, type TestDaemon } from "../helpers/daemon.js";
import { get } from "../helpers/load.js";

let daemon: TestDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

async function deployed(): Promise<{ d: TestDaemon; good: string }> {
  const d = await startDaemon();
  daemon = d;
  const v1 = await d.release("v1");
  const deploy = await d.cli(["deploy", "--release-path", v1]);
  expect(deploy.code, deploy.stderr).toBe(0);
  return { d, good: await fs.readFile(d.configPath, "utf8") };
}

/** Saves `text` as the config and waits for the daemon to report that it could not reload it. */
async function breakConfig(d: TestDaemon, text: string): Promise<void> {
  const before = daemonEvents(d, "config-reload-failed").length;
  await fs.writeFile(d.configPath, text);
  await until(() => daemonEvents(d, "config-reload-failed").length > before, 10_000, "config-reload-failed");
}

/** Runs a command that must work despite the broken config, with the problem on stderr only. */
async function works(d: TestDaemon, args: string[], problem: RegExp): Promise<string> {
  const result = await d.cli(args);
  expect(result.code, `${args.join(" ")}: ${result.stderr}`).toBe(0);
  expect(result.stderr).toMatch(/warning: the config file cannot be used/);
  expect(result.stderr).toMatch(problem);
  if (args.includes("--json")) expect(result.stdout).not.toMatch(/warning/);
  return result.stdout;
}

describe("a broken config on disk", () => {
  it("schema-invalid but naming its socket: status, logs, events, deploy and rollback still work, with a warning; a fixed file is reported", async () => {
    const { d, good } = await deployed();
    await breakConfig(d, good.replace("policy: proxied", "policy: bogus"));
    const problem = /policy/;

    const status = JSON.parse(await works(d, ["status", "--json"], problem));
    expect(status.activeRelease.id).toBe("v1");
    expect(JSON.parse(await works(d, ["logs", "--json"], problem)).lines.length).toBeGreaterThan(0);
    const events = JSON.parse(await works(d, ["events", "--json"], problem)).events as { type: string }[];
    expect(events.some((e) => e.type === "config-reload-failed")).toBe(true);
    await works(d, ["events"], problem);

    // The daemon keeps its last good config: a deploy and a rollback through it work.
    const v2 = await d.release("v2");
    await works(d, ["deploy", "--release-path", v2], problem);
    expect(JSON.parse((await get(d.proxyPort)).body).release).toBe("v2");
    await works(d, ["rollback"], problem);
    expect(JSON.parse((await get(d.proxyPort)).body).release).toBe("v1");

    // Saved back unchanged from the running config: still reported, since the last reload had failed.
    const reloaded = daemonEvents(d, "config-reloaded").length;
    await fs.writeFile(d.configPath, good);
    await until(() => daemonEvents(d, "config-reloaded").length > reloaded, 10_000, "config-reloaded after the fix");
    const clean = await d.cli(["status"]);
    expect(clean.code).toBe(0);
    expect(clean.stderr).toBe("");
  });

  it("unparsable: the CLI finds the daemon through the record it keeps for the config path; shutdown stops it", async () => {
    const { d } = await deployed();
    await breakConfig(d, "processes: [\n  - id: web\n    policy: {{{\n");
    const problem = /cannot parse/;

    const status = JSON.parse(await works(d, ["status", "--json"], problem));
    expect(status.activeRelease.id).toBe("v1");
    expect(status.daemonPid).toBe(d.child.pid);
    await works(d, ["logs"], problem);
    await works(d, ["restart", "--process", "web"], problem);

    await works(d, ["shutdown"], problem);
    expect(await waitForExit(d.child, 20_000)).toBe(true);
    // With the daemon gone (and its record removed), the config's own error is what the CLI reports.
    const after = await d.cli(["status", "--json"]);
    expect(after.code).not.toBe(0);
    expect(JSON.parse(after.stdout).error.code).toBe("CONFIG_LOAD_FAILED");
  });

  it("a starting daemon records its config path and removes records of daemons that are gone", async () => {
    // A record left by a daemon that was SIGKILLed: its pid no longer exists.
    const dead = spawn(process.execPath, ["-e", ""]);
    await new Promise((resolve) => dead.once("exit", resolve));
    const ghostConfig = path.join("/nonexistent", `ghost-${dead.pid}`, "rollbridge.yaml");
    const ghost = await writeConfigRecord({ configPath: ghostConfig, socket: "/nonexistent/control.sock", desiredPath: "/nonexistent/desired.yaml", application: "ghost", pid: dead.pid! });
    await fs.access(ghost);
    const d = await startDaemon();
    daemon = d;
    const own = JSON.parse(await until(() => fs.readFile(configRecordPath(d.configPath), "utf8"), 10_000, "the daemon's record"));
    expect(own).toMatchObject({ configPath: d.configPath, socket: d.socket, pid: d.child.pid });
    expect((await fs.stat(configRecordPath(d.configPath))).mode & 0o777).toBe(0o644);
    await until(
      async () =>
        !(await fs.access(ghost).then(
          () => true,
          () => false,
        )),
      10_000,
      "the stale record removed",
    );
    expect((await d.cli(["shutdown"])).code).toBe(0);
    expect(await waitForExit(d.child, 20_000)).toBe(true);
    await expect(fs.access(configRecordPath(d.configPath))).rejects.toThrow();
  });
});
