// nginx as the reference proxy: throughput and tail latency direct to a tiny app, through nginx
// (keep-alive upstream), and through Rollbridge's proxy, in the same run and in alternating
// rounds (the style of bench/proxy.mjs, whose app and helpers it reuses), so the nginx/direct
// ratio is reported beside ours.
//
//   npm run build && node bench/nginx.mjs [--rounds 3] [--duration 5] [--connections 50] [--threads 2] [--pin]
//
// Needs nginx (apt-get install -y nginx) and wrk; without nginx it prints why and skips. Runs its
// own nginx master (daemon off, one worker) from a temp config on 127.0.0.1:<free port>, never
// the system service, and stops it by pid. Writes bench/results/nginx-<timestamp>.json when run
// directly.

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { APP_BODY, checkTarget, cpuSeconds, fmt, pickLoadGenerator, startChild } from "./proxy.mjs";
import { cpuPlacer, freePort, parseNumberFlags, printTable, writeResult } from "./lib.mjs";

const here = dirname(fileURLToPath(import.meta.url));

/** Default options; every field may be overridden by runNginxBench(opts) or CLI flags. */
export const defaultNginxBenchOptions = {
  rounds: 3,
  durationSec: 5,
  warmupSec: 1,
  connections: 50,
  threads: 2,
  /** Pin (taskset, >= 2 cores): nginx and our proxy on CPU 1, the app and wrk on CPU 0. */
  pin: false,
  /** Where to write nginx-<timestamp>.json; null to skip. */
  resultsDir: join(here, "results"),
  print: true,
};

/** Where nginx is, or null: apt installs it to /usr/sbin, which is not on every PATH. */
export function findNginx() {
  const found = spawnSync("sh", ["-c", "command -v nginx"], { encoding: "utf8" });
  if (found.status === 0 && found.stdout.trim()) return found.stdout.trim();
  for (const candidate of ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"]) if (existsSync(candidate)) return candidate;
  return null;
}

/**
 * Runs the benchmark; resolves with {meta, rounds, summary}, or with {skipped: reason} when nginx
 * is missing. Starts the app, nginx and our proxy as child processes and stops each by pid.
 */
export async function runNginxBench(opts = {}) {
  const options = { ...defaultNginxBenchOptions, ...opts };
  const nginx = findNginx();
  if (nginx === null) {
    const skipped = "nginx not found (install it with `apt-get install -y nginx`): skipping the nginx benchmark";
    if (options.print) console.error(skipped);
    return { skipped };
  }
  const load = pickLoadGenerator();
  const onCpu = cpuPlacer(options.pin);
  const pin = onCpu.pinned;
  const children = [];
  const tmp = mkdtempSync(join(os.tmpdir(), "rb-nginx-"));
  const killAll = () => {
    for (const child of children) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    // nginx workers are children of the master, not ours: end them by the pid they wrote.
    for (const pid of nginxWorkerPids(tmp)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  };
  const onSigint = () => {
    killAll();
    process.exit(130);
  };
  process.once("SIGINT", onSigint);
  try {
    const app = await startChild(children, onCpu(0, process.execPath, [join(here, "proxy.mjs"), "--serve-app"]));
    const ours = await startChild(children, onCpu(1, process.execPath, [join(here, "run-proxy.mjs"), String(app.port)]));
    const proxied = await startNginx(nginx, tmp, app.port, children, (command, args) => onCpu(1, command, args));
    const targets = [
      { name: "direct", port: app.port, pids: [app.pid] },
      { name: "nginx", port: proxied.port, pids: proxied.pids },
      { name: "rollbridge", port: ours.port, pids: [ours.pid] },
    ];
    for (const target of targets) await checkTarget(target);
    const runLoad = (port, o) => load.run(port, o, (command, args) => onCpu(0, command, args));
    for (const target of targets) await runLoad(target.port, { ...options, durationSec: options.warmupSec });

    const rounds = [];
    for (let round = 0; round < options.rounds; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length]);
      for (const target of order) {
        const cpuBefore = sum(target.pids.map(cpuSeconds));
        const result = await runLoad(target.port, options);
        result.cpuUsPerReq = ((sum(target.pids.map(cpuSeconds)) - cpuBefore) * 1e6) / (result.rps * options.durationSec);
        rounds.push({ round: round + 1, target: target.name, ...result });
        if (options.print) {
          console.error(`round ${round + 1} ${target.name.padEnd(10)} ${fmt(result.rps, 0).padStart(8)} req/s  p99 ${fmt(result.p99Ms, 2)} ms  cpu ${fmt(result.cpuUsPerReq, 1)} us/req${result.errors ? `  errors ${result.errors}` : ""}`);
        }
      }
    }
    const summary = summarize(targets.map((t) => t.name), rounds);
    const version = spawnSync(nginx, ["-v"], { encoding: "utf8" }).stderr.trim();
    const result = {
      meta: { date: new Date().toISOString(), node: process.version, nginx: version, cpus: os.cpus().length, pinned: pin, loadGenerator: load.name, rounds: options.rounds, durationSec: options.durationSec, connections: options.connections, threads: options.threads, body: APP_BODY.length },
      rounds,
      summary,
    };
    if (options.print) printSummary(summary);
    writeResult(result, options.resultsDir, "nginx", result.meta.date, options.print);
    return result;
  } finally {
    process.off("SIGINT", onSigint);
    await stopNginxGracefully(children, tmp);
    killAll();
    rmSync(tmp, { recursive: true, force: true });
  }
}

// --- nginx ---

// One master (daemon off, so it is our child) and one worker; everything it writes stays in tmp.
async function startNginx(nginx, tmp, appPort, children, place) {
  const port = await freePort();
  for (const dir of ["body", "proxy", "fastcgi", "uwsgi", "scgi"]) mkdirSync(join(tmp, dir), { recursive: true });
  const conf = `daemon off;
master_process on;
worker_processes 1;
pid ${join(tmp, "nginx.pid")};
error_log ${join(tmp, "error.log")} warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${join(tmp, "body")};
  proxy_temp_path ${join(tmp, "proxy")};
  fastcgi_temp_path ${join(tmp, "fastcgi")};
  uwsgi_temp_path ${join(tmp, "uwsgi")};
  scgi_temp_path ${join(tmp, "scgi")};
  upstream app {
    server 127.0.0.1:${appPort};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }
}
`;
  const confPath = join(tmp, "nginx.conf");
  writeFileSync(confPath, conf);
  // -e: the error log before the config is read (the default, /var/log/nginx, may not be writable).
  const [command, args] = place(nginx, ["-p", tmp, "-e", join(tmp, "error.log"), "-c", confPath]);
  const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] });
  children.push(child);
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}): ${stderr}${readIfExists(join(tmp, "error.log"))}`);
    if (await canConnect(port)) return { port, pids: [child.pid, ...nginxWorkerPids(tmp)] };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`nginx did not listen on ${port} in 10 s: ${stderr}`);
}

// SIGQUIT: the master stops its workers and exits; SIGKILL follows in killAll if it hangs.
async function stopNginxGracefully(children, tmp) {
  const pidFile = join(tmp, "nginx.pid");
  if (!existsSync(pidFile)) return;
  const master = Number(readFileSync(pidFile, "utf8").trim());
  const child = children.find((c) => c.pid === master);
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGQUIT");
  await Promise.race([new Promise((resolve) => child.once("exit", resolve)), new Promise((resolve) => setTimeout(resolve, 3000))]);
}

/** The worker pids of the nginx master whose pid file is in tmp (Linux /proc). */
function nginxWorkerPids(tmp) {
  const pidFile = join(tmp, "nginx.pid");
  if (!existsSync(pidFile)) return [];
  const master = readFileSync(pidFile, "utf8").trim();
  try {
    return readFileSync(`/proc/${master}/task/${master}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function readIfExists(file) {
  return existsSync(file) ? readFileSync(file, "utf8") : "";
}


function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

// --- reporting ---

function sum(xs) {
  return xs.reduce((a, b) => a + b, 0);
}

function median(xs) {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// Median over rounds per target, and each proxy's ratios to direct and to nginx.
function summarize(names, rounds) {
  const byName = Object.fromEntries(
    names.map((name) => {
      const mine = rounds.filter((r) => r.target === name);
      return [name, { rps: median(mine.map((r) => r.rps)), p50Ms: median(mine.map((r) => r.p50Ms)), p99Ms: median(mine.map((r) => r.p99Ms)), cpuUsPerReq: median(mine.map((r) => r.cpuUsPerReq)), errors: sum(mine.map((r) => r.errors)) }];
    }),
  );
  const { direct, nginx } = byName;
  return names.map((name) => ({
    target: name,
    ...byName[name],
    rpsVsDirect: byName[name].rps / direct.rps,
    p99VsDirect: byName[name].p99Ms / direct.p99Ms,
    rpsVsNginx: byName[name].rps / nginx.rps,
    p99VsNginx: byName[name].p99Ms / nginx.p99Ms,
  }));
}

function printSummary(summary) {
  const header = ["target", "req/s", "p50 ms", "p99 ms", "req/s vs direct", "p99 vs direct", "req/s vs nginx", "p99 vs nginx", "cpu us/req", "errors"];
  const rows = summary.map((s) => [s.target, fmt(s.rps, 0), fmt(s.p50Ms, 2), fmt(s.p99Ms, 2), `${fmt(s.rpsVsDirect, 2)}x`, `${fmt(s.p99VsDirect, 2)}x`, `${fmt(s.rpsVsNginx, 2)}x`, `${fmt(s.p99VsNginx, 2)}x`, fmt(s.cpuUsPerReq, 1), String(s.errors)]);
  printTable(header, rows);
}

// --- CLI ---

function parseArgs(argv) {
  return parseNumberFlags(argv, { "--rounds": "rounds", "--duration": "durationSec", "--warmup": "warmupSec", "--connections": "connections", "--threads": "threads" });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runNginxBench(parseArgs(process.argv.slice(2))).catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
