// A state file that cannot be trusted (writable by every user: anyone could name processes in
// it) is refused at start with a clear message, set aside, and nothing it names is adopted or
// signalled: the app it lists keeps running, untouched, beside the release the new daemon starts.
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { controlGet, startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { deploy, isAlive, killDaemonHard, Started, STATE, startTimeOf, stateLists, WEB } from "../helpers/recovery.js";

let daemon: TestDaemon;
const t = new Started();
/** Processes the test leaves running on purpose (not adopted): stopped by their group afterwards. */
const leftovers: number[] = [];
afterEach(async () => {
  await t.cleanup();
  for (const pid of leftovers.splice(0)) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // gone
    }
  }
});

describe("an untrusted state file", () => {
  it("is refused with a clear message and its processes are left alone", async () => {
    t.daemon = daemon = await startDaemon({ processes: WEB(`{GREETING: "hi"}`), extra: `statePath: ${STATE}` });
    await deploy(daemon, "v1");
    const web = (await daemon.status()).processes.find((p: { id: string }) => p.id === "web");
    const startTime = await startTimeOf(web.pid);
    await stateLists(daemon, web.pid);
    await killDaemonHard(daemon);
    leftovers.push(web.pid);
    const file = path.join(daemon.dir, STATE);
    await fs.chmod(file, 0o666);

    await t.daemonAgain(daemon);
    const events = (await controlGet(daemon.socket, "/events")).events as { type: string; message: string }[];
    const refused = events.find((e) => e.type === "state-file-invalid");
    expect(refused?.message).toMatch(/writable by every user \(mode 666\).*nothing in it was trusted or signalled/);
    expect(refused?.message).toContain(`${file}.invalid`);
    expect(events.some((e) => e.type === "process-adopted")).toBe(false);
    // The listed app was neither adopted nor signalled: same pid, same start time, still running.
    const status = await until(
      async () => {
        const s = await controlGet(daemon.socket, "/status");
        return s.converged && s.activeRelease?.id === "v1" ? s : null;
      },
      20_000,
      "the new daemon serving v1 with a fresh process",
    );
    expect(status.processes[0].pid).not.toBe(web.pid);
    expect(isAlive(web.pid)).toBe(true);
    expect(await startTimeOf(web.pid)).toBe(startTime);
  }, 90_000);
});
