// `npm run demo`: a daemon on the bundled example app, two deploys under keep-alive load, then
// a bad release (healthy on /ping, 500 on real requests) deployed with a bake window and rolled
// back by itself while the previous release keeps serving; each step as it happens, then a
// summary. Leaves nothing running.
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
// v3: passes its health check, then fails every real request (a migration gone wrong).
await fs.mkdir(path.join(dir, "releases", "v3"), { recursive: true });
await fs.writeFile(path.join(dir, "releases", "v3", "server.mjs"), badRelease());
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

  // A bad release, judged on its live traffic during a bake window.
  await waitFor(async () => (await status()).processes.every((p) => p.releaseId === "v2" || p.state !== "running"), 15_000, "v1 to stop");
  const v2Pid = (await status()).processes.find((p) => p.releaseId === "v2" && p.state === "running")?.pid;
  load = startLoad(proxyPort, 16);
  await sleep(500);
  say("deploying v3 under load with a 10 s bake window: it passes /ping, then answers 500 to real requests");
  const bad = await run(["apply", "--config", config, "--release-path", path.join(dir, "releases", "v3"), "--bake", "10000", "--wait", "--json"]);
  const rolledBackAt = Date.now();
  let outcome = null;
  try {
    outcome = JSON.parse(bad.stdout).outcome;
  } catch {
    // reported below
  }
  say(`rollbridge apply --wait exited ${bad.code}: ${outcome?.outcome ?? "no outcome"}: ${outcome?.message ?? bad.stderr.trim()}`);
  await sleep(500);
  const badStats = await load.stop();
  load = null;
  const after = await status();
  const v2PidAfter = after.processes.find((p) => p.releaseId === "v2" && p.state === "running")?.pid;
  const servedAfter = badStats.answers.filter((a) => a.sentAt > rolledBackAt);
  const v2KeptServing = v2Pid !== undefined && v2PidAfter === v2Pid && servedAfter.length > 0 && servedAfter.every((a) => a.release === "v2" && a.pid === v2Pid);
  say(v2KeptServing ? `v2 kept serving: the same process (pid ${v2Pid}) answered every request after the rollback` : `v2 did NOT keep serving: pid ${v2Pid} before, ${v2PidAfter} after`);
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
    ["v3 (bad release): outcome", outcome?.outcome ?? "-"],
    ["v3: failed requests (then v2 again)", `${badStats.failed + badStats.non2xx} of ${badStats.sent}`],
    ["v2 pid before / after v3", `${v2Pid ?? "-"} / ${v2PidAfter ?? "-"}`],
  ];
  process.stdout.write("\n");
  for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(36)} ${v}\n`);
  process.stdout.write("\n");
  const rolledBack = bad.code === 1 && outcome?.outcome === "rolled-back" && v2KeptServing;
  exitCode = stats.failed + stats.non2xx === 0 && rolledBack ? 0 : 1;
  say(stats.failed + stats.non2xx === 0 ? "zero failed requests across the deploy of v2" : `FAILED requests: ${stats.errors.slice(0, 5).join("; ")}`);
  say(rolledBack ? "v3 was rolled back by itself; v2 never stopped" : "v3 was NOT rolled back as expected");
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

async function status() {
  const r = await run(["status", "--config", config, "--json"]);
  if (r.code !== 0) throw new Error(`rollbridge status failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

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
  const stats = { sent: 0, failed: 0, non2xx: 0, byRelease: {}, errors: [], answers: [] };
  let running = true;
  const one = () =>
    new Promise((resolve) => {
      stats.sent++;
      const sentAt = Date.now();
      const req = http.get({ host: "127.0.0.1", port, path: "/", agent }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (body += c));
        res.on("end", () => {
          if (res.statusCode === 200) {
            const { release: r, pid } = JSON.parse(body);
            stats.byRelease[r] = (stats.byRelease[r] ?? 0) + 1;
            stats.answers.push({ sentAt, release: r, pid });
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

/** v3's server.mjs: a stand-in for a release with a broken migration. */
function badRelease() {
  return `import http from "node:http";
const release = process.env.ROLLBRIDGE_RELEASE_ID ?? "dev";
const server = http.createServer((req, res) => {
  if (req.url === "/ping") return res.end("ok");
  res.writeHead(500, { "content-type": "application/json" });
  res.end(JSON.stringify({ release, error: "relation \\"orders\\" does not exist" }));
});
server.listen(Number(process.env.ROLLBRIDGE_PORT ?? 3000), "127.0.0.1");
process.on("SIGTERM", () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
`;
}
