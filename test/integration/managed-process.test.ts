import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ManagedProcess } from "../../src/process/managed-process.js";
import { shellCommand } from "../../src/process/shell-command.js";
import type { ExitInfo, SpawnSpec } from "../../src/process/types.js";
import { APP_COMMAND as APP, isAlive, killQuietly, killTracked, startManaged, track, WORKER_COMMAND as WORKER, waitForLine } from "../helpers/process.js";

let dir: string;
const extraPids: number[] = [];

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "rollbridge-mp-"));
});

afterEach(async () => {
  // Clean up by pid only: the group of every process this test started, then any grandchild it reported.
  killTracked();
  for (const pid of extraPids.splice(0)) killQuietly(pid);
  await rm(dir, { recursive: true, force: true });
});

function spawn(command: string, overrides: Partial<Omit<SpawnSpec, "env">> = {}, env: Record<string, string> = {}): ManagedProcess {
  return startManaged({ instanceId: "web", command, cwd: dir, outputLines: 50, stopSignal: "SIGTERM", gracefulStopMs: 5_000, ...overrides, env: { ROLLBRIDGE_RELEASE_ID: "v1", ...env } });
}

describe("ManagedProcess", () => {
  it("keeps the last N output lines, oldest first, including an unterminated last line", async () => {
    const seen: string[] = [];
    const proc = spawn(`for i in $(seq 1 20); do echo "line $i"; done; printf "no newline"`, { outputLines: 5 });
    proc.onOutput((line) => seen.push(line.line));
    const exit = await exited(proc);
    expect(exit.code).toBe(0);
    expect(proc.output().map((l) => l.line)).toEqual(["line 17", "line 18", "line 19", "line 20", "no newline"]);
    expect(proc.output().every((l) => l.stream === "stdout")).toBe(true);
    expect(seen).toHaveLength(21);
  });

  it("caps a single overlong line at 16 kB", async () => {
    const proc = spawn(`head -c 40000 /dev/zero | tr '\\0' x; echo; echo after`);
    await exited(proc);
    const lines = proc.output().map((l) => l.line);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toHaveLength(16 * 1024);
    expect(lines[1]).toBe("after");
  });

  it("moves through starting, running, stopping and exited", async () => {
    const proc = spawn(APP);
    expect(proc.phase).toBe("starting");
    expect(proc.pid).toBeTypeOf("number");
    expect(proc.startedAt).toBeLessThanOrEqual(Date.now());
    await waitForLine(proc, /listening on \d+/);
    proc.markRunning();
    expect(proc.phase).toBe("running");
    const stopping = proc.stop();
    expect(proc.phase).toBe("stopping");
    const exit = await stopping;
    expect(proc.phase).toBe("exited");
    expect(exit.requested).toBe(true);
    expect(exit.signal).toBe("SIGTERM");
    expect(proc.exitInfo).toEqual(exit);
  });

  it("stops with the configured stopSignal", async () => {
    const log = path.join(dir, "signals.log");
    const proc = spawn(APP, { stopSignal: "SIGINT" }, { SIGNAL_LOG: log });
    await waitForLine(proc, /listening on/);
    const exit = await proc.stop();
    expect(await readFile(log, "utf8")).toBe("SIGINT\n");
    expect(exit).toMatchObject({ code: 0, signal: null, requested: true });
  });

  it("SIGKILLs a process that ignores the stop signal once graceMs has passed", async () => {
    const proc = spawn(APP, {}, { IGNORE_SIGTERM: "1" });
    await waitForLine(proc, /listening on/);
    const t0 = Date.now();
    const exit = await proc.stop({ graceMs: 600 });
    const elapsed = Date.now() - t0;
    expect(exit).toMatchObject({ code: null, signal: "SIGKILL", requested: true });
    expect(elapsed).toBeGreaterThanOrEqual(590);
    expect(elapsed).toBeLessThan(1_500);
    expect(proc.output().some((l) => l.line === "ignoring SIGTERM")).toBe(true);
  });

  it("is idempotent and resolves at once for a process that already exited", async () => {
    const proc = spawn(APP);
    await waitForLine(proc, /listening on/);
    const first = proc.stop();
    expect(proc.stop({ signal: "SIGKILL" })).toBe(first);
    const exit = await first;
    expect(exit.signal).toBe("SIGTERM");

    const crashed = spawn(APP, {}, { EXIT_IMMEDIATELY: "1" });
    const crash = await exited(crashed);
    const t0 = Date.now();
    await expect(crashed.stop()).resolves.toEqual(crash);
    expect(Date.now() - t0).toBeLessThan(50);
  });

  it("leaves no grandchild behind after stop", async () => {
    const proc = spawn(APP, {}, { SPAWN_CHILD: "1" });
    const child = await grandchildPid(proc);
    await waitForLine(proc, /listening on/);
    expect(await isAlive(child)).toBe(true);
    await proc.stop({ graceMs: 2_000 });
    expect(await isAlive(child)).toBe(false);
    expect(await isAlive(proc.pid!)).toBe(false);
  });

  it("SIGKILLs a group member that outlives the leader once graceMs has passed", async () => {
    const proc = spawn(`(trap '' TERM; exec sleep 30) & echo "child pid $!"; exec ${WORKER}`);
    const child = await grandchildPid(proc);
    await waitForLine(proc, /started/);
    const t0 = Date.now();
    const exit = await proc.stop({ graceMs: 500 });
    const elapsed = Date.now() - t0;
    // The leader (the worker) exits on SIGTERM at once; the stop still waits for the member that ignores it.
    expect(exit).toMatchObject({ signal: "SIGTERM", requested: true });
    expect(elapsed).toBeGreaterThanOrEqual(490);
    expect(elapsed).toBeLessThan(1_400);
    expect(await isAlive(child)).toBe(false);
  });

  it("SIGKILLs the rest of the group when the leader crashes, then reports the exit code with requested=false", async () => {
    const proc = spawn(WORKER, {}, { SPAWN_CHILD: "1", EXIT_AFTER_MS: "700", ROLLBRIDGE_PROCESS_ID: "web" });
    const child = await grandchildPid(proc);
    expect(await isAlive(child)).toBe(true);
    let childAliveAtExit: boolean | undefined;
    const exit = await new Promise<ExitInfo>((resolve) => {
      proc.onExit((info) => {
        void isAlive(child).then((alive) => {
          childAliveAtExit = alive;
          resolve(info);
        });
      });
    });
    expect(exit).toMatchObject({ code: 3, signal: null, requested: false });
    expect(childAliveAtExit).toBe(false);
    expect(exit.at).toBeGreaterThanOrEqual(proc.startedAt! + 700);
    expect(proc.phase).toBe("exited");
    expect(proc.output().some((l) => l.line.startsWith("heartbeat web 0"))).toBe(true);
  });

  it("reports a crash on start with its exit code and last output", async () => {
    const proc = spawn(APP, {}, { EXIT_IMMEDIATELY: "1" });
    const exit = await exited(proc);
    expect(exit).toMatchObject({ code: 1, signal: null, requested: false });
    expect(proc.output()).toContainEqual(expect.objectContaining({ stream: "stderr", line: "boom" }));
  });

  it("records a spawn failure instead of throwing, and reports it asynchronously", async () => {
    const proc = new ManagedProcess({
      instanceId: "web",
      command: "true",
      cwd: path.join(dir, "does-not-exist"),
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
      outputLines: 10,
      stopSignal: "SIGTERM",
      gracefulStopMs: 1_000,
    });
    track(proc);
    let calledSync = false;
    const exit = new Promise<ExitInfo>((resolve) => proc.onExit(resolve));
    proc.onExit(() => {
      calledSync = true;
    });
    expect(() => proc.start()).not.toThrow();
    expect(calledSync).toBe(false);
    expect(await exit).toMatchObject({ code: null, signal: null, requested: false });
    expect(proc.spawnError).toBeInstanceOf(Error);
    expect(proc.spawnError?.message).toBe(`cwd ${path.join(dir, "does-not-exist")} does not exist (ENOENT)`);
    expect(proc.pid).toBeUndefined();
    expect(proc.phase).toBe("exited");
    await expect(proc.stop()).resolves.toEqual(proc.exitInfo);
  });

  it("names a missing or non-executable program as the spawn failure, without the command line", async () => {
    const failureOf = async (command: string): Promise<string | undefined> => {
      const proc = new ManagedProcess({ instanceId: "web", command, cwd: dir, env: { PATH: "/usr/bin:/bin" }, outputLines: 10, stopSignal: "SIGTERM", gracefulStopMs: 1_000 });
      track(proc);
      proc.start();
      await new Promise((resolve) => proc.onExit(resolve));
      // A spawn failure never ran a process; a good start did.
      expect(proc.pid === undefined).toBe(proc.spawnError !== undefined);
      return proc.spawnError?.message;
    };
    await writeFile(path.join(dir, "plain.txt"), "not a program\n", { mode: 0o644 });
    expect(await failureOf("rollbridge-missing-program --secret s3cr3t")).toBe("command rollbridge-missing-program not found in PATH (ENOENT)");
    expect(await failureOf("exec ./plain.txt --secret s3cr3t")).toBe("command ./plain.txt is not executable: permission denied (EACCES)");
    expect(await failureOf("./missing/run --secret s3cr3t")).toBe("command ./missing/run not found (ENOENT)");
    // A program found in PATH starts as usual, and so does anything only the shell can resolve.
    expect(await failureOf("true --secret s3cr3t")).toBeUndefined();
    expect(await failureOf("'true' --secret s3cr3t")).toBeUndefined();
  });

  it("passes IPC messages both ways and stops with a message instead of a signal", async () => {
    const log = path.join(dir, "signals.log");
    const proc = spawn(APP, { ipc: true }, { SEND_ONLINE: "1", SIGNAL_LOG: log });
    const online = new Promise<unknown>((resolve) => proc.onMessage(resolve));
    await expect(withTimeout(online, 10_000, "no IPC message")).resolves.toBe("online");
    const exit = await proc.stop({ message: "shutdown", graceMs: 3_000 });
    expect(exit).toMatchObject({ code: 0, signal: null, requested: true });
    expect(await readFile(log, "utf8")).toBe("message:shutdown\n");
    expect(proc.output().some((l) => l.line === "received shutdown")).toBe(true);
  });

  it("keeps the shell of a compound command alive through a reload signal to the group", async () => {
    const log = path.join(dir, "signals.log");
    const proc = spawn(`echo wrapper; ${WORKER}`, {}, { SIGNAL_LOG: log });
    await waitForLine(proc, /started/);
    proc.kill("SIGHUP");
    await waitUntil(async () => (await readFile(log, "utf8").catch(() => "")) === "SIGHUP\n");
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(proc.exitInfo).toBeUndefined();
    const exit = await proc.stop();
    expect(exit.requested).toBe(true);
    expect(await readFile(log, "utf8")).toBe("SIGHUP\nSIGTERM\n");
  });

  it("execs a simple command and wraps a compound one", () => {
    expect(shellCommand(`node app.mjs --port $PORT`)).toBe("exec node app.mjs --port $PORT");
    expect(shellCommand(`"/opt/my node/bin/node" "\${HOME}/app.mjs"`)).toMatch(/^exec "\/opt/);
    for (const compound of ["cd x && node app", "FOO=1 node app", "node a | tee log", "cd x\nnode app", "node app > log"]) {
      expect(shellCommand(compound)).toMatch(/^trap : HUP /);
    }
  });

  it("send() returns false without an IPC channel", async () => {
    const proc = spawn(WORKER);
    await waitForLine(proc, /started/);
    expect(proc.send("hello")).toBe(false);
    await proc.stop();
    expect(proc.send("hello")).toBe(false);
  });

  it("passes exactly the given environment and cwd", async () => {
    process.env.ROLLBRIDGE_TEST_LEAK = "parent-only";
    try {
      const proc = spawn(`echo "$FOO|\${ROLLBRIDGE_TEST_LEAK:-unset}|$(pwd)"`, {}, { FOO: "bar" });
      await exited(proc);
      expect(proc.output().map((l) => l.line)).toEqual([`bar|unset|${dir}`]);
    } finally {
      delete process.env.ROLLBRIDGE_TEST_LEAK;
    }
  });
});

function exited(proc: ManagedProcess, timeoutMs = 10_000): Promise<ExitInfo> {
  return withTimeout(new Promise<ExitInfo>((resolve) => proc.onExit(resolve)), timeoutMs, "process did not exit");
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs}ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function grandchildPid(proc: ManagedProcess): Promise<number> {
  const line = await waitForLine(proc, /^child pid \d+$/);
  const pid = Number(line.split(" ")[2]);
  extraPids.push(pid);
  return pid;
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} within ${ms}ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
