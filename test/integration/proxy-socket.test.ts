// proxy.socket through a real daemon: the unix-socket listener serves (alone, with tcp: false),
// trusts its peers' X-Forwarded-*, lets in only its group, is created safely (no planted
// symlink followed, no directory another user owns or can write, a stale socket replaced, a
// live one refused) and is removed on shutdown. The access tests run as a second local user.
import { execFile, spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canConnect, daemonEvents, startDaemon, waitForExit, type DaemonSetup, type TestDaemon } from "../helpers/daemon.js";

const isRoot = process.getuid?.() === 0;
const suffix = Math.random().toString(36).slice(2, 8);
const USER = `rbsec-ps${suffix}`;
const GROUP = `rbsec-psg${suffix}`;
let uid = -1;
let gid = -1;

beforeAll(async () => {
  if (!isRoot) return;
  await run("groupadd", [GROUP]);
  await run("useradd", ["-M", "-s", "/usr/sbin/nologin", USER]);
  uid = Number((await run("id", ["-u", USER])).trim());
  gid = Number((await run("getent", ["group", GROUP])).split(":")[2]);
});

afterAll(async () => {
  if (!isRoot) return;
  await run("userdel", [USER]).catch(() => undefined);
  await run("groupdel", [GROUP]).catch(() => undefined);
});

/** A daemon whose proxy listens on `<dir>/proxy/proxy.sock` (with `socketYaml` extra fields), v1 deployed when it starts. */
async function socketDaemon(options: { socket?: string; tcp?: boolean; trusted?: string; setup?: DaemonSetup } = {}): Promise<TestDaemon & { proxySocket: string }> {
  let proxySocket = "";
  const daemon = await startDaemon({
    ...options.setup,
    proxy: {
      ...(options.tcp === false ? { tcp: "false" } : {}),
      ...(options.trusted === undefined ? {} : { trustedProxies: options.trusted }),
      socket: `{path: ${options.socket ?? "proxy/proxy.sock"}, mode: "660"${isRoot ? `, group: ${GROUP}` : ""}}`,
    },
    beforeStart: async (paths) => {
      proxySocket = path.resolve(paths.dir, options.socket ?? "proxy/proxy.sock");
      await options.setup?.beforeStart?.(paths);
    },
  });
  await daemon.applyRelease("v1");
  return Object.assign(daemon, { proxySocket });
}

/** A daemon that must refuse to start: runs `check` on its error output and temp dir, then removes the dir. */
async function refusedStart(socket: string, beforeStart: NonNullable<DaemonSetup["beforeStart"]>, check: (error: string, dir: string) => Promise<void> | void): Promise<void> {
  let dir = "";
  const failure = await startDaemon({
    proxy: { socket: `{path: ${socket}}` },
    beforeStart: async (paths) => {
      dir = paths.dir;
      await beforeStart(paths);
    },
  }).then(
    async (daemon) => {
      await daemon.stop();
      return null;
    },
    (error: Error) => error.message,
  );
  try {
    expect(failure, "the daemon started").not.toBeNull();
    await check(failure as string, dir);
  } finally {
    if (dir !== "") await fs.rm(dir, { recursive: true, force: true });
  }
}

describe("proxy.socket", () => {
  it("serves only on the unix socket with tcp: false, trusts its peers, and removes it on shutdown", async () => {
    const daemon = await socketDaemon({ tcp: false, trusted: "[]" });
    try {
      const reply = await getOverSocket(daemon.proxySocket, { host: "shop.example", "x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https", "x-real-ip": "203.0.113.7" });
      expect(reply.status).toBe(200);
      const seen = JSON.parse(reply.body) as { release: string; headers: Record<string, string> };
      expect(seen.release).toBe("v1");
      // a unix peer is trusted whatever trustedProxies says, and has no address to append
      expect(seen.headers["x-forwarded-for"]).toBe("203.0.113.7");
      expect(seen.headers["x-forwarded-proto"]).toBe("https");
      expect(seen.headers["x-real-ip"]).toBe("203.0.113.7");
      expect(seen.headers.host).toBe("shop.example");
      expect(await canConnect(daemon.proxyPort)).toBe(false);

      const status = await daemon.status();
      expect(status.proxy).toMatchObject({ tcp: false, socket: daemon.proxySocket });
      const socketStat = await fs.lstat(daemon.proxySocket);
      expect(socketStat.isSocket()).toBe(true);
      expect(socketStat.mode & 0o777).toBe(0o660);
      const dirStat = await fs.stat(path.dirname(daemon.proxySocket));
      expect(dirStat.mode & 0o777).toBe(0o750);
      if (isRoot) {
        expect(socketStat.gid).toBe(gid);
        expect(dirStat.gid).toBe(gid);
      }

      daemon.child.kill("SIGTERM");
      expect(await waitForExit(daemon.child, 20_000)).toBe(true);
      await expect(fs.lstat(daemon.proxySocket)).rejects.toMatchObject({ code: "ENOENT" });
    } finally {
      await daemon.stop();
    }
  });

  it("lets in only users of the socket's group", async (ctx) => {
    if (!isRoot) ctx.skip("needs root to create a second local user and a group");
    const daemon = await socketDaemon();
    try {
      // The temp dir is 0700, which the daemon warned about: nginx could not have reached the socket.
      const warning = daemonEvents(daemon, "proxy-socket-unreachable")[0];
      expect(warning?.message).toContain(`${daemon.dir} (mode 0700) does not let them through`);
      // the second user may pass through it, nothing more
      await fs.chmod(daemon.dir, 0o711);
      expect(await getAs(daemon.proxySocket, ["--clear-groups"])).toBe("EACCES");
      expect(await getAs(daemon.proxySocket, [`--groups=${gid}`])).toBe("200 v1");
      // TCP still serves next to the socket
      expect(await canConnect(daemon.proxyPort)).toBe(true);
    } finally {
      await daemon.stop();
    }
  });

  it("refuses a symlink planted at the socket path and leaves its target alone", async () => {
    await refusedStart(
      "proxy/proxy.sock",
      async ({ dir }) => {
        await fs.mkdir(path.join(dir, "proxy"), { mode: 0o750 });
        await fs.writeFile(path.join(dir, "precious.conf"), "secret\n", { mode: 0o600 });
        await fs.symlink(path.join(dir, "precious.conf"), path.join(dir, "proxy", "proxy.sock"));
      },
      async (error, dir) => {
        expect(error).toMatch(/proxy\.socket\.path .*proxy\.sock exists and is a symbolic link, not a socket: refusing to replace it/);
        const target = await fs.lstat(path.join(dir, "precious.conf"));
        expect(target.isFile()).toBe(true);
        expect(target.mode & 0o777).toBe(0o600);
        expect(await fs.readFile(path.join(dir, "precious.conf"), "utf8")).toBe("secret\n");
        expect((await fs.lstat(path.join(dir, "proxy", "proxy.sock"))).isSymbolicLink()).toBe(true);
      },
    );
  });

  it("refuses a socket directory another local user created in a shared directory", async (ctx) => {
    if (!isRoot) ctx.skip("needs root to create a second local user");
    await refusedStart(
      "shared/proxy/proxy.sock",
      async ({ dir }) => {
        await fs.chmod(dir, 0o711);
        await fs.mkdir(path.join(dir, "shared"));
        await fs.chmod(path.join(dir, "shared"), 0o1777);
        // the other user gets there first
        await run("setpriv", [`--reuid=${USER}`, `--regid=${USER}`, "--clear-groups", "--", "mkdir", "-m", "0777", path.join(dir, "shared", "proxy")]);
      },
      (error, dir) => {
        expect(error).toMatch(new RegExp(`shared/proxy belongs to uid ${uid}, not to root or the daemon's user`));
        expect(error).toMatch(/put the socket in a directory only the daemon's user can write/);
        return fs.readdir(path.join(dir, "shared", "proxy")).then((entries) => expect(entries).toEqual([]));
      },
    );
  });

  it("refuses a socket directory other users can write", async () => {
    await refusedStart(
      "open/proxy.sock",
      async ({ dir }) => {
        await fs.mkdir(path.join(dir, "open"));
        await fs.chmod(path.join(dir, "open"), 0o777);
      },
      (error) => expect(error).toMatch(/open is writable by other users \(mode 0777\), so another user could replace the socket/),
    );
  });

  it("replaces a stale socket left by a killed process and refuses a live one", async () => {
    const stale = await socketDaemon({
      setup: {
        beforeStart: async ({ dir }) => {
          await fs.mkdir(path.join(dir, "proxy"), { mode: 0o750 });
          await leaveStaleSocket(path.join(dir, "proxy", "proxy.sock"));
        },
      },
    });
    try {
      expect((await getOverSocket(stale.proxySocket, { host: "h" })).status).toBe(200);
    } finally {
      await stale.stop();
    }

    let holder: net.Server | null = null;
    try {
      await refusedStart(
        "proxy/proxy.sock",
        async ({ dir }) => {
          await fs.mkdir(path.join(dir, "proxy"), { mode: 0o750 });
          holder = net.createServer((socket) => socket.destroy());
          await new Promise<void>((resolve) => holder!.listen(path.join(dir, "proxy", "proxy.sock"), resolve));
        },
        (error) => expect(error).toMatch(/something is already listening on proxy\.socket\.path .*proxy\.sock/),
      );
    } finally {
      await new Promise<void>((resolve) => (holder ? holder.close(() => resolve()) : resolve()));
    }
  });
});

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: 20_000 }, (error, stdout, stderr) => (error ? reject(new Error(`${command} ${args.join(" ")}: ${stderr || error.message}`)) : resolve(stdout)));
  });
}

function getOverSocket(socketPath: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: "/whoami", headers, agent: false, timeout: 10_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
  });
}

// A GET over the socket as the second user; prints "<status> <release>" or the error code.
async function getAs(socketPath: string, groups: string[]): Promise<string> {
  const script = `const r=require("http").get({socketPath:${JSON.stringify(socketPath)},path:"/",headers:{host:"h"}},(res)=>{let b="";res.on("data",(c)=>b+=c);res.on("end",()=>{console.log(res.statusCode+" "+JSON.parse(b).release)})});r.on("error",(e)=>console.log(e.code));`;
  return (await run("setpriv", [`--reuid=${USER}`, `--regid=${USER}`, ...groups, "--", "/usr/bin/node", "-e", script])).trim();
}

// A process that listens on `socketPath` and is then SIGKILLed: its socket file stays behind.
async function leaveStaleSocket(socketPath: string): Promise<void> {
  const child = spawn(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(socketPath)}, () => console.log("up"))`], { stdio: ["ignore", "pipe", "inherit"] });
  const up = new Promise<void>((resolve) => child.stdout!.once("data", () => resolve()));
  await Promise.race([up, new Promise((_, reject) => setTimeout(() => reject(new Error("stale socket holder did not start")), 10_000))]);
  child.kill("SIGKILL");
  await waitForExit(child, 5000);
  expect((await fs.lstat(socketPath)).isSocket()).toBe(true);
}
