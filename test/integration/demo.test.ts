// `npm run demo`, the first thing the README asks a new user to run: it narrates each step,
// ends with the summary table, finishes well within a minute, and leaves nothing running.
import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../helpers/daemon.js";

/** Pids of processes whose command line or working directory mentions `dir`. */
async function processesUsing(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await fs.readdir("/proc")) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const cmdline = (await fs.readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).replaceAll("\0", " ");
    const cwd = await fs.readlink(`/proc/${pid}/cwd`).catch(() => "");
    if (cmdline.includes(dir) || cwd.startsWith(dir)) found.push(`${pid}: ${cmdline.trim()} (cwd ${cwd})`);
  }
  return found;
}

describe("the demo", () => {
  it("narrates two deploys under load and a bad release rolled back by itself, ends with the summary table, and leaves no process behind", async () => {
    const startedAt = Date.now();
    const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [path.join(ROOT, "scripts/demo.mjs")], { cwd: ROOT, timeout: 90_000 }, (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr });
      });
    });
    const elapsedMs = Date.now() - startedAt;
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(elapsedMs).toBeLessThan(60_000);

    const out = result.stdout;
    for (const step of [
      /starting the daemon/,
      /deploying v1/,
      /traffic switched to v1/,
      /deploying v2 under load/,
      /traffic switched to v2 from v1/,
      /draining v1/,
      /v1 stopped/,
      /deploying v3 under load with a 10 s bake window/,
      /traffic switched to v3 from v2/,
      /v3 rolled back to v2: \d+ of \d+ responses failed/,
      /apply --wait exited 1: rolled-back: rolled back: \d+ of \d+ responses failed/,
      /v2 kept serving: the same process \(pid \d+\) answered every request after the rollback/,
      /shutting down the daemon/,
      /daemon stopped/,
    ]) {
      expect(out).toMatch(step);
    }
    expect(out).toMatch(/requests sent\s+[1-9]\d*/);
    expect(out).toMatch(/failed \(errors \+ non-2xx\)\s+0\n/);
    expect(out).toMatch(/switch time \(healthy → switched\)\s+\d+ ms/);
    expect(out).toMatch(/drain time \(v1 switched → stopped\)\s+\d+ ms/);
    expect(out).toMatch(/v3 \(bad release\): outcome\s+rolled-back\n/);
    const pids = /v2 pid before \/ after v3\s+(\d+) \/ (\d+)/.exec(out);
    expect(pids).not.toBeNull();
    expect(pids?.[1]).toBe(pids?.[2]);
    expect(out).toMatch(/v3 was rolled back by itself; v2 never stopped/);

    const dir = /demo directory (\S+)/.exec(out)?.[1];
    expect(dir).toMatch(/rollbridge-demo-/);
    expect(await processesUsing(dir!)).toEqual([]);
    await expect(fs.stat(dir!)).rejects.toThrow();
  }, 100_000);
});
