// systemd socket activation through a stand-in (test/helpers/socket-holder.ts): the daemon
// serves on the socket passed as fd 3 and binds nothing of its own; killed with SIGKILL, it is
// started again on the same socket and no connection is refused meanwhile (they wait in the
// backlog). Variables meant for another pid are ignored; none of them reaches a managed process.
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { daemonEvents, startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { get, startLoad } from "../helpers/load.js";
import { isAlive, killQuietly } from "../helpers/process.js";
import { quickStatus } from "../helpers/raw.js";
import { holdSocket, type SocketHolder } from "../helpers/socket-holder.js";

let daemon: TestDaemon | null = null;
let holder: SocketHolder | null = null;
const leftovers: number[] = [];
const leftoverDirs: string[] = [];
afterEach(async () => {
  for (const dir of leftoverDirs.splice(0)) await fs.rm(dir, { recursive: true, force: true });
  await daemon?.stop();
  await holder?.stop();
  for (const pid of leftovers.splice(0)) killQuietly(-pid);
  daemon = null;
  holder = null;
});

async function activatedDaemon(extra: Parameters<typeof startDaemon>[0] = {}): Promise<{ d: TestDaemon; h: SocketHolder }> {
  const h = await holdSocket();
  holder = h;
  daemon = await startDaemon({ ...extra, proxyPort: h.port, spawnDaemon: h.spawn, stopDaemon: () => h.stop() });
  return { d: daemon, h };
}

async function environOf(pid: number): Promise<string[]> {
  return (await fs.readFile(`/proc/${pid}/environ`, "utf8")).split("\0").filter(Boolean);
}

describe("systemd socket activation", () => {
  it("serves on the inherited socket and keeps LISTEN_* away from managed processes", async () => {
    const { d, h } = await activatedDaemon();
    const pid = await h.started(1);
    await d.applyRelease("v1");
    // The port is held by the stand-in: a daemon that bound its own would have failed with EADDRINUSE.
    const res = await get(d.proxyPort);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).release).toBe("v1");
    const started = daemonEvents(d, "daemon-started");
    expect(started.at(-1)?.data).toMatchObject({ pid, socketActivation: true });
    const s = await d.status();
    expect(s.daemonPid).toBe(pid);
    const appEnv = await environOf(s.processes[0].pid);
    expect(appEnv.filter((v) => /^(LISTEN_FDS|LISTEN_PID|LISTEN_FDNAMES)=/.test(v))).toEqual([]);
  });

  it("refuses no connection while a SIGKILLed daemon is started again on the same socket", async () => {
    const { d, h } = await activatedDaemon({ proxy: { drainTimeoutMs: 1000, holdTimeoutMs: 10_000 } });
    const first = await h.started(1);
    await d.applyRelease("v1");
    const before = await quickStatus(d.socket);
    const appPids: number[] = before.processes.map((p: { pid: number }) => p.pid);
    leftovers.push(...appPids);

    const load = startLoad(d.proxyPort, { connections: 32 });
    await until(() => load.stats.ok > 200, 15_000, "load flowing");
    process.kill(first, "SIGKILL");
    const second = await h.started(2);
    expect(second).not.toBe(first);
    expect(await isAlive(first)).toBe(false);
    // Serving again: the new daemon answers on the control socket and has an active release.
    await until(
      async () => {
        const s = await quickStatus(d.socket).catch(() => null);
        return s?.daemonPid === second && s.activeRelease !== null;
      },
      30_000,
      "the restarted daemon to serve",
    );
    const okAtRestart = load.stats.ok;
    await until(() => load.stats.ok > okAtRestart + 200, 15_000, "load flowing through the new daemon");
    const stats = await load.stop();

    // The socket never closed: no connection was refused. (Requests in flight at the kill may fail.)
    expect(stats.codes.ECONNREFUSED ?? 0, JSON.stringify(stats)).toBe(0);
    expect(stats.ok).toBeGreaterThan(400);
    const after = await quickStatus(d.socket);
    for (const p of after.processes as { pid: number }[]) leftovers.push(p.pid);
  });

  it("ignores LISTEN_FDS meant for another pid and binds its own port", async () => {
    const d = await startDaemon({ daemonEnv: { LISTEN_FDS: "1", LISTEN_PID: "1", LISTEN_FDNAMES: "proxy" } });
    daemon = d;
    await d.applyRelease("v1");
    expect((await get(d.proxyPort)).status).toBe(200);
    expect(daemonEvents(d, "socket-activation-ignored")).toHaveLength(1);
    expect(daemonEvents(d, "daemon-started").at(-1)?.data).toMatchObject({ socketActivation: false });
    const s = await d.status();
    expect((await environOf(s.processes[0].pid)).filter((v) => v.startsWith("LISTEN_"))).toEqual([]);
  });

  it("tells systemd it is ready through systemd-notify when NOTIFY_SOCKET is set, and keeps NOTIFY_SOCKET from the apps", async () => {
    const bin = await fs.mkdtemp(path.join(os.tmpdir(), "rb-notify-"));
    leftoverDirs.push(bin);
    const record = path.join(bin, "notified");
    // A stand-in systemd-notify: records the socket it was given and its arguments.
    await fs.writeFile(path.join(bin, "systemd-notify"), `#!/bin/sh\necho "$NOTIFY_SOCKET $*" >> '${record}'\n`, { mode: 0o755 });
    const d = await startDaemon({ daemonEnv: { NOTIFY_SOCKET: "/run/test-notify.sock", PATH: `${bin}:${process.env.PATH ?? ""}` } });
    daemon = d;
    const line = await until(() => fs.readFile(record, "utf8").catch(() => ""), 10_000, "systemd-notify to run");
    expect(line.trim()).toBe(`/run/test-notify.sock --ready --pid=${d.child.pid}`);
    await until(() => daemonEvents(d, "systemd-notified").length === 1, 5000, "the systemd-notified event");
    await d.applyRelease("v1");
    const s = await d.status();
    expect((await environOf(s.processes[0].pid)).filter((v) => v.startsWith("NOTIFY_SOCKET="))).toEqual([]);
  });
});
