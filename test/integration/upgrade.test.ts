// `rollbridge upgrade` and SIGUSR2 end to end: a real daemon under keep-alive load, with an open
// WebSocket and a singleton, hands its listeners and processes to a new daemon started from the
// built code: no failed request, the same app pids (by /proc start time), the WebSocket opened
// before still echoing, status answered by the new daemon; twice in a row, then by signal. A new
// daemon that cannot start leaves the old one serving, untouched, and reachable by the CLI even
// when it died after renaming its control socket over control.path. proxy.socket (a unix-socket
// listener) goes across an upgrade without a failed request either.
import { promises as fs } from "node:fs";
import http from "node:http";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { controlGet, daemonEvents, isAlive, sleep, startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { killQuietly } from "../helpers/process.js";
import { get, startLoad } from "../helpers/load.js";
import { deploy, json, Started, STATE, startTimeOf, WEB } from "../helpers/recovery.js";

const t = new Started();
let clients: WebSocket[] = [];
/** Daemons started by an upgrade are nobody's child here: stopped by pid. */
let daemonPids: number[] = [];
/** Processes a test started that are nobody's child (a stand-in systemd-notify left sleeping): SIGKILLed by pid. */
const strays: number[] = [];
afterEach(async () => {
  for (const pid of strays.splice(0)) killQuietly(pid);
  for (const ws of clients) ws.terminate();
  clients = [];
  for (const pid of daemonPids.reverse()) {
    if (!isAlive(pid)) continue;
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // gone
    }
    await until(() => !isAlive(pid), 20_000, `daemon ${pid} to stop`).catch(() => process.kill(pid, "SIGKILL"));
  }
  daemonPids = [];
  await t.cleanup();
});

const TICKER = (countFile: string) => `  - id: ticker
    policy: singleton
    command: sh -c 'echo start >> ${countFile}; while :; do echo tick; sleep 0.05; done'
    gracefulStopMs: 1000`;

interface Pids {
  daemon: number;
  apps: Map<string, { pid: number; startTime: number }>;
}

/**
 * A long-lived control client: one keep-alive connection, reused. After a handover the old daemon
 * closes it (Connection: close, idle connections dropped), so the next request reaches the new one.
 */
const keepAlive = new http.Agent({ keepAlive: true });
afterAll(() => keepAlive.destroy());

async function pidsOf(d: TestDaemon): Promise<Pids> {
  const status = await controlGet(d.socket, "/status", 10_000, keepAlive);
  const apps = new Map<string, { pid: number; startTime: number }>();
  for (const p of status.processes as { instanceId: string; pid: number }[]) apps.set(p.instanceId, { pid: p.pid, startTime: await startTimeOf(p.pid) });
  return { daemon: status.daemonPid as number, apps };
}

async function openEcho(port: number): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/socket`);
  clients.push(ws);
  ws.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => {
    ws.once("message", (data) => (String(data).startsWith("hello ") ? resolve() : reject(new Error(String(data)))));
    ws.once("close", () => reject(new Error("closed before hello")));
  });
  return ws;
}

function echo(ws: WebSocket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no echo in 5 s (readyState ${ws.readyState})`)), 5000);
    ws.once("message", (data) => {
      clearTimeout(timer);
      resolve(String(data));
    });
    ws.send(text);
  });
}

/** The new daemon serves: status from it, the same processes, started at the same time. */
async function expectTakenOver(d: TestDaemon, before: Pids, newPid: number): Promise<void> {
  const after = await until(
    async () => {
      const p = await pidsOf(d);
      return p.daemon === newPid ? p : null;
    },
    15_000,
    `daemon ${newPid} answering on the control socket`,
  );
  expect([...after.apps.entries()]).toEqual([...before.apps.entries()]);
  const status = await json(await d.cli(["status", "--json"]));
  expect(status.daemonPid).toBe(newPid);
  expect(status.activeRelease.id).toBe("v1");
  expect(status.orphans).toEqual([]);
  for (const p of status.processes) expect(p.restarts).toBe(0);
}

describe("rollbridge upgrade", () => {
  it("hands listeners and processes to a new daemon under load: no failed request, same app pids, the WebSocket still echoes; again, and by SIGUSR2", async () => {
    const dir = await t.tempDir("rb-upgrade-");
    const starts = path.join(dir, "starts");
    const d = (t.daemon = await startDaemon({ processes: `${WEB(`{GREETING: "hi"}`)}\n${TICKER(starts)}`, extra: `statePath: ${STATE}`, proxy: { drainTimeoutMs: 30_000 } }));
    await deploy(d, "v1");
    const before = await pidsOf(d);
    daemonPids.push(before.daemon);
    const ws = await openEcho(d.proxyPort);
    const load = startLoad(d.proxyPort, { connections: 16 });
    await until(() => load.stats.ok > 200, 15_000, "load flowing");

    const first = await d.cli(["upgrade", "--json"], { timeoutMs: 120_000 });
    expect(first.code, first.stderr).toBe(0);
    const up1 = JSON.parse(first.stdout);
    daemonPids.push(up1.newPid);
    expect(up1.oldPid).toBe(before.daemon);
    expect(await echo(ws, "right after the upgrade")).toBe("right after the upgrade");
    expect(up1.newPid).not.toBe(before.daemon);
    expect(up1.durationMs).toBeGreaterThan(0);
    await expectTakenOver(d, before, up1.newPid);
    // The WebSocket opened before stays with the old daemon, which keeps tunnelling it to the same
    // app until it closes (here: the client closes it) or drainTimeoutMs.
    expect(await echo(ws, "after first upgrade")).toBe("after first upgrade");
    ws.close(1000);
    const okAfterFirst = load.stats.ok;
    await until(() => load.stats.ok > okAfterFirst + 200, 15_000, "load flowing through the new daemon");

    // The human output names both pids and the time taken.
    const second = await d.cli(["upgrade"], { timeoutMs: 120_000 });
    expect(second.code, second.stderr).toBe(0);
    const match = /daemon (\d+) took over from daemon (\d+) in (\d+) ms/.exec(second.stdout);
    expect(match, second.stdout).not.toBeNull();
    const secondPid = Number(match![1]);
    daemonPids.push(secondPid);
    expect(Number(match![2])).toBe(up1.newPid);
    await expectTakenOver(d, before, secondPid);
    // The first upgrade's old daemon ends once its connections are gone (the WebSocket closed above).
    await until(() => !isAlive(before.daemon), 20_000, "the first daemon to exit");

    process.kill(secondPid, "SIGUSR2");
    const third = (
      await until(
        async () => {
          const p = await pidsOf(d);
          return p.daemon !== secondPid ? p : null;
        },
        60_000,
        "a new daemon after SIGUSR2",
      )
    ).daemon;
    daemonPids.push(third);
    await expectTakenOver(d, before, third);
    const okAfterThird = load.stats.ok;
    await until(() => load.stats.ok > okAfterThird + 200, 15_000, "load flowing after SIGUSR2");

    const stats = await load.stop();
    expect(stats.failed, JSON.stringify(stats.errors)).toBe(0);
    expect(stats.non2xx, JSON.stringify(stats.errors)).toBe(0);
    expect(stats.ok).toBeGreaterThan(600);
    for (const { pid } of before.apps.values()) expect(isAlive(pid)).toBe(true);
    expect((await fs.readFile(starts, "utf8")).trim().split("\n")).toEqual(["start"]);

    // SIGTERM to the daemon that serves now still stops everything.
    process.kill(third, "SIGTERM");
    await until(() => !isAlive(third), 20_000, "the last daemon to stop");
    await until(() => [...before.apps.values()].every(({ pid }) => !isAlive(pid)), 20_000, "every app stopped with it");
  }, 180_000);

  it("closes a WebSocket still open at the old daemon's drainTimeoutMs with a close frame (1001), never a bare reset", async () => {
    const d = (t.daemon = await startDaemon({ extra: `statePath: ${STATE}`, proxy: { drainTimeoutMs: 1500 } }));
    await deploy(d, "v1");
    const before = await pidsOf(d);
    daemonPids.push(before.daemon);
    const ws = await openEcho(d.proxyPort);
    const closed = new Promise<{ code: number; at: number }>((resolve) => ws.once("close", (code) => resolve({ code, at: Date.now() })));

    const result = await d.cli(["upgrade", "--json"], { timeoutMs: 120_000 });
    expect(result.code, result.stderr).toBe(0);
    const up = JSON.parse(result.stdout);
    daemonPids.push(up.newPid);
    expect(await echo(ws, "still tunnelled by the old daemon")).toBe("still tunnelled by the old daemon");
    const { code } = await Promise.race([closed, sleep(30_000).then(() => ({ code: -1, at: 0 }))]);
    expect(code).toBe(1001);
    await until(() => !isAlive(before.daemon), 20_000, "the old daemon to exit");
    await expectTakenOver(d, before, up.newPid);
  }, 120_000);

  it("keeps the old daemon serving, untouched, when the new one fails to start", async () => {
    const d = (t.daemon = await startDaemon({ extra: `statePath: ${STATE}` }));
    await deploy(d, "v1");
    const before = await pidsOf(d);
    daemonPids.push(before.daemon);
    const load = startLoad(d.proxyPort, { connections: 4 });
    await until(() => load.stats.ok > 50, 15_000, "load flowing");
    // The new daemon reads the config afresh: one it cannot run makes it fail at start.
    const config = await fs.readFile(d.configPath, "utf8");
    await fs.writeFile(d.configPath, config.replace("resyncIntervalMs: 1000", "resyncIntervalMs: -5"));

    const result = await d.cli(["upgrade"], { timeoutMs: 120_000 });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/new daemon .*(failed to start|exited)/);
    expect(result.stderr).toMatch(/keeps serving/);

    await fs.writeFile(d.configPath, config);
    const after = await pidsOf(d);
    expect(after.daemon).toBe(before.daemon);
    expect([...after.apps.entries()]).toEqual([...before.apps.entries()]);
    const okBefore = load.stats.ok;
    await until(() => load.stats.ok > okBefore + 50, 15_000, "load still flowing");
    const stats = await load.stop();
    expect(stats.failed, JSON.stringify(stats.errors)).toBe(0);
    expect(stats.non2xx, JSON.stringify(stats.errors)).toBe(0);
    expect((await get(d.proxyPort)).status).toBe(200);
    // The old daemon still reconciles: a deploy goes through it.
    await deploy(d, "v2");
    expect((await controlGet(d.socket, "/status")).activeRelease.id).toBe("v2");
    await sleep(100);
  }, 120_000);

  it("answers on control.path again when the new daemon dies after renaming its control socket over it, before it said ready", async () => {
    // The new daemon is made to stop at that point with what the old one hands it: NOTIFY_SOCKET
    // and a stand-in systemd-notify on PATH. A successor tells systemd READY=1 after the rename
    // and before it tells the old daemon it is ready; the stand-in records who calls it and,
    // while the `block` file exists, never returns (it ignores the SIGTERM of the daemon's 5 s
    // timeout), so the test SIGKILLs the new daemon right there: a crash in that window.
    const bin = await t.tempDir("rb-upgrade-notify-");
    const record = path.join(bin, "calls");
    const block = path.join(bin, "block");
    await fs.writeFile(path.join(bin, "systemd-notify"), `#!/bin/sh\necho "$$ $*" >> '${record}'\nif [ -e '${block}' ]; then trap '' TERM; exec sleep 60; fi\n`, { mode: 0o755 });
    const d = (t.daemon = await startDaemon({ extra: `statePath: ${STATE}`, daemonEnv: { NOTIFY_SOCKET: path.join(bin, "notify.sock"), PATH: `${bin}:${process.env.PATH ?? ""}` } }));
    await deploy(d, "v1");
    const before = await pidsOf(d);
    daemonPids.push(before.daemon);
    const inodeBefore = (await fs.lstat(d.socket)).ino;
    const load = startLoad(d.proxyPort, { connections: 4 });
    await until(() => load.stats.ok > 50, 15_000, "load flowing");

    await fs.writeFile(block, "");
    const upgrading = d.cli(["upgrade"], { timeoutMs: 120_000 });
    const call = await until(
      async () => {
        const lines = (await fs.readFile(record, "utf8").catch(() => "")).trim().split("\n");
        const m = lines.map((l) => /^(\d+) --ready --pid=(\d+)$/.exec(l)).find((x) => x !== null && Number(x[2]) !== before.daemon);
        return m ? { stub: Number(m[1]), pid: Number(m[2]) } : null;
      },
      60_000,
      "the new daemon to call systemd-notify",
    );
    strays.push(call.stub);
    // The window: control.path is the new daemon's socket now, and the new daemon has not said ready.
    expect((await fs.lstat(d.socket)).ino).not.toBe(inodeBefore);
    process.kill(call.pid, "SIGKILL");
    await fs.rm(block);

    const result = await upgrading;
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/new daemon .*exited/);
    expect(result.stderr).toMatch(/keeps serving/);
    // The CLI reaches the old daemon again at control.path: status, and a deploy through it.
    const status = await json(await d.cli(["status", "--json"]));
    expect(status.daemonPid).toBe(before.daemon);
    expect(status.processes.map((p: { pid: number }) => p.pid)).toEqual([...before.apps.values()].map((a) => a.pid));
    expect(daemonEvents(d, "control-socket-reclaimed")).toHaveLength(1);
    const okBefore = load.stats.ok;
    await until(() => load.stats.ok > okBefore + 50, 15_000, "load still flowing");
    const stats = await load.stop();
    expect(stats.failed, JSON.stringify(stats.errors)).toBe(0);
    expect(stats.non2xx, JSON.stringify(stats.errors)).toBe(0);
    await deploy(d, "v2");
    expect((await controlGet(d.socket, "/status")).activeRelease.id).toBe("v2");

    // And the next upgrade goes through, from the daemon that took its socket back.
    const again = await d.cli(["upgrade", "--json"], { timeoutMs: 120_000 });
    expect(again.code, again.stderr).toBe(0);
    const up = JSON.parse(again.stdout);
    daemonPids.push(up.newPid);
    expect(up.oldPid).toBe(before.daemon);
    await until(async () => (await pidsOf(d)).daemon === up.newPid, 15_000, "the new daemon answering on control.path");
  }, 180_000);

  it("keeps serving proxy.socket (a unix-socket listener) across an upgrade: no failed request, the path still connects once the old daemon is gone", async () => {
    const dir = await t.tempDir("rb-upgrade-sock-");
    const proxySocket = path.join(dir, "proxy.sock");
    const d = (t.daemon = await startDaemon({ extra: `statePath: ${STATE}`, proxy: { drainTimeoutMs: 2000, socket: `{path: ${proxySocket}}` } }));
    await deploy(d, "v1");
    const before = await pidsOf(d);
    daemonPids.push(before.daemon);
    // Both kinds of client on the unix socket: keep-alive connections (moved to the new daemon when
    // the old one answers Connection: close) and a connection per request (each one a new connect
    // on the path, across the handover and the old daemon's exit).
    const keepAliveLoad = startLoad(proxySocket, { connections: 8 });
    const connectLoad = startLoad(proxySocket, { connections: 4, keepAlive: false });
    await until(() => keepAliveLoad.stats.ok > 100 && connectLoad.stats.ok > 50, 15_000, "load flowing on the unix socket");

    const result = await d.cli(["upgrade", "--json"], { timeoutMs: 120_000 });
    expect(result.code, result.stderr).toBe(0);
    const up = JSON.parse(result.stdout);
    daemonPids.push(up.newPid);
    await expectTakenOver(d, before, up.newPid);
    await until(() => !isAlive(before.daemon), 30_000, "the old daemon to exit");
    const okKeepAlive = keepAliveLoad.stats.ok;
    const okConnect = connectLoad.stats.ok;
    await until(() => keepAliveLoad.stats.ok > okKeepAlive + 100 && connectLoad.stats.ok > okConnect + 50, 15_000, "load flowing through the new daemon");
    const stats = [await keepAliveLoad.stop(), await connectLoad.stop()];
    for (const s of stats) {
      expect(s.failed, JSON.stringify(s.errors)).toBe(0);
      expect(s.non2xx, JSON.stringify(s.errors)).toBe(0);
    }
    expect((await fs.lstat(proxySocket)).isSocket()).toBe(true);
    const answer = await new Promise<number>((resolve, reject) =>
      http
        .get({ socketPath: proxySocket, path: "/hello" }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
        .on("error", reject),
    );
    expect(answer).toBe(200);
  }, 120_000);
});
