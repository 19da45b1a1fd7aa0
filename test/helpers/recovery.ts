// Shared by the crash-recovery and predeploy-cleanup tests: daemons SIGKILLed and started again
// on the same config, processes started directly, the state file, and zombie-aware liveness.
import { spawn, type ChildProcess } from "node:child_process";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect } from "vitest";
import { CLI, isAlive, until, waitForExit, type TestDaemon } from "./daemon.js";
import { webProcess } from "./test-config.js";

// Alive and not a zombie (an orphan's reaper, PID 1 here, may take a while to reap it): the
// recovery tests import it from here with the rest.
export { isAlive };

export const STATE = "state/rollbridge.state.json";

/** The proxied fixture app with these env and port settings. */
export const WEB = (env: string, range = "{from: {{RANGE_FROM}}, to: {{RANGE_TO}}}") => webProcess({ port: range, env, gracefulStopMs: 2000 });

/** What a test started, stopped by pid (and group) afterwards. */
export class Started {
  daemon: TestDaemon | null = null;
  /** Daemons started on an existing config (after a crash): stopped before `daemon`. */
  private readonly daemons: ChildProcess[] = [];
  /** Processes started directly (sleep, fake legacy apps). */
  private readonly processes: ChildProcess[] = [];
  private readonly dirs: string[] = [];

  /** A detached process (its own group), killed with its group at cleanup. */
  detached(args: string[]): ChildProcess {
    const child = spawn(args[0]!, args.slice(1), { detached: true, stdio: "ignore" });
    this.processes.push(child);
    return child;
  }

  async tempDir(prefix: string): Promise<string> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
    this.dirs.push(dir);
    return dir;
  }

  /** A second daemon on the same config (what systemd does after a crash). */
  async daemonAgain(d: TestDaemon): Promise<ChildProcess> {
    const child = spawn(process.execPath, [CLI, "daemon", "--config", d.configPath], { cwd: d.dir, stdio: ["ignore", "ignore", "pipe"] });
    this.daemons.push(child);
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    await until(
      async () => {
        if (child.exitCode !== null) throw new Error(`second daemon exited ${child.exitCode}: ${stderr}`);
        return (await d.cli(["status", "--json"])).code === 0;
      },
      15_000,
      "second daemon answering",
    );
    return child;
  }

  async cleanup(): Promise<void> {
    for (const child of this.daemons.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        if (!(await waitForExit(child, 15_000))) child.kill("SIGKILL");
      }
    }
    await this.daemon?.stop();
    this.daemon = null;
    for (const child of this.processes.splice(0)) {
      if (child.pid !== undefined && isAlive(child.pid)) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          child.kill("SIGKILL");
        }
      }
    }
    for (const dir of this.dirs.splice(0)) await fs.rm(dir, { recursive: true, force: true });
  }
}

export async function deploy(d: TestDaemon, release: string): Promise<void> {
  const p = await d.release(release);
  const result = await d.cli(["deploy", "--release-path", p]);
  expect(result.code, result.stderr).toBe(0);
}

export async function readState(d: TestDaemon): Promise<any | null> {
  try {
    return JSON.parse(await fs.readFile(path.join(d.dir, STATE), "utf8"));
  } catch {
    return null;
  }
}

/** Waits until the snapshot lists `pid` (it is written right after the pass that started it). */
export async function stateLists(d: TestDaemon, pid: number): Promise<any> {
  return until(
    async () => {
      const state = await readState(d);
      return state?.processes.some((p: { pid: number }) => p.pid === pid) ? state : null;
    },
    10_000,
    `state file listing pid ${pid}`,
  );
}

export async function killDaemonHard(d: TestDaemon): Promise<void> {
  d.child.kill("SIGKILL");
  expect(await waitForExit(d.child, 10_000)).toBe(true);
}

export async function json(result: { code: number; stdout: string; stderr: string }): Promise<any> {
  try {
    return JSON.parse(result.stdout);
  } catch {
    throw new Error(`not JSON (exit ${result.code}): ${result.stdout}\n${result.stderr}`);
  }
}

/** The pid of the grandchild the fixture prints with SPAWN_CHILD=1. */
export async function childPidOf(d: TestDaemon): Promise<number> {
  return until(
    async (): Promise<number> => {
      const logs = await json(await d.cli(["logs", "--json"]));
      const line = logs.lines.map((l: { line: string }) => l.line).find((l: string) => /^child pid \d+/.test(l));
      return line ? Number(/child pid (\d+)/.exec(line)![1]) : 0;
    },
    10_000,
    "the fixture's child pid",
  );
}

/** Field 22 of /proc/<pid>/stat. */
export async function startTimeOf(pid: number): Promise<number> {
  const text = await fs.readFile(`/proc/${pid}/stat`, "utf8");
  return Number(text.slice(text.lastIndexOf(")") + 2).split(" ")[19]);
}
