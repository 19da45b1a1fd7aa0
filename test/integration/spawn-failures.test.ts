// Errors that help (issue 12.13, spawn failures): a process that cannot be started says why —
// a missing cwd, a missing program, one that is not executable — in the rollout failure,
// `apply --wait`, events and status, never "exited with code unknown", and never with an
// environment value or the command line in the message.
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { daemonEvents, startDaemon, until, type TestDaemon } from "../helpers/daemon.js";

const SECRET_ENV = "rb-spawn-secret-env";
const SECRET_ARG = "rb-spawn-secret-arg";

let daemon: TestDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

function web(fields: string[]): string {
  return [
    "  - id: web",
    "    policy: proxied",
    "    port: {from: {{RANGE_FROM}}, to: {{RANGE_TO}}}",
    "    health: {path: /ping, intervalMs: 50}",
    "    restartDelayMs: 200",
    `    env: {API_TOKEN: ${SECRET_ENV}}`,
    ...fields.map((line) => `    ${line}`),
  ].join("\n");
}

/** Everything a user can see about the daemon: apply output, status, events (JSON), the daemon's log. */
async function everythingSaid(d: TestDaemon, applied: { stdout: string; stderr: string }): Promise<string> {
  const events = await d.cli(["events", "--json", "--limit", "1000"]);
  const status = await d.cli(["status", "--json"]);
  return [applied.stdout, applied.stderr, events.stdout, status.stdout, d.stdout.join("\n")].join("\n");
}

describe("a process that cannot be started", () => {
  const cases = [
    {
      name: "a cwd that does not exist",
      fields: [`command: node {{APP}} --token ${SECRET_ARG}`, "cwd: '{{releasePath}}/missing'"],
      cause: (release: string) => `cwd ${release}/missing does not exist (ENOENT)`,
    },
    {
      name: "a program that is not in PATH",
      fields: [`command: rollbridge-no-such-program --token ${SECRET_ARG}`],
      cause: () => "command rollbridge-no-such-program not found in PATH (ENOENT)",
    },
    {
      name: "a program that is not executable",
      fields: [`command: ./server.sh --token ${SECRET_ARG}`],
      cause: () => "command ./server.sh is not executable: permission denied (EACCES)",
    },
  ];

  for (const c of cases) {
    it(`names its cause when it is ${c.name}, and quotes no secret`, async () => {
      daemon = await startDaemon({ processes: web(c.fields) });
      const d = daemon;
      const release = await d.release("v1");
      await fs.writeFile(path.join(release, "server.sh"), "#!/bin/sh\nexit 0\n", { mode: 0o644 });
      const applied = await d.cli(["apply", "--release-path", release, "--wait"], { timeoutMs: 60_000 });
      const cause = c.cause(release);

      expect(applied.code, applied.stdout + applied.stderr).toBe(1);
      expect(applied.stderr).toContain(`web could not start: ${cause}`);
      const failure = (await d.status()).releases.find((r: { id: string }) => r.id === "v1").failure;
      expect(failure).toMatchObject({ code: "SPAWN_FAILED", instanceId: "web", reason: `web could not start: ${cause}` });
      expect(daemonEvents(d, "process-start-failed").map((e) => e.message)).toContain(`could not start web (v1): ${cause}`);
      // No made-up exit of a process that never ran.
      expect(daemonEvents(d).filter((e) => e.type === "process-crashed" || e.type === "process-exited")).toEqual([]);

      const said = await everythingSaid(d, applied);
      expect(said).not.toMatch(/code unknown/);
      expect(said).not.toContain(SECRET_ENV);
      expect(said).not.toContain(SECRET_ARG);
    }, 60_000);
  }

  it("explains a compound command whose shell cannot find a program (exit 127)", async () => {
    daemon = await startDaemon({ processes: web([`command: 'cd . && rollbridge-no-such-program --token ${SECRET_ARG}'`]) });
    const d = daemon;
    const release = await d.release("v1");
    const applied = await d.cli(["apply", "--release-path", release, "--wait"], { timeoutMs: 60_000 });
    expect(applied.code).toBe(1);
    expect(applied.stderr).toContain("web exited with code 127 (the shell could not find a command) before it became ready");
    // The shell's own line names the program; it is in the last output, as for any failed start.
    expect(applied.stderr).toMatch(/\| .*rollbridge-no-such-program: not found/);
  }, 60_000);

  it("shows the cause in status and events when a crash restart cannot start", async () => {
    daemon = await startDaemon({ processes: web(["command: node {{APP}}", "cwd: '{{releasePath}}/app'"]) });
    const d = daemon;
    const release = await d.release("v1");
    await fs.mkdir(path.join(release, "app"));
    expect((await d.cli(["apply", "--release-path", release, "--wait"], { timeoutMs: 60_000 })).code).toBe(0);
    const running = (await d.status()).processes.find((p: { id: string }) => p.id === "web") as { pid: number };

    // The directory goes away under the running process (a cleanup script, a bad rsync); then it crashes.
    await fs.rename(path.join(release, "app"), path.join(release, "app.old"));
    process.kill(running.pid, "SIGKILL");
    const cause = `cwd ${release}/app does not exist (ENOENT)`;
    const web_ = await until(async () => (await d.status()).processes.find((p: { id: string; error: string | null }) => p.id === "web" && p.error === cause), 15_000, "the restart's cause in status");
    expect(web_.state).toBe("failed");
    expect(daemonEvents(d, "process-start-failed").map((e) => e.message)).toContain(`could not start web (v1): ${cause}`);
    const human = await d.cli(["status"]);
    expect(human.stdout).toContain(`web (v1): ${cause}`);
  }, 60_000);
});
