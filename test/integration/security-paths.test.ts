// Attacks of a second local user on the files and sockets a root daemon and CLI use (issue 12,
// items 1–5): a symlink or FIFO planted at the daemon log, a socket bound before the daemon, a
// lock or a state file of that user, and a private desired file that must stay private. Each
// attack must fail, and the CLI must say what it found and who owns it. Run as root: the test
// creates the second user (and deletes it); without root it is skipped, saying why.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { freePort, portRange, runCli, startDaemon, until, type CliResult, type TestDaemon } from "../helpers/daemon.js";
import { fillProcesses, webProcess } from "../helpers/test-config.js";
import { isAlive, killQuietly } from "../helpers/process.js";
import { startTimeOf } from "../helpers/recovery.js";
import { createSecondUser, secondUserUnavailable, type SecondUser } from "../helpers/second-user.js";

const NODE = "/usr/bin/node";
let other: SecondUser;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  if (secondUserUnavailable === null) other = await createSecondUser("rbsec-p");
});
afterAll(async () => {
  await other?.remove();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** A root-only directory (mkdtemp: 0700) removed after the test. */
async function privateDir(prefix = "rb-sec-"): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A directory every user may create files in, with the sticky bit, like /tmp. */
async function sharedDir(): Promise<string> {
  const dir = await privateDir("rb-shared-");
  await fs.chmod(dir, 0o1777);
  return dir;
}

/** A config for a root daemon; `control` is its control section, `extra` more top-level YAML. */
async function writeConfig(dir: string, options: { application?: string; control?: string; extra?: string } = {}): Promise<string> {
  const configPath = path.join(dir, "rollbridge.yaml");
  await fs.writeFile(
    configPath,
    [
      `application: ${options.application ?? `sec-${path.basename(dir)}`}`,
      ...(options.control ? [`control: ${options.control}`] : []),
      `proxy: {host: 127.0.0.1, port: ${await freePort()}, drainTimeoutMs: 1000}`,
      options.extra ?? "",
      "processes:",
      fillProcesses(webProcess({ restartDelayMs: undefined, gracefulStopMs: 2000 }), portRange()),
      "",
    ].join("\n"),
  );
  return configPath;
}

/** Stops a daemon started by ensure-daemon, by the pid its status reports. */
async function stopDaemonOf(configPath: string): Promise<void> {
  const status = await runCli(["status", "--json", "--config", configPath]);
  if (status.code !== 0) return;
  const pid = JSON.parse(status.stdout).daemonPid as number;
  process.kill(pid, "SIGTERM");
  await until(async () => !(await isAlive(pid)), 15_000, "daemon gone").catch(() => killQuietly(pid));
}

/** Runs a Node script as the second user in the background; killed by pid afterwards. */
function spawnAsOther(script: string, args: string[]): ChildProcess {
  const child = spawn("setpriv", [`--reuid=${other.name}`, `--regid=${other.name}`, "--clear-groups", "--", NODE, "-e", script, ...args], { stdio: "ignore" });
  cleanups.push(async () => {
    if (child.pid !== undefined) killQuietly(child.pid);
  });
  return child;
}

/**
 * A fake daemon of the second user on `socket`: it records every connection and byte in `log`
 * and answers any request like a daemon would (claiming pid 1).
 */
async function impostor(socket: string, log: string): Promise<void> {
  const script = `
    const net = require("net"), fs = require("fs");
    const [socket, log] = process.argv.slice(1);
    net.createServer((c) => {
      fs.appendFileSync(log, "connect\\n");
      c.on("data", (d) => fs.appendFileSync(log, "data " + d.length + "\\n"));
      const body = JSON.stringify({ daemonPid: 1, ok: true });
      c.end("HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\ncontent-length: " + body.length + "\\r\\n\\r\\n" + body);
    }).listen(socket, () => fs.appendFileSync(log, "listening\\n"));`;
  spawnAsOther(script, [socket, log]);
  await until(async () => (await fs.readFile(log, "utf8").catch(() => "")).includes("listening"), 10_000, "the impostor listening");
}

function expectRefusal(result: CliResult, code: string): { code: string; message: string; fix?: string } {
  expect(result.code, result.stdout + result.stderr).not.toBe(0);
  const error = JSON.parse(result.stdout).error;
  expect(error.code).toBe(code);
  return error;
}

describe.skipIf(secondUserUnavailable !== null)(`a second local user against a root daemon and CLI${secondUserUnavailable ? ` (skipped: ${secondUserUnavailable})` : ""}`, () => {
  it("cannot make root append to a file through a symlink at the daemon log, nor through one at the old /tmp default", async () => {
    const dir = await privateDir();
    const shared = await sharedDir();
    const precious = path.join(dir, "precious");
    await fs.writeFile(precious, "root only\n", { mode: 0o600 });
    const log = path.join(shared, "daemon.log");
    expect((await other.run("ln", ["-s", precious, log])).code).toBe(0);
    const application = `sec-log-${randomBytes(3).toString("hex")}`;
    const configPath = await writeConfig(dir, { application, control: `{path: ${path.join(dir, "control.sock")}}` });

    const refused = await runCli(["ensure-daemon", "--config", configPath, "--daemon-log-path", log, "--json"], { timeoutMs: 30_000 });
    const error = expectRefusal(refused, "UNSAFE_PATH");
    expect(error.message).toContain(log);
    expect(error.message).toContain(`symbolic link owned by uid ${other.uid} (${other.name})`);
    expect(await fs.readFile(precious, "utf8")).toBe("root only\n");
    await expect(fs.access(path.join(dir, "control.sock"))).rejects.toThrow();

    // The default log is no longer in /tmp: a link planted at the old default is never touched.
    const oldDefault = `/tmp/rollbridge-${application}.log`;
    expect((await other.run("ln", ["-s", precious, oldDefault])).code).toBe(0);
    cleanups.push(() => fs.rm(oldDefault, { force: true }));
    const started = await runCli(["ensure-daemon", "--config", configPath, "--json"], { timeoutMs: 30_000 });
    cleanups.push(() => stopDaemonOf(configPath));
    expect(started.code, started.stderr).toBe(0);
    const result = JSON.parse(started.stdout);
    expect(result.logPath).toBe(`/run/rollbridge/${application}/daemon.log`);
    cleanups.push(() => fs.rm(`/run/rollbridge/${application}`, { recursive: true, force: true }));
    await until(async () => (await fs.readFile(result.logPath, "utf8")).includes("daemon-started"), 10_000, "the daemon's first event in its log");
    expect(await fs.readFile(precious, "utf8")).toBe("root only\n");
    const privateRun = await fs.stat(`/run/rollbridge/${application}`);
    expect([privateRun.uid, privateRun.mode & 0o777]).toEqual([0, 0o700]);
    expect((await fs.stat(result.logPath)).mode & 0o777).toBe(0o600);
  });

  it("cannot hang ensure-daemon with a FIFO at the log path", async () => {
    const dir = await privateDir();
    const shared = await sharedDir();
    const log = path.join(shared, "daemon.log");
    expect((await other.run("mkfifo", [log])).code).toBe(0);
    const configPath = await writeConfig(dir, { control: `{path: ${path.join(dir, "control.sock")}}` });
    const before = Date.now();
    const refused = await runCli(["ensure-daemon", "--config", configPath, "--daemon-log-path", log, "--json"], { timeoutMs: 30_000 });
    expect(Date.now() - before).toBeLessThan(15_000);
    const error = expectRefusal(refused, "UNSAFE_PATH");
    expect(error.message).toMatch(/FIFO \(named pipe\) owned by uid \d+/);
  });

  it("binding the default control socket first gets nothing: deploy --ensure-daemon refuses, naming the owner, and sends nothing", async () => {
    const dir = await privateDir();
    const application = `sec-sock-${randomBytes(3).toString("hex")}`;
    const configPath = await writeConfig(dir, { application });
    const release = path.join(dir, "releases", "v1");
    await fs.mkdir(release, { recursive: true });
    // The desired file holds a secret (mode 600): the impostor must never see it.
    await fs.writeFile(path.join(dir, "desired.yaml"), `release: {path: ${release}}\nenv: {API_TOKEN: s3cr3t-token}\n`, { mode: 0o600 });
    // The attacker got hold of the default runtime directory (as if /run/rollbridge were writable to it) and bound the socket.
    const runtime = `/run/rollbridge/${application}`;
    await fs.mkdir(runtime, { recursive: true });
    await fs.chown(runtime, other.uid, other.gid);
    cleanups.push(() => fs.rm(runtime, { recursive: true, force: true }));
    const log = path.join(await sharedDir(), "impostor.log");
    await impostor(path.join(runtime, "control.sock"), log);

    const deploy = await runCli(["deploy", "--ensure-daemon", "--config", configPath, "--release-path", release, "--json"], { timeoutMs: 30_000 });
    const error = expectRefusal(deploy, "UNSAFE_PATH");
    expect(error.message).toContain(runtime);
    expect(error.message).toContain(`owned by uid ${other.uid} (${other.name})`);
    // A status (no private directory involved) refuses at the socket itself.
    const status = await runCli(["status", "--config", configPath, "--json"]);
    expect(expectRefusal(status, "UNTRUSTED_SOCKET").message).toContain(`owned by uid ${other.uid} (${other.name})`);
    expect(await fs.readFile(log, "utf8")).toBe("listening\n");
  });

  it("binding an explicit control.path in a shared directory first gets nothing either", async () => {
    const dir = await privateDir();
    const shared = await sharedDir();
    const socket = path.join(shared, "control.sock");
    const configPath = await writeConfig(dir, { control: `{path: ${socket}}` });
    const release = path.join(dir, "releases", "v1");
    await fs.mkdir(release, { recursive: true });
    const log = path.join(shared, "impostor.log");
    await impostor(socket, log);

    const deploy = await runCli(["deploy", "--ensure-daemon", "--config", configPath, "--release-path", release], { timeoutMs: 30_000 });
    expect(deploy.code).not.toBe(0);
    expect(deploy.stderr).toContain(`refusing to talk to control socket ${socket}: it is owned by uid ${other.uid} (${other.name})`);
    expect(deploy.stderr).toMatch(/nothing was sent/);
    expect(deploy.stdout).not.toMatch(/converged|✓/);
    expect(await fs.readFile(log, "utf8")).toBe("listening\n");
  });

  it("a lock file of the second user is reported and left alone, not taken over as stale", async () => {
    const dir = await privateDir();
    const shared = await sharedDir();
    const socket = path.join(shared, "control.sock");
    const configPath = await writeConfig(dir, { control: `{path: ${socket}}` });
    expect((await other.run("sh", ["-c", `echo 999999 > ${socket}.lock`])).code).toBe(0);

    const refused = await runCli(["ensure-daemon", "--config", configPath, "--daemon-log-path", path.join(dir, "d.log"), "--daemon-pid-path", path.join(dir, "d.pid"), "--json"], { timeoutMs: 30_000 });
    const error = expectRefusal(refused, "UNSAFE_PATH");
    expect(error.message).toContain(`${socket}.lock`);
    expect(error.message).toContain(`owned by uid ${other.uid} (${other.name})`);
    expect(error.message).toMatch(/not trusted and not taken over/);
    expect(error.fix).toContain(`rm ${socket}.lock`);
    expect((await fs.stat(`${socket}.lock`)).uid).toBe(other.uid);
    await expect(fs.access(socket)).rejects.toThrow();

    // A lock of our own with a modification time in the future is not trusted either.
    await fs.rm(`${socket}.lock`);
    await fs.writeFile(`${socket}.lock`, "999999\n");
    const future = new Date(Date.now() + 3_600_000);
    await fs.utimes(`${socket}.lock`, future, future);
    const futureRefused = await runCli(["ensure-daemon", "--config", configPath, "--daemon-log-path", path.join(dir, "d.log"), "--json"], { timeoutMs: 30_000 });
    expect(expectRefusal(futureRefused, "UNSAFE_PATH").message).toMatch(/modification time in the future/);
  });

  it("a state file of the second user naming a root process is refused: recover --force and a new daemon leave the process alone", async () => {
    const dir = await privateDir();
    const shared = await sharedDir();
    const statePath = path.join(shared, "state.json");
    const configPath = await writeConfig(dir, { control: `{path: ${path.join(dir, "control.sock")}}`, extra: `statePath: ${statePath}` });
    const victim = spawn("sleep", ["300"], { detached: true, stdio: "ignore" });
    cleanups.push(async () => killQuietly(-victim.pid!));
    await until(() => isAlive(victim.pid!), 5000, "the root process");
    const startTime = await startTimeOf(victim.pid!);
    const forged = {
      version: 1,
      application: "x",
      writtenAt: new Date().toISOString(),
      daemon: { pid: 999_999, startTime: null },
      activeKey: null,
      releases: [],
      processes: [
        {
          instanceId: "web",
          processId: "web",
          releaseKey: "k",
          releaseId: "v1",
          pid: victim.pid,
          pgid: victim.pid,
          uid: 0,
          startTime,
          port: null,
          restarts: 0,
          lastStartReason: "deploy",
          startedAt: 1,
          stopSignal: "SIGKILL",
          gracefulStopMs: 0,
        },
      ],
    };
    const json = JSON.stringify(forged).replaceAll("'", "");
    expect((await other.run("sh", ["-c", `printf '%s' '${json}' > ${statePath}`])).code).toBe(0);

    const recover = await runCli(["recover", "--force", "--json", "--config", configPath]);
    const error = expectRefusal(recover, "STATE_FILE_INVALID");
    expect(error.message).toContain(statePath);
    expect(error.message).toContain(`owned by uid ${other.uid} (${other.name})`);
    expect(await isAlive(victim.pid!)).toBe(true);

    // Root's own file that group or others may write is not trusted either.
    await fs.chown(statePath, 0, 0);
    await fs.chmod(statePath, 0o666);
    const writable = await runCli(["recover", "--force", "--json", "--config", configPath]);
    expect(expectRefusal(writable, "STATE_FILE_INVALID").message).toMatch(/writable by every user \(mode 666\)/);
    expect(await isAlive(victim.pid!)).toBe(true);

    // A daemon starting beside that file reports it and adopts or signals nothing in it.
    await fs.chown(statePath, other.uid, other.gid);
    await fs.chmod(statePath, 0o644);
    const started = await runCli(["ensure-daemon", "--config", configPath, "--daemon-log-path", path.join(dir, "d.log"), "--daemon-pid-path", path.join(dir, "d.pid")], { timeoutMs: 30_000 });
    cleanups.push(() => stopDaemonOf(configPath));
    expect(started.code, started.stderr).toBe(0);
    const events = JSON.parse((await runCli(["events", "--json", "--config", configPath])).stdout).events as { type: string; message: string }[];
    expect(events.find((e) => e.type === "state-file-invalid")?.message).toContain(`owned by uid ${other.uid} (${other.name})`);
    expect(JSON.parse((await runCli(["status", "--json", "--config", configPath])).stdout).orphans).toEqual([]);
    expect(await isAlive(victim.pid!)).toBe(true);
  });
});

describe.skipIf(secondUserUnavailable !== null)(`private desired files${secondUserUnavailable ? ` (skipped: ${secondUserUnavailable})` : ""}`, () => {
  let daemon: TestDaemon | null = null;
  afterEach(async () => {
    await daemon?.stop();
    daemon = null;
  });

  it("a new desired file is 0600; a mode-600 file of the deploy user stays 600 and theirs through apply, deploy and rollback", async () => {
    daemon = await startDaemon();
    const v1 = await daemon.release("v1");
    const v2 = await daemon.release("v2");
    const v3 = await daemon.release("v3");
    const first = await daemon.cli(["apply", "--release-path", v1, "--wait"]);
    expect(first.code, first.stderr).toBe(0);
    const created = await fs.stat(daemon.desiredPath);
    expect([created.mode & 0o777, created.uid]).toEqual([0o600, 0]);

    // The deploy user owns the file and made it private (it holds env secrets).
    await fs.writeFile(daemon.desiredPath, `release: {path: ${v1}}\nenv: {API_TOKEN: s3cr3t}\n`, { mode: 0o600 });
    await fs.chown(daemon.desiredPath, other.uid, other.gid);
    for (const args of [["apply", "--release-path", v2, "--wait"], ["deploy", "--release-path", v3], ["rollback"]]) {
      const result = await daemon.cli(args);
      expect(result.code, `${args.join(" ")}: ${result.stderr}`).toBe(0);
      const stat = await fs.stat(daemon.desiredPath);
      expect([stat.mode & 0o777, stat.uid, stat.gid], args[0]).toEqual([0o600, other.uid, other.gid]);
      expect(await fs.readFile(daemon.desiredPath, "utf8")).toContain("API_TOKEN");
    }
    expect((await fs.readdir(daemon.dir)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("a symlink planted at the desired file is refused, and nothing is written through it", async () => {
    daemon = await startDaemon();
    const v1 = await daemon.release("v1");
    const precious = path.join(daemon.dir, "precious");
    await fs.writeFile(precious, "keep\n");
    await fs.symlink(precious, daemon.desiredPath);
    const result = await daemon.cli(["apply", "--release-path", v1, "--json"]);
    const error = expectRefusal(result, "UNSAFE_PATH");
    expect(error.message).toContain(daemon.desiredPath);
    expect(error.message).toMatch(/symbolic link/);
    expect(await fs.readFile(precious, "utf8")).toBe("keep\n");
  });
});

describe.skipIf(secondUserUnavailable !== null)(`the second user's own daemon${secondUserUnavailable ? ` (skipped: ${secondUserUnavailable})` : ""}`, () => {
  it("as a non-root user the defaults go to ~/.local/state/rollbridge/<app>/ (no XDG_RUNTIME_DIR), created 0700; root's CLI refuses that user's socket unless control.owner names the user", async () => {
    const home = await privateDir("rb-home-");
    await fs.chown(home, other.uid, other.gid);
    await fs.chmod(home, 0o755);
    const project = path.join(home, "app");
    await fs.mkdir(project);
    const application = `sec-user-${randomBytes(3).toString("hex")}`;
    const configPath = await writeConfig(project, { application });
    await fs.chown(project, other.uid, other.gid);
    await fs.chown(configPath, other.uid, other.gid);
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home };
    const cli = (args: string[]) => other.run(NODE, [path.resolve("dist/cli/main.js"), ...args, "--config", configPath], { env, cwd: project, timeoutMs: 30_000 });

    const started = await cli(["ensure-daemon", "--json"]);
    expect(started.code, started.stdout + started.stderr).toBe(0);
    const result = JSON.parse(started.stdout);
    const runtime = path.join(home, ".local/state/rollbridge", application);
    cleanups.push(async () => {
      await cli(["shutdown"]);
      killQuietly(result.pid);
    });
    expect(result).toMatchObject({ started: true, socket: path.join(runtime, "control.sock"), logPath: path.join(runtime, "daemon.log"), pidPath: path.join(runtime, "daemon.pid"), pidRecorded: true });
    const stat = await fs.stat(runtime);
    expect([stat.uid, stat.mode & 0o777]).toEqual([other.uid, 0o700]);
    expect((await fs.stat(path.join(runtime, "control.sock"))).uid).toBe(other.uid);
    expect((await cli(["status", "--json"])).code).toBe(0);

    // Root, pointed at that socket, does not trust it by default: it is another user's.
    const rootConfig = await writeConfig(await privateDir(), { control: `{path: ${path.join(runtime, "control.sock")}}` });
    const refused = await runCli(["status", "--json", "--config", rootConfig]);
    expect(expectRefusal(refused, "UNTRUSTED_SOCKET").message).toContain(`owned by uid ${other.uid} (${other.name})`);
    const trusting = await writeConfig(await privateDir(), { control: `{path: ${path.join(runtime, "control.sock")}, owner: ${other.name}}` });
    const status = await runCli(["status", "--json", "--config", trusting]);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout).daemonPid).toBe(result.pid);

    expect((await cli(["shutdown"])).code).toBe(0);
    await expect(fs.access(path.join(runtime, "control.sock"))).rejects.toThrow();
  });
});
