// A plain `rollbridge daemon` (no V8 flags, as a user types it or a unit without NODE_OPTIONS
// runs it) starts again once with its heap flags (src/cli/daemon-heap.ts): in place where Node
// has process.execve (the same pid), else as a child this process follows. Either way the pid
// the daemon reports is the process that serves, signals sent to the started pid reach it, the
// started process ends as it ends, and passed sockets (LISTEN_FDS) are served.
import { promises as fs } from "node:fs";
import { spawn } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { DAEMON_HEAP_FLAGS } from "../../src/cli/daemon-heap.js";
import { daemonEvents, isAlive, runCli, startDaemon, until, waitForExit, type TestDaemon } from "../helpers/daemon.js";
import { get } from "../helpers/load.js";
import { killQuietly } from "../helpers/process.js";
import { holdSocket, type SocketHolder } from "../helpers/socket-holder.js";

/** The environment of a daemon that is allowed to restart itself (vitest.config.ts turns that off for the other tests). */
const RESTARTING = { ROLLBRIDGE_DAEMON_REEXEC: undefined } as unknown as Record<string, string>;
const IN_PLACE = typeof (process as { execve?: unknown }).execve === "function";

let daemon: TestDaemon | null = null;
let holder: SocketHolder | null = null;
const appGroups: number[] = [];
afterEach(async () => {
  await daemon?.stop();
  await holder?.stop();
  for (const pid of appGroups.splice(0)) killQuietly(-pid);
  daemon = null;
  holder = null;
});

async function cmdline(pid: number): Promise<string[]> {
  return (await fs.readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").filter(Boolean);
}

async function environ(pid: number): Promise<string[]> {
  return (await fs.readFile(`/proc/${pid}/environ`, "utf8")).split("\0").filter(Boolean);
}

async function parentOf(pid: number): Promise<number> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

/** The serving daemon is the started process (execve) or its child (older Node). */
async function expectServedBy(daemonPid: number, startedPid: number): Promise<void> {
  if (IN_PLACE) expect(daemonPid).toBe(startedPid);
  else expect(await parentOf(daemonPid)).toBe(startedPid);
}

describe("the daemon's heap flags", () => {
  it("a plain `rollbridge daemon` serves with them, deploys, and stops with exit 0 on SIGTERM to the pid that was started", async () => {
    const d = await startDaemon({ daemonEnv: RESTARTING });
    daemon = d;
    const s = await d.status();
    await expectServedBy(s.daemonPid, d.child.pid!);
    expect(await cmdline(s.daemonPid)).toEqual(expect.arrayContaining([...DAEMON_HEAP_FLAGS]));
    expect(daemonEvents(d, "daemon-started")[0]?.data).toMatchObject({ pid: s.daemonPid });

    await d.applyRelease("v1");
    const res = await get(d.proxyPort);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).release).toBe("v1");
    const app = (await d.status()).processes[0].pid as number;
    appGroups.push(app);
    // The marker that makes the restart happen once stays with the daemon: no app inherits it.
    expect((await environ(app)).some((v) => v.startsWith("ROLLBRIDGE_DAEMON_REEXEC="))).toBe(false);

    d.child.kill("SIGTERM");
    expect(await waitForExit(d.child, 20_000)).toBe(true);
    expect(d.child.exitCode).toBe(0);
    expect(isAlive(s.daemonPid)).toBe(false);
    expect(isAlive(app)).toBe(false);
  });

  it("keeps flags the user gave: no second start, the pid stays the one started", async () => {
    const d = await startDaemon({ daemonEnv: RESTARTING, spawnDaemon: (command, args, options) => spawn(command, ["--max-semi-space-size=7", ...args], options) });
    daemon = d;
    const s = await d.status();
    expect(s.daemonPid).toBe(d.child.pid);
    const args = await cmdline(s.daemonPid);
    expect(args).toContain("--max-semi-space-size=7");
    expect(args).not.toEqual(expect.arrayContaining([...DAEMON_HEAP_FLAGS]));
  });

  it("the started process ends as the daemon ends: of SIGKILL when the daemon is killed, with its exit code when it fails", async () => {
    const d = await startDaemon({ daemonEnv: RESTARTING });
    daemon = d;
    const { daemonPid } = await d.status();
    process.kill(daemonPid, "SIGKILL");
    expect(await waitForExit(d.child, 20_000)).toBe(true);
    expect(d.child.signalCode).toBe("SIGKILL");

    await fs.writeFile(d.configPath, "proxy: [not, a, mapping]\n");
    const env = { ...process.env };
    delete env.ROLLBRIDGE_DAEMON_REEXEC;
    const failed = await runCli(["daemon", "--config", d.configPath], { cwd: d.dir, env, timeoutMs: 30_000 });
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain("proxy");
  });

  it("passes the sockets of socket activation to the daemon it starts, which serves on them", async () => {
    const h = await holdSocket();
    holder = h;
    const d = await startDaemon({ daemonEnv: RESTARTING, proxyPort: h.port, spawnDaemon: h.spawn, stopDaemon: () => h.stop() });
    daemon = d;
    const started = await h.started(1);
    const s = await d.status();
    // A child even where Node has execve, which would close the passed sockets.
    expect(await parentOf(s.daemonPid)).toBe(started);
    expect(daemonEvents(d, "daemon-started")[0]?.data).toMatchObject({ pid: s.daemonPid, socketActivation: true });
    await d.applyRelease("v1");
    appGroups.push((await d.status()).processes[0].pid as number);
    const res = await until(
      async () => {
        const r = await get(d.proxyPort);
        return r.status === 200 ? r : null;
      },
      10_000,
      "an answer on the passed socket",
    );
    expect(JSON.parse(res.body).release).toBe("v1");
  });
});
