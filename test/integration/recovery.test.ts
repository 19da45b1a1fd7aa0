// Crash recovery end to end: a real daemon SIGKILLed, its processes found by pid *and* start
// time, stopped only when asked, a new daemon converging around them, and no secret on disk.
import { spawnSync, type ChildProcess } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { portRange, runCli, sleep, startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { get } from "../helpers/load.js";
import { childPidOf, deploy, isAlive, json, killDaemonHard, Started, startTimeOf, STATE, stateLists, WEB } from "../helpers/recovery.js";

let daemon: TestDaemon;
const t = new Started();
afterEach(() => t.cleanup());

describe("crash recovery", () => {
  it("leaves the web process running when the daemon is SIGKILLed; recover lists it, touches nothing without --force, and --force stops its whole group", async () => {
    t.daemon = daemon = await startDaemon({ processes: WEB(`{SPAWN_CHILD: "1"}`), extra: `statePath: ${STATE}` });
    await deploy(daemon, "v1");
    const web = (await daemon.status()).processes[0];
    const child = await childPidOf(daemon);
    const state = await stateLists(daemon, web.pid);
    expect(state.processes[0]).toMatchObject({ instanceId: "web", releaseId: "v1", pid: web.pid, pgid: web.pid, port: web.port });
    expect(state.processes[0].startTime).toBe(await startTimeOf(web.pid));

    await killDaemonHard(daemon);
    await sleep(300);
    expect(isAlive(web.pid)).toBe(true);
    expect(isAlive(child)).toBe(true);

    const doctor = await daemon.cli(["doctor", "--json"]);
    if (/unknown command/.test(doctor.stderr)) {
      console.warn("doctor is not built yet: its orphan assertion is skipped");
    } else {
      const check = (await json(doctor)).checks.find((c: { name: string }) => c.name === "orphans");
      expect(check.ok).toBe(false);
      expect(check.message).toContain(`pid ${web.pid}`);
    }

    const listed = await daemon.cli(["recover", "--json"]);
    expect(listed.code, listed.stderr).toBe(0);
    const listing = await json(listed);
    expect(listing.daemon).toBeNull();
    expect(listing.orphans).toEqual([expect.objectContaining({ instanceId: "web", processId: "web", releaseId: "v1", pid: web.pid, pgid: web.pid, port: web.port })]);
    expect(Object.keys(listing.orphans[0]).sort()).toEqual(["detectedAt", "instanceId", "pgid", "pid", "port", "processId", "releaseId", "startTime", "uid"]);
    // The uid the process ran as is recorded: only processes of that uid are ever signalled.
    expect(listing.orphans[0].uid).toBe(process.getuid!());
    expect(listing.stopped).toEqual([]);
    const human = await daemon.cli(["recover"]);
    expect(human.stdout).toMatch(/1 orphan/);
    expect(human.stdout).toMatch(/recover --force/);
    await sleep(200);
    expect(isAlive(web.pid)).toBe(true);
    expect(isAlive(child)).toBe(true);

    const forced = await daemon.cli(["recover", "--force", "--json"]);
    expect(forced.code, forced.stderr).toBe(0);
    const report = (await json(forced)).stopped;
    expect(report).toHaveLength(1);
    expect(report[0]).toMatchObject({ pid: web.pid, outcome: "exited", signal: "SIGTERM" });
    expect(report[0].members).toBe(2);
    expect(isAlive(web.pid)).toBe(false);
    expect(isAlive(child)).toBe(false);
    expect((await json(await daemon.cli(["recover", "--json"]))).orphans).toEqual([]);

    // A new daemon converges to the desired file on its own, and a clean shutdown removes the snapshot.
    await t.daemonAgain(daemon);
    const served = await until(
      async () => {
        const res = await get(daemon!.proxyPort);
        return res.status === 200 ? JSON.parse(res.body) : null;
      },
      15_000,
      "the new daemon serving v1",
    );
    expect(served.release).toBe("v1");
    const status = await daemon.status();
    expect(status.orphans).toEqual([]);
    await stateLists(daemon, served.pid);
    const shutdown = await daemon.cli(["shutdown"]);
    expect(shutdown.code, shutdown.stderr).toBe(0);
    await expect(fs.stat(path.join(daemon.dir, STATE))).rejects.toThrow();
  });

  it("restarts around a live orphan: serves the desired release on another port, reports the orphan, recover spares what the new daemon runs, and rollback still reaches the older release", async () => {
    // Two ports only: the orphan holds one of them.
    const { from } = portRange(2);
    t.daemon = daemon = await startDaemon({ processes: WEB("{}", `{from: ${from}, to: ${from + 1}}`), extra: `statePath: ${STATE}` });
    await deploy(daemon, "v1");
    await deploy(daemon, "v2");
    const orphan = (await daemon.status()).processes.find((p: { releaseId: string }) => p.releaseId === "v2");
    await stateLists(daemon, orphan.pid);
    await killDaemonHard(daemon);

    // A process that fails verification is not adopted (here the state file is of another
    // application now): the new daemon starts around it and reports it as an orphan.
    const config = await fs.readFile(daemon.configPath, "utf8");
    await fs.writeFile(daemon.configPath, config.replace(/^application: (.*)$/m, "application: $1-renamed"));
    await t.daemonAgain(daemon);
    const status = await until(
      async () => {
        const s = await daemon!.status();
        return s.activeRelease?.id === "v2" && s.converged ? s : null;
      },
      20_000,
      "v2 served by the new daemon",
    );
    const fresh = status.processes.find((p: { releaseId: string; pid: number | null }) => p.releaseId === "v2" && p.pid !== null);
    expect(fresh.pid).not.toBe(orphan.pid);
    expect(fresh.port).not.toBe(orphan.port);
    expect(isAlive(orphan.pid)).toBe(true);
    expect(status.orphans).toEqual([expect.objectContaining({ instanceId: "web", releaseId: "v2", pid: orphan.pid, port: orphan.port })]);
    expect(status.releases.map((r: { id: string; state: string }) => `${r.id}:${r.state}`).sort()).toEqual(["v1:stopped", "v2:active"]);
    const events = await json(await daemon.cli(["events", "--json", "--limit", "1000"]));
    expect(events.events.some((e: { type: string; message: string }) => e.type === "orphan-detected" && e.message.includes(`pid ${orphan.pid}`))).toBe(true);
    expect(JSON.parse((await get(daemon.proxyPort)).body).pid).toBe(fresh.pid);

    // The live daemon's own web process is never an orphan: only the old one is stopped.
    const forced = await json(await daemon.cli(["recover", "--force", "--json"]));
    expect(forced.daemon.pid).toBe(status.daemonPid);
    expect(forced.stopped.map((r: { pid: number; outcome: string }) => [r.pid, r.outcome])).toEqual([[orphan.pid, "exited"]]);
    expect(isAlive(orphan.pid)).toBe(false);
    expect(isAlive(fresh.pid)).toBe(true);
    expect((await get(daemon.proxyPort)).status).toBe(200);
    await until(async () => (await daemon!.status()).orphans.length === 0, 10_000, "status.orphans emptied");

    // Release history survived the crash: rollback goes back to v1 (on the port the orphan freed).
    const rollback = await daemon.cli(["rollback"]);
    expect(rollback.code, rollback.stderr + rollback.stdout).toBe(0);
    expect(JSON.parse((await get(daemon.proxyPort)).body).release).toBe("v1");
  });

  it("never reports or signals a pid that now belongs to another process, nor the processes of a daemon that is still alive", async () => {
    const dir = await t.tempDir("rb-recover-");
    const reused = t.detached(["sleep", "600"]);
    const real = t.detached(["sleep", "600"]);
    const liveWriter = t.detached(["sleep", "600"]);
    const ofLiveWriter = t.detached(["sleep", "600"]);
    await sleep(100);
    const entry = async (instanceId: string, child: ChildProcess, startTime?: number) => ({
      instanceId,
      processId: "web",
      releaseKey: "k1",
      releaseId: "v1",
      pid: child.pid!,
      pgid: child.pid!,
      startTime: startTime ?? (await startTimeOf(child.pid!)),
      port: null,
      restarts: 0,
      lastStartReason: "deploy",
      startedAt: Date.now(),
      stopSignal: "SIGTERM",
      gracefulStopMs: 1000,
    });
    const snapshot = (daemonPid: number, daemonStart: number | null, processes: unknown[]) => ({
      version: 1,
      application: "recover-test",
      writtenAt: new Date().toISOString(),
      daemon: { pid: daemonPid, startTime: daemonStart },
      activeKey: "k1",
      releases: [],
      processes,
      orphans: [],
      events: [],
    });
    const write = (file: string, value: unknown) => fs.writeFile(path.join(dir, file), JSON.stringify(value));
    const config = (state: string) => `application: recover-test\ncontrol: {path: ${path.join(dir, "control.sock")}}\nstatePath: ${state}\nprocesses:\n  - {id: web, policy: proxied, command: "true", port: 20999}\n`;
    // A dead writer (the pid of a process that has exited) with one recycled and one genuine orphan.
    const dead = spawnSync("true").pid!;
    await write("crashed.json", snapshot(dead, 1, [await entry("web-reused", reused, (await startTimeOf(reused.pid!)) + 4242), await entry("web-real", real)]));
    await fs.writeFile(path.join(dir, "crashed.yaml"), config("crashed.json"));
    const listed = await json(await runCli(["recover", "--json", "--config", path.join(dir, "crashed.yaml")]));
    expect(listed.orphans.map((o: { instanceId: string }) => o.instanceId)).toEqual(["web-real"]);
    const forced = await runCli(["recover", "--force", "--json", "--config", path.join(dir, "crashed.yaml")]);
    expect(forced.code, forced.stderr).toBe(0);
    expect((await json(forced)).stopped.map((r: { pid: number; outcome: string }) => [r.pid, r.outcome])).toEqual([[real.pid, "exited"]]);
    expect(isAlive(reused.pid!)).toBe(true);
    expect(isAlive(real.pid!)).toBe(false);

    // The writer is alive (same pid, same start time): its processes are managed, not orphans.
    await write("live.json", snapshot(liveWriter.pid!, await startTimeOf(liveWriter.pid!), [await entry("web-managed", ofLiveWriter)]));
    await fs.writeFile(path.join(dir, "live.yaml"), config("live.json"));
    const managed = await json(await runCli(["recover", "--force", "--json", "--config", path.join(dir, "live.yaml")]));
    expect(managed.orphans).toEqual([]);
    expect(isAlive(ofLiveWriter.pid!)).toBe(true);

    // A file that cannot be trusted is an error with a fix, not a guess.
    await fs.writeFile(path.join(dir, "bad.json"), JSON.stringify({ version: 99 }));
    await fs.writeFile(path.join(dir, "bad.yaml"), config("bad.json"));
    const bad = await runCli(["recover", "--force", "--config", path.join(dir, "bad.yaml")]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/version 99/);
    expect(bad.stderr).toMatch(/fix:/);
    expect(isAlive(reused.pid!)).toBe(true);
  });

  it("never writes a config or desired env value, or a command line, to the state file", async () => {
    const secret = `hunter2-${Date.now()}`;
    t.daemon = daemon = await startDaemon({
      processes: WEB(`{SECRET_TOKEN: "${secret}-config"}`)
        .replace("command: node {{APP}}", `command: node {{APP}} --api-key ${secret}-argv\n    cwd: "{{releasePath}}/app"`)
        .replace("health: {path: /ping, intervalMs: 50}", "health: {path: /ping, intervalMs: 50, timeoutMs: 3000}"),
      extra: `statePath: ${STATE}`,
    });
    const file = path.join(daemon.dir, STATE);
    const seen: string[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        seen.push(await fs.readFile(file, "utf8").catch(() => ""));
        await sleep(20);
      }
    })();
    await fs.mkdir(path.join(await daemon.release("v1"), "app"));
    await deploy(daemon, "v1");
    const v2 = await daemon.release("v2");
    await fs.mkdir(path.join(v2, "app"));
    const withEnv = await daemon.cli(["apply", "-f", "-", "--wait"], { input: `release: {path: ${v2}}\nenv: {RELEASE_SECRET: "${secret}-desired"}\n` });
    expect(withEnv.code, withEnv.stderr).toBe(0);
    // A start that fails (v3 has no app/ directory) quotes its command line in the error: not in the file.
    const v3 = await daemon.release("v3");
    const failing = await daemon.cli(["apply", "-f", "-", "--wait", "--timeout", "10000"], { input: `release: {path: ${v3}}\nenv: {RELEASE_SECRET: "${secret}-failing"}\n` });
    expect(failing.code).toBe(1);
    const web = (await daemon.status()).processes.find((p: { releaseId: string }) => p.releaseId === "v2");
    // The secrets are really there, in the running process's argv and environment...
    expect(await fs.readFile(`/proc/${web.pid}/cmdline`, "utf8")).toContain(`${secret}-argv`);
    const environ = await fs.readFile(`/proc/${web.pid}/environ`, "utf8");
    expect(environ).toContain(`${secret}-config`);
    expect(environ).toContain(`${secret}-desired`);
    const state = await stateLists(daemon, web.pid);
    watching = false;
    await watcher;
    const texts = [...seen, JSON.stringify(state)].filter(Boolean);
    expect(texts.length).toBeGreaterThan(5);
    // ...and never in any version of the state file.
    for (const text of texts) expect(text).not.toContain(secret);
    expect(state.releases.find((r: { id: string }) => r.id === "v2").envKeys).toEqual(["RELEASE_SECRET"]);
    expect(JSON.stringify(state)).not.toMatch(/"(command|env|output)"/);
    // Only the owner can read it.
    expect((await fs.stat(file)).mode & 0o077).toBe(0);
  });
});
