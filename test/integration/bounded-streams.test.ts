// A stopped follower must not make the daemon grow: with a managed process printing 4 MB/s and
// `logs --follow` under SIGSTOP, the daemon's RSS stays flat; once the follower runs again it
// is told it fell behind and exits non-zero.
import { spawn, type ChildProcess } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CLI, sleep, startDaemon, until, waitForExit, type TestDaemon } from "../helpers/daemon.js";
import { companionProcess, webProcess } from "../helpers/test-config.js";

let daemon: TestDaemon;
let follower: ChildProcess | null = null;
afterEach(() => {
  if (follower) {
    signal(follower, "SIGCONT");
    signal(follower, "SIGKILL");
  }
  follower = null;
});
afterAll(async () => {
  await daemon?.stop();
});

// 4 MB/s of 1 KiB lines, in 40 ms batches.
const CHATTY = `const line = "x".repeat(1023) + "\\n";
const batch = line.repeat(160);
setInterval(() => process.stdout.write(batch), 40);
`;

/** Signals a child of the test by its pid; one that already exited is not an error. */
function signal(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(child.pid, sig);
  } catch {
    // exited meanwhile
  }
}

async function vmRssBytes(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, "utf8");
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for ${pid}`);
  return Number(kb) * 1024;
}

beforeAll(async () => {
  daemon = await startDaemon({
    processes: [webProcess({ restartDelayMs: undefined }), companionProcess("chatty", { command: "node chatty.mjs", gracefulStopMs: 1000 })].join("\n"),
  });
  const v1 = await daemon.release("v1");
  await fs.writeFile(path.join(v1, "chatty.mjs"), CHATTY);
  const deployed = await daemon.cli(["deploy", "--release-path", v1]);
  expect(deployed.code, deployed.stderr).toBe(0);
}, 60_000);

/** Starts `rollbridge ARGS` with its output collected; `received` counts stdout bytes. */
function startFollower(args: string[]): { child: ChildProcess; out: { received: number; stdout: string; stderr: string } } {
  const child = spawn(process.execPath, [CLI, ...args, "--config", daemon.configPath], { cwd: daemon.dir, stdio: ["ignore", "pipe", "pipe"] });
  follower = child;
  const out = { received: 0, stdout: "", stderr: "" };
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    out.received += chunk.length;
    if (out.stdout.length < 64 * 1024 * 1024) out.stdout += chunk;
  });
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (out.stderr += chunk));
  return { child, out };
}

describe("bounded follow streams", () => {
  it("keeps the daemon's RSS flat while a logs --follow is stopped, then cuts that follower and says why", async () => {
    // The daemon's steady state under 4 MB/s of output, before anyone follows.
    const daemonPid = daemon.child.pid!;
    await sleep(2000);
    let baseline = 0;
    for (let i = 0; i < 8; i++) {
      baseline = Math.max(baseline, await vmRssBytes(daemonPid));
      await sleep(250);
    }

    const { child, out } = startFollower(["logs", "--follow", "--process", "chatty"]);
    await until(() => out.received > 256 * 1024, 20_000, "the follower's first lines");
    signal(child, "SIGSTOP");

    const samples: number[] = [];
    for (let i = 0; i < 24; i++) {
      await sleep(500);
      samples.push(await vmRssBytes(daemonPid));
    }
    const growth = Math.max(...samples) - baseline;
    // Unbounded, 12 s at 4 MB/s queue ~48 MB of lines (about 100 MB of RSS); bounded, the
    // follower's queue is at most 1 MiB. The margin is for GC timing on a loaded machine.
    expect(growth, `daemon RSS ${Math.round(baseline / 1e6)} MB → max ${Math.round(Math.max(...samples) / 1e6)} MB`).toBeLessThan(32 * 1024 * 1024);

    signal(child, "SIGCONT");
    expect(await waitForExit(child, 30_000)).toBe(true);
    expect(child.exitCode).toBe(1);
    expect(out.stderr).toContain("logs --follow fell more than 1024 KiB behind the daemon");
    expect(out.stderr).toContain("fix: rollbridge logs shows the recent lines");
  }, 90_000);

  it("keeps stdout NDJSON when a --json follower is cut: the message goes to stderr", async () => {
    const { child, out } = startFollower(["logs", "--follow", "--json", "--process", "chatty"]);
    await until(() => out.received > 256 * 1024, 20_000, "the follower's first lines");
    signal(child, "SIGSTOP");
    await sleep(3000); // 12 MB printed meanwhile: far past the 1 MiB a follower may fall behind
    signal(child, "SIGCONT");
    expect(await waitForExit(child, 30_000)).toBe(true);
    expect(child.exitCode).toBe(1);
    expect(out.stderr).toContain("fell more than 1024 KiB behind");
    const lines = out.stdout.split("\n").filter((l) => l !== "");
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
    expect(JSON.parse(lines.at(-1)!).processId).toBe("chatty");
  }, 60_000);
});
