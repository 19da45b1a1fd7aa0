// ensure-daemon's own guarantees (issue 12, items 3 and 12): it records only a pid it started or
// one that really holds the socket (checked through /proc/net/unix and /proc/<pid>/fd), and the
// daemon it starts gets the least environment — not the deploy shell's secrets — unless
// --inherit-env asks for the old behaviour.
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import http from "node:http";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runCli, until } from "../helpers/daemon.js";
import { isAlive, killQuietly } from "../helpers/process.js";
import { webProcess, writeTestConfig, type ProcessFields, type TestConfig } from "../helpers/test-config.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** A config in a fresh temp dir (nothing started); `web` are more fields of its web process. */
async function setup(web: ProcessFields = {}): Promise<TestConfig> {
  const config = await writeTestConfig({
    dirPrefix: "rb-secd-",
    application: "secd",
    proxy: { drainTimeoutMs: 1000 },
    processes: webProcess({ restartDelayMs: undefined, gracefulStopMs: 2000, ...web }),
  });
  cleanups.push(() => fs.rm(config.dir, { recursive: true, force: true }));
  return config;
}

/** What /proc/<pid>/environ holds, as a map. */
async function environOf(pid: number): Promise<Record<string, string>> {
  const raw = await fs.readFile(`/proc/${pid}/environ`, "utf8");
  return Object.fromEntries(
    raw
      .split("\0")
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );
}

async function stopPid(pid: number): Promise<void> {
  if (!(await isAlive(pid))) return;
  process.kill(pid, "SIGTERM");
  await until(async () => !(await isAlive(pid)), 15_000, `pid ${pid} gone`).catch(() => killQuietly(pid));
}

describe("ensure-daemon records only a pid it can vouch for", () => {
  it("does not record the pid an answering socket claims unless that process holds the socket", async () => {
    const s = await setup();
    const bystander = spawn("sleep", ["300"], { detached: true, stdio: "ignore" });
    cleanups.push(async () => killQuietly(-bystander.pid!));
    let claimed = bystander.pid!;
    // Something of ours answers on the socket like a daemon, claiming another process's pid.
    const fake = http.createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ daemonPid: claimed }));
    });
    await new Promise<void>((resolve) => fake.listen(s.socket, resolve));
    cleanups.push(() => new Promise((resolve) => fake.close(() => resolve())));
    const pidPath = path.join(s.dir, "daemon.pid");

    const lied = await runCli(["ensure-daemon", "--config", s.configPath, "--daemon-pid-path", pidPath, "--json"]);
    expect(lied.code, lied.stderr).toBe(0);
    const result = JSON.parse(lied.stdout);
    expect(result).toMatchObject({ started: false, pid: bystander.pid, pidRecorded: false });
    expect(result.note).toContain("does not hold the socket");
    await expect(fs.access(pidPath)).rejects.toThrow();
    const human = await runCli(["ensure-daemon", "--config", s.configPath, "--daemon-pid-path", pidPath]);
    expect(human.stderr).toMatch(/note: .*does not hold the socket: not recorded/);

    // The process that really holds it (this test's) is recorded.
    claimed = process.pid;
    const truthful = await runCli(["ensure-daemon", "--config", s.configPath, "--daemon-pid-path", pidPath, "--json"]);
    expect(JSON.parse(truthful.stdout)).toMatchObject({ started: false, pid: process.pid, pidRecorded: true, note: null });
    expect(Number(await fs.readFile(pidPath, "utf8"))).toBe(process.pid);
  });
});

describe("the daemon's environment", () => {
  it("is minimal: PATH, HOME, LANG, TZ and the variables the config refers to; the shell's secrets stay out, also of managed processes", async () => {
    const s = await setup({ env: '{GREETING: "{{env.RB_NEEDED}}"}' });
    const env = { ...process.env, RB_NEEDED: "hello from the config", RB_DEPLOY_SECRET: "s3cr3t-ci-token", LANG: "C.UTF-8", TZ: "UTC" };
    const started = await runCli(["ensure-daemon", "--config", s.configPath, "--daemon-log-path", path.join(s.dir, "d.log"), "--daemon-pid-path", path.join(s.dir, "d.pid"), "--json"], { env });
    expect(started.code, started.stderr).toBe(0);
    const daemonPid = JSON.parse(started.stdout).pid as number;
    cleanups.push(() => stopPid(daemonPid));

    const daemonEnv = await environOf(daemonPid);
    expect(daemonEnv).toMatchObject({ RB_NEEDED: "hello from the config", LANG: "C.UTF-8", TZ: "UTC", PATH: process.env.PATH });
    expect(daemonEnv).not.toHaveProperty("RB_DEPLOY_SECRET");
    expect(
      Object.keys(daemonEnv)
        .sort()
        .filter((k) => !["PATH", "HOME", "LANG", "TZ", "RB_NEEDED", "XDG_RUNTIME_DIR", "XDG_STATE_HOME"].includes(k) && !k.startsWith("LC_")),
    ).toEqual(["ROLLBRIDGE_DAEMON_PID_FILE"]);
    // That one is Rollbridge's own (the pid file ensure-daemon keeps, which a successor started by
    // `upgrade` takes over): the daemon takes it out of its environment at start, so no app gets it.
    expect(daemonEnv.ROLLBRIDGE_DAEMON_PID_FILE).toBe(path.join(s.dir, "d.pid"));

    const release = path.join(s.dir, "releases", "v1");
    await fs.mkdir(release, { recursive: true });
    const deploy = await runCli(["deploy", "--config", s.configPath, "--release-path", release]);
    expect(deploy.code, deploy.stderr).toBe(0);
    const status = JSON.parse((await runCli(["status", "--json", "--config", s.configPath])).stdout);
    const web = await environOf(status.processes[0].pid);
    expect(web.GREETING).toBe("hello from the config");
    expect(web).not.toHaveProperty("RB_DEPLOY_SECRET");
    expect(web).not.toHaveProperty("ROLLBRIDGE_DAEMON_PID_FILE");

    // --inherit-env: the whole environment, as before.
    await stopPid(daemonPid);
    const inherited = await runCli(["ensure-daemon", "--inherit-env", "--config", s.configPath, "--daemon-log-path", path.join(s.dir, "d.log"), "--daemon-pid-path", path.join(s.dir, "d.pid"), "--json"], { env });
    expect(inherited.code, inherited.stderr).toBe(0);
    const second = JSON.parse(inherited.stdout).pid as number;
    cleanups.push(() => stopPid(second));
    expect((await environOf(second)).RB_DEPLOY_SECRET).toBe("s3cr3t-ci-token");
  });
});
