// The shipped nginx examples work: examples/nginx.conf passes `nginx -t` as it is, the TLS
// variant once its certificate paths point at real files, and nginx → Rollbridge over
// proxy.socket → app serves a deploy under load with no failed request, the app seeing the
// client's forwarded headers. Skipped, saying why, without nginx.
import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canConnect, freePort, ROOT, startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { startLoad } from "../helpers/load.js";
import { findNginx, mainConfig, nginxTest, NGINX_MISSING, startNginx, type RunningNginx } from "../helpers/nginx.js";

const nginx = findNginx();
const EXAMPLE = path.join(ROOT, "examples/nginx.conf");
const TLS_EXAMPLE = path.join(ROOT, "examples/nginx-tls.conf");
const isRoot = process.getuid?.() === 0;
const suffix = Math.random().toString(36).slice(2, 8);
const USER = `rbsec-ng${suffix}`;
const GROUP = `rbsec-ngg${suffix}`;

let prefix = "";

beforeAll(async () => {
  prefix = await fs.mkdtemp(path.join(os.tmpdir(), "rb-nginx-"));
  if (nginx !== null && isRoot) {
    await run("groupadd", [GROUP]);
    await run("useradd", ["-M", "-s", "/usr/sbin/nologin", "-g", GROUP, USER]);
  }
});

afterAll(async () => {
  if (nginx !== null && isRoot) {
    await run("userdel", [USER]).catch(() => undefined);
    await run("groupdel", [GROUP]).catch(() => undefined);
  }
  if (prefix) await fs.rm(prefix, { recursive: true, force: true });
});

describe("nginx examples", () => {
  it("examples/nginx.conf passes nginx -t as shipped", async (ctx) => {
    if (nginx === null) ctx.skip(NGINX_MISSING);
    const dir = await fs.mkdtemp(path.join(prefix, "t-"));
    // included unchanged, the way /etc/nginx/nginx.conf includes conf.d/*.conf
    await fs.writeFile(path.join(dir, "nginx.conf"), mainConfig(dir, EXAMPLE));
    const result = await nginxTest(nginx!, dir, path.join(dir, "nginx.conf"));
    expect(result.output).toMatch(/syntax is ok/);
    expect(result.output).toMatch(/test is successful/);
    expect(result.code, result.output).toBe(0);
  });

  it("examples/nginx-tls.conf passes nginx -t with its certificate paths pointed at real files", async (ctx) => {
    if (nginx === null) ctx.skip(NGINX_MISSING);
    const dir = await fs.mkdtemp(path.join(prefix, "tls-"));
    const made = await run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=shop.example.com", "-keyout", path.join(dir, "privkey.pem"), "-out", path.join(dir, "fullchain.pem")]).then(
      () => true,
      () => false,
    );
    if (!made) ctx.skip("openssl could not make a test certificate (apt-get install -y openssl): skipping the TLS example check");
    const shipped = await fs.readFile(TLS_EXAMPLE, "utf8");
    const site = shipped.replace("/etc/letsencrypt/live/shop.example.com/fullchain.pem", path.join(dir, "fullchain.pem")).replace("/etc/letsencrypt/live/shop.example.com/privkey.pem", path.join(dir, "privkey.pem"));
    expect(site).not.toBe(shipped);
    await fs.writeFile(path.join(dir, "site.conf"), site);
    await fs.writeFile(path.join(dir, "nginx.conf"), mainConfig(dir, path.join(dir, "site.conf")));
    const result = await nginxTest(nginx!, dir, path.join(dir, "nginx.conf"));
    expect(result.code, result.output).toBe(0);
    // and the plain example is not the TLS one
    expect(await fs.readFile(EXAMPLE, "utf8")).not.toMatch(/ssl_certificate|listen 443/);
  });
});

describe("nginx → Rollbridge over proxy.socket → app", () => {
  let daemon: TestDaemon | undefined;
  let server: RunningNginx | undefined;

  afterAll(async () => {
    await server?.stop();
    await daemon?.stop();
  });

  it("serves a deploy under load with no failed request, and the app sees the client's forwarded headers", async (ctx) => {
    if (nginx === null) ctx.skip(NGINX_MISSING);
    // The hardened setup: no TCP listener, nobody trusted over TCP, nginx in the socket's group.
    daemon = await startDaemon({
      proxy: { tcp: "false", trustedProxies: "[]", socket: `{path: run/proxy.sock, mode: "660"${isRoot ? `, group: ${GROUP}` : ""}}` },
    });
    // nginx's workers (USER) pass through the daemon's temp dir to the socket's directory
    await fs.chmod(daemon.dir, 0o711);
    const socketPath = path.join(daemon.dir, "run/proxy.sock");
    await daemon.applyRelease("v1");

    const dir = await fs.mkdtemp(path.join(prefix, "e2e-"));
    await fs.chmod(dir, 0o711);
    const port = await freePort();
    const shipped = await fs.readFile(EXAMPLE, "utf8");
    // Only what must change: the upstream address (the unix socket) and the port nginx listens on.
    const site = shipped.replace("server 127.0.0.1:8182;", `server unix:${socketPath};`).replace("listen 80;", `listen 127.0.0.1:${port};`);
    expect(site).toContain(`server unix:${socketPath};`);
    await fs.writeFile(path.join(dir, "site.conf"), site);
    await fs.writeFile(path.join(dir, "nginx.conf"), mainConfig(dir, path.join(dir, "site.conf"), isRoot ? { user: `${USER} ${GROUP}` } : {}));
    server = await startNginx(nginx!, dir, path.join(dir, "nginx.conf"), () => canConnect(port));

    const seen = await get(port, "/whoami", { host: "shop.example.com", "x-forwarded-for": "198.51.100.9" });
    expect(seen.status, seen.body).toBe(200);
    const app = JSON.parse(seen.body) as { release: string; headers: Record<string, string> };
    expect(app.release).toBe("v1");
    // what nginx sent, kept as is: Rollbridge trusts its socket peer and has no address to add
    expect(app.headers["x-forwarded-for"]).toBe("198.51.100.9, 127.0.0.1");
    expect(app.headers["x-forwarded-proto"]).toBe("http");
    expect(app.headers["x-forwarded-host"]).toBe("shop.example.com");
    expect(app.headers["x-real-ip"]).toBe("127.0.0.1");
    expect(app.headers.host).toBe("shop.example.com");

    const load = startLoad(port, { connections: 8 });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await daemon.applyRelease("v2");
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const stats = await load.stop();
    expect(stats.errors, JSON.stringify(stats.errors)).toEqual([]);
    expect(stats.failed).toBe(0);
    expect(stats.non2xx).toBe(0);
    expect(stats.byRelease.v1 ?? 0).toBeGreaterThan(0);
    expect(stats.byRelease.v2 ?? 0).toBeGreaterThan(0);
  });
});

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: 30_000 }, (error, stdout, stderr) => (error ? reject(new Error(`${command}: ${stderr || error.message}`)) : resolve(stdout)));
  });
}

function get(port: number, urlPath: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: urlPath, headers, agent: false, timeout: 10_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
  });
}
