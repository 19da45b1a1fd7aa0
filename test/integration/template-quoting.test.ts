// A revision of `$(touch …)` and a release path with spaces and quotes, end to end: the values
// reach the app (its argv and environment) and the lifecycle hooks literally, and the shell never
// runs them.
import { randomBytes } from "node:crypto";
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startDaemon, until, type TestDaemon } from "../helpers/daemon.js";

let daemon: TestDaemon | null = null;
const marker = `/tmp/rb-injected-${randomBytes(6).toString("hex")}`;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
  await fs.rm(marker, { force: true });
});

async function procList(pid: number, file: "cmdline" | "environ"): Promise<string[]> {
  return (await fs.readFile(`/proc/${pid}/${file}`, "utf8")).split("\0").filter((s) => s !== "");
}

describe("template values in commands and hooks", () => {
  it("deploys a revision of $(touch …): the app sees it literally and nothing runs it", async () => {
    daemon = await startDaemon({
      processes: `  - id: web
    policy: proxied
    command: 'node {{APP}} --revision {{revision}} --release "{{releasePath}}"'
    port: {from: {{RANGE_FROM}}, to: {{RANGE_TO}}}
    health: {path: /ping, intervalMs: 50}
    env: {SEEN_REVISION: "{{revision}}"}
    lifecycle: {quietCommand: 'printf "%s|%s" {{revision}} "{{releasePath}}" > "{{releasePath}}/quiet.txt"'}
    restartDelayMs: 200
    gracefulStopMs: 3000`,
      proxy: { drainTimeoutMs: 1000 },
    });
    const revision = `$(touch ${marker})`;
    const v1 = await daemon.release(`it's "v1" here`);
    const first = await daemon.cli(["deploy", "--release-path", v1, "--revision", revision, "--release-id", "v1"]);
    expect(first.code, first.stderr + first.stdout).toBe(0);

    const status = await daemon.status();
    expect(status.activeRelease.revision).toBe(revision);
    const web = status.processes.find((p: { id: string }) => p.id === "web");
    const argv = await procList(web.pid, "cmdline");
    expect(argv.slice(-4)).toEqual(["--revision", revision, "--release", v1]);
    const env = await procList(web.pid, "environ");
    expect(env).toContain(`ROLLBRIDGE_REVISION=${revision}`);
    expect(env).toContain(`SEEN_REVISION=${revision}`);
    expect(existsSync(marker)).toBe(false);

    // Retiring v1 runs its quiet hook, rendered with v1's values.
    const v2 = await daemon.release("v2");
    const second = await daemon.cli(["deploy", "--release-path", v2, "--revision", "r2"]);
    expect(second.code, second.stderr + second.stdout).toBe(0);
    const written = await until(() => fs.readFile(path.join(v1, "quiet.txt"), "utf8").catch(() => ""), 15_000, "the quiet hook's file");
    expect(written).toBe(`${revision}|${v1}`);
    expect(existsSync(marker)).toBe(false);
  });
});
