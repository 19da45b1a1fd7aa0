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
  it("narrates two deploys under load, ends with the summary table, and leaves no process behind", async () => {
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
    for (const step of [/starting the daemon/, /deploying v1/, /traffic switched to v1/, /deploying v2 under load/, /traffic switched to v2 from v1/, /draining v1/, /v1 stopped/, /shutting down the daemon/, /daemon stopped/]) {
      expect(out).toMatch(step);
    }
    expect(out).toMatch(/requests sent\s+[1-9]\d*/);
    expect(out).toMatch(/failed \(errors \+ non-2xx\)\s+0\n/);
    expect(out).toMatch(/switch time \(healthy → switched\)\s+\d+ ms/);
    expect(out).toMatch(/drain time \(v1 switched → stopped\)\s+\d+ ms/);

    const dir = /demo directory (\S+)/.exec(out)?.[1];
    expect(dir).toMatch(/rollbridge-demo-/);
    expect(await processesUsing(dir!)).toEqual([]);
    await expect(fs.stat(dir!)).rejects.toThrow();
  }, 100_000);
});
