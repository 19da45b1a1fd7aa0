// `npm run demo`: a daemon on the bundled example app, two deploys under keep-alive load,
// each step as it happens, then a summary. Leaves nothing running.
import { spawn, execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const cli = path.join(root, "dist/cli/main.js");
const t0 = Date.now();
const stamp = () => `+${((Date.now() - t0) / 1000).toFixed(2).padStart(6)}s`;
const say = (text) => process.stdout.write(`${stamp()}  ${text}\n`);

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function run(args) {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 120_000 }, (error, stdout, stderr) => resolve({ code: error ? (error.code ?? 1) : 0, stdout, stderr }));
  });
}

const dir = await fs.mkdtemp(path.join(os.tmpdir(), "rollbridge-demo-"));
const proxyPort = await freePort();
const appPortStart = 20000 + Math.floor(Math.random() * 1200) * 10; // below the ephemeral port range
const socket = path.join(dir, "rollbridge.sock");
const config = path.join(dir, "rollbridge.yaml");
for (const release of ["v1", "v2"]) {
  await fs.mkdir(path.join(dir, "releases", release), { recursive: true });
  await fs.copyFile(path.join(root, "examples/app/server.mjs"), path.join(dir, "releases", release, "server.mjs"));
}
await fs.writeFile(
  config,
  `application: demo
control: {path: ${socket}}
proxy: {host: 127.0.0.1, port: ${proxyPort}, drainTimeoutMs: 3000}
processes:
  - id: web
    policy: proxied
    command: node server.mjs
    port: {from: ${appPortStart}, to: ${appPortStart + 9}}
    health: {path: /ping, intervalMs: 50}
    gracefulStopMs: 5000
`,
);

say(`demo directory ${dir}`);
say(`starting the daemon: proxy on 127.0.0.1:${proxyPort}, control socket ${socket}`);
const daemon = spawn(process.execPath, [cli, "daemon", "--config", config], { stdio: ["ignore", "pipe", "inherit"] });
const events = [];
let buffer = "";
daemon.stdout.setEncoding("utf8").on("data", (chunk) => {
  buffer += chunk;
  let nl;
  while ((nl = buffer.indexOf("\n")) >= 0) {
    const line = buffer.slice(0, nl);
    buffer = buffer.slice(nl + 1);
    try {
      const event = JSON.parse(line);
      events.push(event);
      if (event.type !== "desired-changed") say(`  daemon: ${event.message}`);
    } catch {
      // not an event line
    }
  }
});

let load = null;
let exitCode = 1;
try {
  await waitFor(async () => (await run(["status", "--config", config, "--json"])).code === 0, 15_000, "the daemon to answer");
  say("deploying v1 (rollbridge apply --release-path releases/v1 --wait)");
  await deploy("v1");

  load = startLoad(proxyPort, 16);
  say("sending traffic: 16 keep-alive connections");
  await sleep(1000);

  say("deploying v2 under load");
  await deploy("v2");
  await sleep(500);
  const stats = await load.stop();
  load = null;

  const switched = events.filter((e) => e.type === "traffic-switched").at(-1);
  const stopped = events.filter((e) => e.type === "release-stopped").at(-1);
  const healthy = events.filter((e) => e.type === "process-healthy").at(-1);
  say("shutting down the daemon (rollbridge shutdown)");
  await run(["shutdown", "--config", config]);

  const rows = [
    ["requests sent", stats.sent],
    ["failed (errors + non-2xx)", stats.failed + stats.non2xx],
    ["served by v1 / v2", `${stats.byRelease.v1 ?? 0} / ${stats.byRelease.v2 ?? 0}`],
    ["v2 boot to healthy", healthy ? `${healthy.data.ms} ms` : "-"],
    ["switch time (healthy → switched)", switched ? `${switched.data.switchLatencyMs} ms` : "-"],
    ["rollout time (start → switched)", switched ? `${switched.data.rolloutMs} ms` : "-"],
    ["drain time (v1 switched → stopped)", stopped?.data?.drainMs !== undefined ? `${stopped.data.drainMs} ms` : "-"],
  ];
  process.stdout.write("\n");
  for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(36)} ${v}\n`);
  process.stdout.write("\n");
  exitCode = stats.failed + stats.non2xx === 0 ? 0 : 1;
  say(exitCode === 0 ? "zero failed requests across the deploy" : `FAILED requests: ${stats.errors.slice(0, 5).join("; ")}`);
} catch (error) {
  say(`demo failed: ${error.message}`);
} finally {
  if (load) await load.stop();
  if (daemon.exitCode === null) {
    daemon.kill("SIGTERM");
    await new Promise((resolve) => {
      const timer = setTimeout(() => {
        daemon.kill("SIGKILL");
        resolve();
      }, 15_000);
      daemon.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  await fs.rm(dir, { recursive: true, force: true });
}
process.exit(exitCode);

async function deploy(release) {
  const result = await run(["apply", "--config", config, "--release-path", path.join(dir, "releases", release), "--wait"]);
  if (result.code !== 0) throw new Error(`deploy of ${release} failed:\n${result.stderr}`);
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function startLoad(port, connections) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const stats = { sent: 0, failed: 0, non2xx: 0, byRelease: {}, errors: [] };
  let running = true;
  const one = () =>
    new Promise((resolve) => {
      stats.sent++;
      const req = http.get({ host: "127.0.0.1", port, path: "/", agent }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (body += c));
        res.on("end", () => {
          if (res.statusCode === 200) {
            const r = JSON.parse(body).release;
            stats.byRelease[r] = (stats.byRelease[r] ?? 0) + 1;
          } else {
            stats.non2xx++;
            stats.errors.push(`HTTP ${res.statusCode}`);
          }
          resolve();
        });
      });
      req.on("error", (e) => {
        stats.failed++;
        stats.errors.push(e.message);
        resolve();
      });
    });
  const workers = Array.from({ length: connections }, async () => {
    while (running) await one();
  });
  return {
    async stop() {
      running = false;
      await Promise.all(workers);
      agent.destroy();
      return stats;
    },
  };
}
