import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ManagedProcess } from "../../src/process/managed-process.js";
import { stopGroup } from "../../src/process/group-stop.js";
import { readIdentity } from "../../src/process/identity.js";
import { groupHasLiveMembers } from "../../src/process/memory.js";
import { stopGracefully, type StopSequenceOptions, type StopStep } from "../../src/process/stop-sequence.js";
import type { SpawnSpec } from "../../src/process/types.js";
import { APP_COMMAND as APP, isAlive, killQuietly, killTracked, startManaged, track, WORKER_COMMAND as WORKER, waitForLine } from "../helpers/process.js";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));

let dir: string;
let signalLog: string;
const extraPids: number[] = [];
const extraGroups: number[] = [];

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "rollbridge-stop-"));
  signalLog = path.join(dir, "signals.log");
});

afterEach(async () => {
  // Clean up by pid only: every group this test started, hook groups it recorded, grandchildren it saw.
  killTracked();
  for (const pgid of extraGroups.splice(0)) killQuietly(-pgid);
  for (const pid of extraPids.splice(0)) killQuietly(pid);
  await rm(dir, { recursive: true, force: true });
});

function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", PORT: "0", SIGNAL_LOG: signalLog, ...extra };
}

async function spawnReady(command: string, env: Record<string, string> = {}, overrides: Partial<Omit<SpawnSpec, "env">> = {}): Promise<ManagedProcess> {
  const proc = startManaged({ instanceId: "worker", command, cwd: dir, outputLines: 50, stopSignal: "SIGTERM", gracefulStopMs: 5_000, ...overrides, env: { SIGNAL_LOG: signalLog, ...env } });
  // The app installs its signal handlers before listening; the worker before its first heartbeat.
  await waitForLine(proc, /^(listening on \d+|heartbeat .*)$/);
  return proc;
}

/**
 * A hook fragment that waits (bounded) until the fixture has logged `name`: two signals sent to a
 * multi-threaded process a few ms apart may be merged or handled out of order, so the tests only
 * send the next one once the previous one is seen.
 */
function untilLogged(name: string): string {
  return `for i in $(seq 1 100); do grep -qx ${name} "$SIGNAL_LOG" 2>/dev/null && break; sleep 0.02; done`;
}

function options(proc: ManagedProcess, steps: StopStep[], overrides: Partial<StopSequenceOptions> = {}): StopSequenceOptions {
  return {
    lifecycle: { drainTimeoutMs: 0 },
    stopSignal: "SIGTERM",
    gracefulStopMs: 2_000,
    env: proc.spec.env,
    cwd: dir,
    onStep: (step) => steps.push(step),
    ...overrides,
  };
}

describe("stopGracefully", () => {
  it("runs the quiet hook, with the process environment, before sending the stop signal", async () => {
    const proc = await spawnReady(APP);
    const steps: StopStep[] = [];
    const exit = await stopGracefully(proc, options(proc, steps, { lifecycle: { quietCommand: `echo quiet >> "$SIGNAL_LOG"; echo quieted`, drainTimeoutMs: 0 } }));
    expect(await logLines()).toEqual(["quiet", "SIGTERM"]);
    expect(exit).toMatchObject({ code: 0, requested: true });
    expect(steps.map((s) => [s.phase, s.ok])).toEqual([
      ["quiet", true],
      ["stop", true],
    ]);
    expect(steps[0]?.detail).toBe("exit 0; output: quieted");
    expect(steps[1]?.detail).toMatch(/^sent SIGTERM; exited after \d+ ms$/);
  });

  it("gives hooks ROLLBRIDGE_PID, the group leader, so a hook can signal the whole group", async () => {
    const proc = await spawnReady(APP);
    const pidFile = path.join(dir, "pid");
    await stopGracefully(proc, options(proc, [], { lifecycle: { quietCommand: `echo "$ROLLBRIDGE_PID" > "${pidFile}"; kill -HUP -$ROLLBRIDGE_PID; ${untilLogged("SIGHUP")}`, drainTimeoutMs: 0 } }));
    expect(Number((await readFile(pidFile, "utf8")).trim())).toBe(proc.pid);
    expect(await logLines()).toEqual(["SIGHUP", "SIGTERM"]);
  });

  it("waits in the drain step for a process that finishes by itself, without sending it anything more", async () => {
    // The quiet hook asks the worker to finish; it takes 600 ms and exits 0 on its own.
    const proc = await spawnReady(WORKER, { GRACEFUL_MS: "600" });
    const steps: StopStep[] = [];
    const startedAt = Date.now();
    const exit = await stopGracefully(proc, options(proc, steps, { lifecycle: { quietCommand: `kill -TERM -$ROLLBRIDGE_PID; ${untilLogged("SIGTERM")}`, drainTimeoutMs: 3_000 } }));
    const elapsed = Date.now() - startedAt;
    expect(exit).toMatchObject({ code: 0, signal: null, requested: true });
    expect(await logLines()).toEqual(["SIGTERM"]);
    expect(steps.map((s) => [s.phase, s.ok])).toEqual([
      ["quiet", true],
      ["drain", true],
    ]);
    expect(steps[1]?.detail).toMatch(/^process exited by itself after \d+ ms$/);
    expect(elapsed).toBeGreaterThanOrEqual(500);
    expect(elapsed).toBeLessThan(2_500);
  });

  it("without a drain step sends the stop signal right after the quiet hook", async () => {
    // The contrast to the test above: drainTimeoutMs 0 skips the wait, so our SIGTERM follows the hook's.
    const proc = await spawnReady(WORKER, { GRACEFUL_MS: "600" });
    const steps: StopStep[] = [];
    await stopGracefully(proc, options(proc, steps, { lifecycle: { quietCommand: `kill -TERM -$ROLLBRIDGE_PID; ${untilLogged("SIGTERM")}`, drainTimeoutMs: 0 } }));
    expect(await logLines()).toEqual(["SIGTERM", "SIGTERM"]);
    expect(steps.map((s) => s.phase)).toEqual(["quiet", "stop"]);
  });

  it("bounds a hanging drain command by drainTimeoutMs and kills the hook's whole group", async () => {
    const proc = await spawnReady(APP);
    const hookPidFile = path.join(dir, "hook.pid");
    const steps: StopStep[] = [];
    const startedAt = Date.now();
    const exit = await stopGracefully(proc, options(proc, steps, { gracefulStopMs: 1_000, lifecycle: { drainCommand: `echo $$ > "${hookPidFile}"; echo draining; sleep 30; echo never`, drainTimeoutMs: 300 } }));
    const elapsed = Date.now() - startedAt;
    const hookGroup = Number((await readFile(hookPidFile, "utf8")).trim());
    extraGroups.push(hookGroup);
    expect(exit).toMatchObject({ code: 0, requested: true });
    expect(elapsed).toBeLessThan(2_000);
    expect(steps.map((s) => [s.phase, s.ok])).toEqual([
      ["drain", false],
      ["stop", true],
    ]);
    expect(steps[0]?.detail).toMatch(/^timed out after \d+ ms; hook killed; output: draining$/);
    expect(await groupHasLiveMembers(hookGroup)).toBe(false);
    expect(await logLines()).toEqual(["SIGTERM"]);
  });

  it("runs the stop command instead of sending the stop signal", async () => {
    const proc = await spawnReady(APP);
    const steps: StopStep[] = [];
    const exit = await stopGracefully(proc, options(proc, steps, { lifecycle: { stopCommand: `echo stop-command >> "$SIGNAL_LOG"; kill -INT -$ROLLBRIDGE_PID`, drainTimeoutMs: 0 } }));
    expect(await logLines()).toEqual(["stop-command", "SIGINT"]);
    expect(exit).toMatchObject({ code: 0, requested: true });
    expect(steps.map((s) => [s.phase, s.ok])).toEqual([["stop", true]]);
  });

  it("kills a stop command that hangs and SIGKILLs a process that ignores everything, within gracefulStopMs", async () => {
    const proc = await spawnReady(APP, { IGNORE_SIGTERM: "1" });
    const hookPidFile = path.join(dir, "hook.pid");
    const steps: StopStep[] = [];
    const startedAt = Date.now();
    const exit = await stopGracefully(proc, options(proc, steps, { gracefulStopMs: 800, lifecycle: { stopCommand: `echo $$ > "${hookPidFile}"; kill -TERM -$ROLLBRIDGE_PID; sleep 30`, drainTimeoutMs: 0 } }));
    const elapsed = Date.now() - startedAt;
    const hookGroup = Number((await readFile(hookPidFile, "utf8")).trim());
    extraGroups.push(hookGroup);
    expect(exit).toMatchObject({ signal: "SIGKILL", requested: true });
    expect(elapsed).toBeGreaterThanOrEqual(750);
    expect(elapsed).toBeLessThan(1_600);
    expect(steps.map((s) => [s.phase, s.ok])).toEqual([
      ["stop", false],
      ["kill", true],
    ]);
    expect(steps[0]?.detail).toMatch(/^timed out after \d+ ms; hook killed/);
    expect(await groupHasLiveMembers(hookGroup)).toBe(false);
    expect(proc.output().some((l) => l.line === "ignoring SIGTERM")).toBe(true);
  });

  it("carries on past a quiet hook that fails or hangs", async () => {
    const failing = await spawnReady(APP);
    const failSteps: StopStep[] = [];
    await stopGracefully(failing, options(failing, failSteps, { lifecycle: { quietCommand: "echo nope >&2; exit 7", drainTimeoutMs: 0 } }));
    expect(failSteps.map((s) => [s.phase, s.ok, s.detail])).toEqual([
      ["quiet", false, "exit 7; output: nope"],
      ["stop", true, expect.stringMatching(/^sent SIGTERM/)],
    ]);

    const hanging = await spawnReady(APP);
    const hangSteps: StopStep[] = [];
    const startedAt = Date.now();
    const hookPidFile = path.join(dir, "hook.pid");
    const exit = await stopGracefully(hanging, options(hanging, hangSteps, { gracefulStopMs: 400, lifecycle: { quietCommand: `echo $$ > "${hookPidFile}"; sleep 30`, drainTimeoutMs: 0 } }));
    const elapsed = Date.now() - startedAt;
    const hookGroup = Number((await readFile(hookPidFile, "utf8")).trim());
    extraGroups.push(hookGroup);
    expect(await groupHasLiveMembers(hookGroup)).toBe(false);
    expect(elapsed).toBeLessThan(1_500);
    expect(exit).toMatchObject({ code: 0, requested: true });
    expect(hangSteps.map((s) => [s.phase, s.ok])).toEqual([
      ["quiet", false],
      ["stop", true],
    ]);
  });

  it("delivers stopMessage over IPC instead of the signal", async () => {
    const proc = await spawnReady(APP, {}, { ipc: true });
    const steps: StopStep[] = [];
    const exit = await stopGracefully(proc, options(proc, steps, { stopMessage: "shutdown" }));
    expect(await logLines()).toEqual(["message:shutdown"]);
    expect(proc.output().some((l) => l.line === "received shutdown")).toBe(true);
    expect(exit).toMatchObject({ code: 0, signal: null, requested: true });
    expect(steps[0]?.detail).toMatch(/^sent IPC stop message; exited after/);
  });

  it("leaves no grandchild behind when the stop command ends only the group leader", async () => {
    const proc = await spawnReady(APP, { SPAWN_CHILD: "1" });
    const line = await waitForLine(proc, /^child pid \d+$/);
    const grandchild = Number(line.split(" ")[2]);
    extraPids.push(grandchild);
    expect(await isAlive(grandchild)).toBe(true);
    await stopGracefully(proc, options(proc, [], { lifecycle: { stopCommand: "kill -TERM $ROLLBRIDGE_PID", drainTimeoutMs: 0 } }));
    expect(await isAlive(grandchild)).toBe(false);
    expect(await groupHasLiveMembers(proc.pid ?? -1)).toBe(false);
  });

  it("runs once however often it is called, and answers at once for a process that already exited", async () => {
    const proc = await spawnReady(APP);
    const marker = path.join(dir, "quiet.count");
    const opts = options(proc, [], { lifecycle: { quietCommand: `echo run >> "${marker}"`, drainTimeoutMs: 0 } });
    const first = stopGracefully(proc, opts);
    const second = stopGracefully(proc, { ...opts, stopSignal: "SIGINT" });
    expect(second).toBe(first);
    await first;
    expect(stopGracefully(proc, opts)).toBe(first);
    expect((await readFile(marker, "utf8")).trim().split("\n")).toEqual(["run"]);
    expect(await logLines()).toEqual(["SIGTERM"]);

    const gone = new ManagedProcess({ instanceId: "x", command: "exit 4", cwd: dir, env: baseEnv(), outputLines: 5, stopSignal: "SIGTERM", gracefulStopMs: 1_000 });
    track(gone);
    gone.start();
    await new Promise((resolve) => gone.onExit(resolve));
    const goneMarker = path.join(dir, "gone.marker");
    const exit = await stopGracefully(gone, options(gone, [], { lifecycle: { quietCommand: `touch "${goneMarker}"`, drainTimeoutMs: 0 } }));
    expect(exit).toMatchObject({ code: 4, requested: false });
    await expect(readFile(goneMarker, "utf8")).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("reports a hook that cannot start and still stops the process", async () => {
    const proc = await spawnReady(APP);
    const steps: StopStep[] = [];
    const exit = await stopGracefully(proc, options(proc, steps, { cwd: path.join(dir, "missing"), lifecycle: { quietCommand: "true", drainTimeoutMs: 0 } }));
    expect(exit).toMatchObject({ code: 0, requested: true });
    expect(steps.map((s) => [s.phase, s.ok, s.detail])).toEqual([
      ["quiet", false, "could not start the hook (ENOENT)"],
      ["stop", true, expect.stringMatching(/^sent SIGTERM/)],
    ]);
  });
});

describe("stopSignalTarget", () => {
  /** The fixture app leading a group with a grandchild that dies of a SIGTERM of its own; the app itself ignores SIGTERM. */
  async function leaderWithChild(overrides: Partial<SpawnSpec>): Promise<{ proc: ManagedProcess; child: number }> {
    const proc = await spawnReady(APP, { SPAWN_CHILD: "1", IGNORE_SIGTERM: "1" }, overrides);
    const child = Number((await waitForLine(proc, /^child pid \d+$/)).split(" ")[2]);
    extraPids.push(child);
    return { proc, child };
  }

  async function untilSignalLogged(name: string): Promise<void> {
    const deadline = Date.now() + 5_000;
    while (!(await logLines()).includes(name)) {
      if (Date.now() > deadline) throw new Error(`${name} never reached the leader`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  it("process: the stop signal reaches the main process only, and SIGKILL the whole group once gracefulStopMs has passed", async () => {
    const { proc, child } = await leaderWithChild({ stopSignalTarget: "process" });
    const steps: StopStep[] = [];
    const startedAt = Date.now();
    const stopping = stopGracefully(proc, options(proc, steps, { gracefulStopMs: 1_500 }));
    await untilSignalLogged("SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, 400));
    // The grandchild would have died of a SIGTERM sent to the group; it is still there.
    expect(await isAlive(child)).toBe(true);
    expect(await isAlive(proc.pid!)).toBe(true);

    const exit = await stopping;
    expect(exit).toMatchObject({ signal: "SIGKILL", requested: true });
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(1_400);
    expect(await isAlive(child)).toBe(false);
    expect(await groupHasLiveMembers(proc.pid!)).toBe(false);
    expect(steps.map((s) => [s.phase, s.ok, s.detail])).toEqual([
      ["stop", false, expect.stringMatching(/^sent SIGTERM to the main process; still running after \d+ ms$/)],
      ["kill", true, "SIGKILL sent to the process group"],
    ]);
  });

  it("stops an orphan (recover) the same way: the stop signal to its leader only, SIGKILL to its group", async () => {
    // A group this process did not spawn as a ManagedProcess, as recover finds one.
    const leader = spawn(process.execPath, [path.join(FIXTURES, "app.mjs")], { detached: true, stdio: ["ignore", "pipe", "ignore"], env: baseEnv({ SPAWN_CHILD: "1", IGNORE_SIGTERM: "1" }) });
    extraGroups.push(leader.pid!);
    const child = await new Promise<number>((resolve) => {
      let out = "";
      leader.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
        out += chunk;
        const pid = /child pid (\d+)/.exec(out);
        if (pid && out.includes("listening on")) resolve(Number(pid[1]));
      });
    });
    const identity = await readIdentity(leader.pid!);
    const stopping = stopGroup({ pid: leader.pid!, pgid: leader.pid!, startTime: identity!.startTime }, { signal: "SIGTERM", graceMs: 1_000, signalLeaderOnly: true });
    await untilSignalLogged("SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await isAlive(child)).toBe(true);
    expect(await stopping).toMatchObject({ outcome: "killed", wholeGroup: true });
    expect(await isAlive(child)).toBe(false);
  });

  it("group (the default): every member of the group gets the stop signal", async () => {
    const { proc, child } = await leaderWithChild({});
    const stopping = stopGracefully(proc, options(proc, [], { gracefulStopMs: 3_000 }));
    await untilSignalLogged("SIGTERM");
    const deadline = Date.now() + 2_000;
    while ((await isAlive(child)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await isAlive(child)).toBe(false);
    expect(await isAlive(proc.pid!)).toBe(true);
    expect(await stopping).toMatchObject({ signal: "SIGKILL", requested: true });
  });
});

async function logLines(): Promise<string[]> {
  try {
    return (await readFile(signalLog, "utf8")).split("\n").filter((line) => line !== "");
  } catch {
    return [];
  }
}
