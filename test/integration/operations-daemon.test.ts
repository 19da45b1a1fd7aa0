// The daemon's lifecycle from the outside: ensure-daemon (idempotent, concurrent-safe, with
// pid and log files), deploy --ensure-daemon, and the control socket's permissions, the
// refusal of a second daemon and the replacement of a stale socket.
import { spawn } from "node:child_process";
import { promises as fs, readFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { isAlive, runCli, sleep, startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { get } from "../helpers/load.js";
import { webProcess, writeTestConfig } from "../helpers/test-config.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** A config in a fresh temp dir (nothing started). */
async function setup(): Promise<{ dir: string; configPath: string; socket: string; proxyPort: number; pidPath: string; logPath: string }> {
  const { dir, configPath, socket, proxyPort } = await writeTestConfig({
    dirPrefix: "rb-ops-",
    application: "ensure",
    proxy: { drainTimeoutMs: 1000 },
    processes: webProcess({ restartDelayMs: undefined }),
  });
  const paths = { dir, configPath, socket, proxyPort, pidPath: path.join(dir, "run", "rollbridge.pid"), logPath: path.join(dir, "log", "daemon.log") };
  cleanups.push(async () => {
    // The detached daemon is stopped by the pid from its pid file (it stops what it manages).
    const pid = Number(await fs.readFile(paths.pidPath, "utf8").catch(() => "0"));
    if (pid > 0 && isAlive(pid)) {
      process.kill(pid, "SIGTERM");
      await until(() => !isAlive(pid), 15_000, "daemon gone").catch(() => process.kill(pid, "SIGKILL"));
    }
    await fs.rm(dir, { recursive: true, force: true });
  });
  return paths;
}

describe("ensure-daemon", () => {
  it("run twice at once leaves exactly one daemon, records its pid, and is a no-op afterwards", async () => {
    const s = await setup();
    const args = ["ensure-daemon", "--config", s.configPath, "--daemon-pid-path", s.pidPath, "--daemon-log-path", s.logPath, "--json"];
    const [a, b] = await Promise.all([runCli(args, { cwd: s.dir }), runCli(args, { cwd: s.dir })]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const results = [JSON.parse(a.stdout), JSON.parse(b.stdout)];
    expect(results.map((r) => r.started).sort()).toEqual([false, true]);
    const pid = results[0].pid;
    expect(results[1].pid).toBe(pid);
    expect(results[0]).toMatchObject({ ok: true, socket: s.socket, logPath: s.logPath, pidPath: s.pidPath });
    expect(Number(readFileSync(s.pidPath, "utf8"))).toBe(pid);
    expect(isAlive(pid)).toBe(true);
    // The daemon's events go to the log file (appended).
    await until(async () => (await fs.readFile(s.logPath, "utf8")).includes('"type":"daemon-started"'), 5000, "daemon-started in the log");
    // It is detached: it survives the CLI that started it, and answers with that pid.
    const status = JSON.parse((await runCli(["status", "--json", "--config", s.configPath], { cwd: s.dir })).stdout);
    expect(status.daemonPid).toBe(pid);
    // No lock left behind.
    await expect(fs.access(`${s.socket}.lock`)).rejects.toThrow();

    const again = await runCli(["ensure-daemon", "--config", s.configPath, "--daemon-pid-path", s.pidPath], { cwd: s.dir });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`daemon ${pid} already running on ${s.socket}`);
  });

  it("takes over a lock left by a dead ensure-daemon", async () => {
    const s = await setup();
    // A lock whose owner pid is gone (a short-lived child that has exited).
    const dead = spawn(process.execPath, ["-e", ""]);
    await new Promise((r) => dead.once("exit", r));
    await fs.writeFile(`${s.socket}.lock`, `${dead.pid}\n`);
    const r = await runCli(["ensure-daemon", "--config", s.configPath, "--daemon-pid-path", s.pidPath, "--daemon-log-path", s.logPath], { cwd: s.dir, timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/started daemon \d+/);
  });

  it("reports the end of the daemon log when the daemon cannot start", async () => {
    const s = await setup();
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(s.proxyPort, "127.0.0.1", resolve));
    cleanups.push(() => new Promise((resolve) => blocker.close(() => resolve())));
    const r = await runCli(["ensure-daemon", "--config", s.configPath, "--daemon-log-path", s.logPath, "--json"], { cwd: s.dir });
    expect(r.code).toBe(1);
    const err = JSON.parse(r.stdout).error;
    expect(err.code).toBe("DAEMON_START_FAILED");
    expect(err.message).toMatch(/the daemon exited \(code 1\)/);
    expect(err.message).toContain(s.logPath);
    expect(err.message).toMatch(/cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
  });

  it("deploy --ensure-daemon starts the daemon when needed, then deploys", async () => {
    const s = await setup();
    const release = path.join(s.dir, "releases", "v1");
    await fs.mkdir(release, { recursive: true });
    const r = await runCli(["deploy", "--ensure-daemon", "--config", s.configPath, "--daemon-pid-path", s.pidPath, "--daemon-log-path", s.logPath, "--release-path", release], { cwd: s.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/started daemon \d+/);
    expect(r.stdout).toMatch(/v1 is active and converged/);
    expect(JSON.parse((await get(s.proxyPort)).body).release).toBe("v1");
    const second = await runCli(["deploy", "--ensure-daemon", "--config", s.configPath, "--daemon-pid-path", s.pidPath, "--release-path", release], { cwd: s.dir });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).not.toMatch(/started daemon/);
  });
});

let daemon: TestDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

/** A group of /etc/group the current user may chown to, preferring one that is not its primary group. */
function memberGroup(): { name: string; gid: number } {
  const { uid, gid, username } = os.userInfo();
  const groups = readFileSync("/etc/group", "utf8")
    .split("\n")
    .map((l) => l.split(":"))
    .filter((p) => p.length >= 4 && p[0] && /^\d+$/.test(p[2]!))
    .map((p) => ({ name: p[0]!, gid: Number(p[2]), members: p[3]!.split(",") }));
  const usable = groups.filter((g) => uid === 0 || g.gid === gid || g.members.includes(username));
  const chosen = usable.find((g) => g.gid !== gid) ?? usable.find((g) => g.gid === gid);
  if (!chosen) throw new Error("no usable group in /etc/group");
  return chosen;
}

describe("the control socket", () => {
  it("gets control.mode, control.owner and control.group after binding", async () => {
    const group = memberGroup();
    daemon = await startDaemon({ control: { mode: "660", owner: os.userInfo().uid, group: group.name } });
    const stat = await fs.stat(daemon.socket);
    expect(stat.isSocket()).toBe(true);
    expect(stat.mode & 0o777).toBe(0o660);
    expect(stat.uid).toBe(os.userInfo().uid);
    expect(stat.gid).toBe(group.gid);
    expect((await daemon.cli(["status"])).code).toBe(0);
  });

  it("refuses a second daemon on a live socket, naming the running one", async () => {
    daemon = await startDaemon();
    const second = await runCli(["daemon", "--config", daemon.configPath], { cwd: daemon.dir, timeoutMs: 20_000 });
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`a daemon is already running on ${daemon.socket} (pid ${daemon.child.pid})`);
    // The first one is untouched.
    expect((await daemon.status()).daemonPid).toBe(daemon.child.pid);
  });

  it("replaces a stale socket file left by a dead daemon", async () => {
    let stale = "";
    daemon = await startDaemon({
      beforeStart: async ({ socket }) => {
        // A process that binds the socket and dies without unlinking it.
        const child = spawn(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(socket)}, () => process.kill(process.pid, "SIGKILL"))`]);
        await new Promise((r) => child.once("exit", r));
        stale = socket;
        expect((await fs.lstat(socket)).isSocket()).toBe(true);
      },
    });
    expect(stale).toBe(daemon.socket);
    const status = await daemon.status();
    expect(status.daemonPid).toBe(daemon.child.pid);
    await sleep(10);
  });
});
