// A daemon started by ensure-daemon (detached), across a kill -9 and an upgrade: the next
// ensure-daemon adopts the same app pids (the singleton started once), daemons that crash at
// start over and over never stop the apps, and `upgrade` leaves a detached new daemon that owns
// the control socket and the pid file.
import { promises as fs, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { controlGet, FIXTURE_APP, freePort, isAlive, portRange, runCli, until } from "../helpers/daemon.js";
import { get } from "../helpers/load.js";
import { startTimeOf } from "../helpers/recovery.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

interface Setup {
  dir: string;
  configPath: string;
  config: string;
  socket: string;
  proxyPort: number;
  pidPath: string;
  logPath: string;
  starts: string;
}

async function setup(): Promise<Setup> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "rb-upens-"));
  const proxyPort = await freePort();
  const range = portRange();
  const socket = path.join(dir, "control.sock");
  const configPath = path.join(dir, "rollbridge.yaml");
  const starts = path.join(dir, "starts");
  const config = `application: upens-${path.basename(dir).toLowerCase()}
control: {path: ${socket}}
proxy: {host: 127.0.0.1, port: ${proxyPort}, drainTimeoutMs: 1000, holdTimeoutMs: 5000}
statePath: state/rollbridge.state.json
processes:
  - id: web
    policy: proxied
    command: node ${FIXTURE_APP}
    port: {from: ${range.from}, to: ${range.to}}
    health: {path: /ping, intervalMs: 50}
    gracefulStopMs: 3000
  - id: ticker
    policy: singleton
    command: sh -c 'echo start >> ${starts}; while :; do echo tick; sleep 0.05; done'
    gracefulStopMs: 1000
`;
  await fs.writeFile(configPath, config);
  const s = { dir, configPath, config, socket, proxyPort, pidPath: path.join(dir, "run", "rollbridge.pid"), logPath: path.join(dir, "daemon.log"), starts };
  const appPids: number[] = [];
  cleanups.push(async () => {
    const status = await controlGet(socket, "/status").catch(() => null);
    for (const p of status?.processes ?? []) if (typeof p.pid === "number") appPids.push(p.pid);
    const pid = Number(await fs.readFile(s.pidPath, "utf8").catch(() => "0"));
    for (const daemon of [pid, status?.daemonPid ?? 0]) {
      if (daemon > 0 && isAlive(daemon)) {
        process.kill(daemon, "SIGTERM");
        await until(() => !isAlive(daemon), 15_000, "daemon gone").catch(() => process.kill(daemon, "SIGKILL"));
      }
    }
    for (const app of appPids) {
      try {
        process.kill(-app, "SIGKILL");
      } catch {
        // stopped with its daemon, as it should be
      }
    }
    await fs.rm(dir, { recursive: true, force: true });
  });
  return s;
}

const cli = (s: Setup, args: string[]) => runCli([...args, "--config", s.configPath], { cwd: s.dir, timeoutMs: 120_000 });
const ensure = (s: Setup) => cli(s, ["ensure-daemon", "--daemon-pid-path", s.pidPath, "--daemon-log-path", s.logPath, "--json"]);

async function apps(s: Setup): Promise<{ instanceId: string; pid: number; startTime: number }[]> {
  const status = await controlGet(s.socket, "/status");
  return Promise.all((status.processes as { instanceId: string; pid: number }[]).map(async (p) => ({ instanceId: p.instanceId, pid: p.pid, startTime: await startTimeOf(p.pid) })));
}

/** Field 6 of /proc/<pid>/stat: the session; a detached daemon leads its own. */
function sessionOf(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(text.slice(text.lastIndexOf(")") + 2).split(" ")[3]);
}

describe("ensure-daemon across a crash and an upgrade", () => {
  it("adopts after kill -9, survives daemons crashing at start, and upgrades to a detached daemon that owns the socket and the pid file", async () => {
    const s = await setup();
    const first = await ensure(s);
    expect(first.code, first.stderr).toBe(0);
    const firstPid = JSON.parse(first.stdout).pid as number;
    const release = path.join(s.dir, "releases", "v1");
    await fs.mkdir(release, { recursive: true });
    const deployed = await cli(s, ["deploy", "--release-path", release]);
    expect(deployed.code, deployed.stderr).toBe(0);
    const before = await apps(s);
    expect(before.map((a) => a.instanceId).sort()).toEqual(["ticker", "web"]);
    // Every app in the state file (the singleton starts a pass after web), before the daemon is killed.
    const recorded = async () => {
      const text = await fs.readFile(path.join(s.dir, "state/rollbridge.state.json"), "utf8").catch(() => "");
      return before.every((a) => text.includes(`"pid": ${a.pid}`));
    };
    await until(recorded, 10_000, "the state file");

    // kill -9, then daemons that cannot start (a config they refuse), over and over: the apps run on.
    process.kill(firstPid, "SIGKILL");
    await until(() => !isAlive(firstPid), 10_000, "the first daemon gone");
    await fs.writeFile(s.configPath, s.config.replace("drainTimeoutMs: 1000", "drainTimeoutMs: -1"));
    // (`rollbridge daemon` itself, as systemd's Restart=always would start it: it exits at start.)
    for (let i = 0; i < 3; i++) {
      const failed = await cli(s, ["daemon"]);
      expect(failed.code).not.toBe(0);
      expect(failed.stderr).toMatch(/drainTimeoutMs/);
    }
    for (const a of before) expect(isAlive(a.pid)).toBe(true);

    // The config fixed: the next ensure-daemon adopts the same processes; the singleton never ran twice.
    await fs.writeFile(s.configPath, s.config);
    const second = await ensure(s);
    expect(second.code, second.stderr).toBe(0);
    const secondPid = JSON.parse(second.stdout).pid as number;
    expect(secondPid).not.toBe(firstPid);
    await until(async () => (await controlGet(s.socket, "/status")).converged, 15_000, "the second daemon converged");
    expect(await apps(s)).toEqual(before);
    expect((await get(s.proxyPort)).status).toBe(200);

    // upgrade: the new daemon is detached (its own session), answers on the socket, and the pid file names it.
    const upgraded = await cli(s, ["upgrade", "--json"]);
    expect(upgraded.code, upgraded.stderr).toBe(0);
    const { oldPid, newPid } = JSON.parse(upgraded.stdout);
    expect(oldPid).toBe(secondPid);
    expect(sessionOf(newPid)).toBe(newPid);
    expect(Number((await fs.readFile(s.pidPath, "utf8")).trim())).toBe(newPid);
    expect((await controlGet(s.socket, "/status")).daemonPid).toBe(newPid);
    await until(() => !isAlive(secondPid), 15_000, "the old daemon to exit");
    expect(await apps(s)).toEqual(before);
    expect((await get(s.proxyPort)).status).toBe(200);
    // ensure-daemon now finds the new daemon running.
    const again = await ensure(s);
    expect(JSON.parse(again.stdout)).toMatchObject({ started: false, pid: newPid });
    expect((await fs.readFile(s.starts, "utf8")).trim().split("\n")).toEqual(["start"]);
  }, 150_000);
});
