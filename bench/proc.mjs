// What the benchmarks read from /proc (Linux): memory, CPU time and liveness of a process, and
// the children tracker that stops by pid everything a benchmark started.
import { execFile, spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const CLI = path.join(root, "dist/cli/main.js");

/** VmRSS and VmHWM (the kernel's high-water mark of RSS) of a process, in kB. */
export function readMemory(pid) {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? Number.NaN);
  return { rssKB: kb("VmRSS"), hwmKB: kb("VmHWM") };
}

export const kbToMB = (kb) => Math.round((kb / 1024) * 10) / 10;

/** utime + stime of a process (all its threads) in seconds; NaN when it is gone. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return Number.NaN;
  }
}

/** utime and stime of a process (all its threads) apart, in seconds; NaN when it is gone. */
export function cpuTimes(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { user: Number(fields[11]) / 100, system: Number(fields[12]) / 100 };
  } catch {
    return { user: Number.NaN, system: Number.NaN };
  }
}

/**
 * Whether the process runs: a zombie counts as gone. (PID 1 may not reap the orphans a
 * detached daemon leaves, so `kill(pid, 0)` would still succeed for a dead one.)
 */
export function isAlive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/**
 * Samples VmRSS of `pid` every `everyMs` into the bucket named by `sampler.phase` (or "other")
 * until `stop()`, which returns {phase: [{t, rssKB}]}.
 */
export function startRssSampler(pid, everyMs, phases = ["direct", "proxy"]) {
  const samples = Object.fromEntries([...phases, "other"].map((p) => [p, []]));
  const sampler = {
    phase: null,
    stop() {
      clearInterval(timer);
      return samples;
    },
  };
  const timer = setInterval(() => {
    try {
      const m = readMemory(pid);
      (samples[sampler.phase] ?? samples.other).push({ t: Date.now(), rssKB: m.rssKB });
    } catch {
      // the process is gone: the run fails elsewhere
    }
  }, everyMs);
  return sampler;
}

/**
 * Everything a benchmark started, stopped by pid: its children (spawn, execCli) and processes
 * it adopted that are not its children (a detached daemon, PM2's God daemon and workers).
 */
export class ChildTracker {
  children = new Set();
  adopted = new Set();
  dirs = new Set();

  /** A temp directory to remove if the benchmark is interrupted before its own cleanup. */
  tempDir(dir) {
    this.dirs.add(dir);
    return dir;
  }

  removeTempDirs() {
    for (const dir of this.dirs) rmSync(dir, { recursive: true, force: true });
    this.dirs.clear();
  }

  spawn(command, args, options) {
    const child = spawn(command, args, options);
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
    child.once("error", () => this.children.delete(child));
    return child;
  }

  /** `node dist/cli/main.js ...args`; resolves {code, stdout, stderr, wallMs} (never rejects). */
  execCli(args, { cwd, timeout = 60_000, env = process.env }) {
    return new Promise((resolve) => {
      const startedAt = performance.now();
      const child = execFile(process.execPath, [CLI, ...args], { cwd, timeout, env, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
        this.children.delete(child);
        resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr, wallMs: performance.now() - startedAt });
      });
      this.children.add(child);
    });
  }

  /** Stop `pid` (not our child) with the others at the end. */
  adopt(pid) {
    if (Number.isInteger(pid) && pid > 0) this.adopted.add(pid);
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the child exited. */
  async stop(child, graceMs) {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    try {
      process.kill(child.pid, "SIGTERM");
    } catch {
      return;
    }
    const timer = new Promise((resolve) => setTimeout(() => resolve("timeout"), graceMs));
    if ((await Promise.race([exited, timer])) === "timeout") {
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }

  /** The same for a pid that is not our child: gone means no longer in /proc or a zombie. */
  async stopPid(pid, graceMs) {
    this.adopted.delete(pid);
    if (!isAlive(pid)) return;
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      return;
    }
    const deadline = Date.now() + graceMs;
    while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (isAlive(pid)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }

  killAll(signal) {
    for (const pid of [...[...this.children].map((c) => c.pid), ...this.adopted]) {
      try {
        process.kill(pid, signal);
      } catch {
        // gone
      }
    }
  }

  async stopAll() {
    await Promise.all([...[...this.children].map((c) => this.stop(c, 10_000)), ...[...this.adopted].map((pid) => this.stopPid(pid, 10_000))]);
  }
}
