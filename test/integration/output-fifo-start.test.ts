// A process's output FIFOs are made by the `mkfifo` program before it is spawned. The daemon
// runs it without blocking: while it runs, the proxy goes on answering the release that serves.
// Checked with a `mkfifo` that takes a second (first in the daemon's PATH): a blocking start
// held every request for that second.
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { get } from "../helpers/load.js";

let daemon: TestDaemon | null = null;
let bin: string | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
  if (bin) rmSync(path.dirname(bin), { recursive: true, force: true });
  bin = null;
});

describe("starting a process with output FIFOs", () => {
  it("keeps the proxy answering while a slow mkfifo runs, and the new release's output still arrives", async () => {
    const realMkfifo = execFileSync("sh", ["-c", "command -v mkfifo"], { encoding: "utf8" }).trim();
    bin = path.join(mkdtempSync(path.join(os.tmpdir(), "rb-slow-mkfifo-")), "bin");
    mkdirSync(bin);
    writeFileSync(path.join(bin, "mkfifo"), `#!/bin/sh\nsleep 1\nexec ${realMkfifo} "$@"\n`);
    chmodSync(path.join(bin, "mkfifo"), 0o755);
    daemon = await startDaemon({ daemonEnv: { PATH: `${bin}:${process.env.PATH ?? ""}` } });
    const d = daemon;
    expect((await d.cli(["deploy", "--release-path", await d.release("v1")])).code).toBe(0);

    // Requests to v1, one after another, for as long as v2's deploy takes.
    const latencies: number[] = [];
    const statuses: number[] = [];
    let deploying = true;
    const load = (async () => {
      while (deploying) {
        const started = Date.now();
        const r = await get(d.proxyPort, "/hello", { timeoutMs: 10_000 });
        latencies.push(Date.now() - started);
        statuses.push(r.status);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    const applied = await d.cli(["apply", "--release-path", await d.release("v2"), "--wait"]);
    deploying = false;
    await load;
    expect(applied.code, applied.stderr + applied.stdout).toBe(0);
    expect(statuses.length).toBeGreaterThan(5);
    expect(statuses.every((s) => s === 200)).toBe(true);
    // The slow mkfifo ran for a second during the deploy; no request waited for it.
    expect(Math.max(...latencies)).toBeLessThan(700);

    // v2's output went through its FIFOs: its lines are in the daemon's logs.
    const logs = await d.cli(["logs", "--json"]);
    expect(logs.code, logs.stderr).toBe(0);
    const lines = (JSON.parse(logs.stdout) as { lines: { releaseId: string; line: string }[] }).lines;
    expect(lines.some((l) => l.releaseId === "v2" && l.line.startsWith("listening on"))).toBe(true);
  });
});
