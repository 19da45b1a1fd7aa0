// PM2 for reference (context, not a target): PM2 in cluster mode shares the app's port through
// its God daemon (Node's cluster module) and has no proxy hop, so its throughput is not
// comparable with a proxy's; what compares is what a user sees during a reload.
//
//   - the God daemon's RSS, idle and under load;
//   - `pm2 reload` of a cluster-mode app (N instances) while wrk keeps 50 connections busy on
//     the shared port: failed requests (wrk's socket errors + non-2xx) and the reload's wall time;
//   - the same through Rollbridge: a plain `rollbridge daemon` with `replicas: N` of the same
//     app, `apply --release-path <next release> --wait` under the same load through its proxy.
//
//   npm run build && node bench/pm2.mjs [--instances 2] [--reloads 3] [--connections 50] [--timeout 480]
//
// PM2 is installed at bench time from the npm registry into a temp directory
// (`npm install --prefix <tmp> pm2@latest`), never as a project dependency, and runs with its
// own PM2_HOME there; at the end `pm2 kill` (that PM2_HOME), then every pid it had is stopped by
// pid, and the directory is removed. When the install fails the PM2 part is skipped with the
// reason; the Rollbridge part still runs. Writes bench/results/pm2-<timestamp>.json when run
// directly.
import { execFile } from "node:child_process";
import { existsSync, promises as fs, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { canConnect, startBenchDaemon } from "./bench-daemon.mjs";
import { bounded, fmt, freePort, parseNumberFlags, printTable, sleep, stats, writeResult } from "./lib.mjs";
import { ChildTracker, kbToMB, readMemory, startRssSampler } from "./proc.mjs";
import { HELLO_APP } from "./proxy.mjs";
import { findWrk, runWrk, WRK_MISSING } from "./wrk.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));

export const defaultPm2Options = {
  /** Cluster instances for PM2, replicas for Rollbridge. */
  instances: 2,
  /** Reloads under one continuous load, one after the other. */
  reloads: 3,
  /** Load before the first reload, between reloads, and after the last. */
  gapMs: 1500,
  connections: 50,
  threads: 2,
  /** What `npm install` installs. */
  pm2Spec: "pm2@latest",
  installTimeoutSec: 240,
  timeoutSec: 480,
  resultsDir: null,
  print: true,
};

/** Resolves with {meta, pm2: {...} | {skipped}, rollbridge: {...}}. */
export async function runPm2Bench(opts = {}) {
  const options = { ...defaultPm2Options, ...opts };
  const tracker = new ChildTracker();
  return bounded("pm2 bench", options.timeoutSec, tracker, () => body(options, tracker));
}

async function body(options, tracker) {
  const log = (text) => options.print && process.stderr.write(`[pm2 bench] ${text}\n`);
  const result = {
    meta: {
      date: new Date().toISOString(),
      node: process.version,
      cpus: os.cpus().length,
      instances: options.instances,
      reloads: options.reloads,
      connections: options.connections,
      loadAvgAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
    },
  };
  if (!findWrk()) {
    log(`${WRK_MISSING}: skipping the PM2 benchmark`);
    return { ...result, skipped: WRK_MISSING };
  }
  const tmp = tracker.tempDir(await fs.mkdtemp(path.join(os.tmpdir(), "rb-pm2-")));
  try {
    log(`installing ${options.pm2Spec} into ${tmp}`);
    const installed = await installPm2(tracker, tmp, options);
    if (installed.error) {
      log(`PM2 could not be installed (${installed.error}): skipping its part`);
      result.pm2 = { skipped: `npm install ${options.pm2Spec} failed: ${installed.error}` };
    } else {
      result.meta.pm2 = installed.version;
      try {
        result.pm2 = await measurePm2(tracker, tmp, installed.bin, options, log);
      } catch (error) {
        // PM2 is a reference: its failure must not cost the Rollbridge half of the comparison.
        log(`the PM2 part failed: ${error.message}`);
        result.pm2 = { failed: String(error.message) };
      }
    }
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
  result.rollbridge = await measureRollbridge(tracker, options, log);
  if (options.print) print(result);
  writeResult(result, options.resultsDir, "pm2", result.meta.date, options.print);
  return result;
}

// --- PM2 ---

async function installPm2(tracker, tmp, options) {
  const r = await run(tracker, "npm", ["install", "--prefix", tmp, options.pm2Spec, "--no-audit", "--no-fund", "--no-save", "--loglevel=error"], { timeoutMs: options.installTimeoutSec * 1000 });
  const bin = path.join(tmp, "node_modules", "pm2", "bin", "pm2");
  if (r.code !== 0 || !existsSync(bin)) {
    // npm's first lines name the cause (code, errno, the request); its last ones are boilerplate.
    const lines = `${r.stderr}\n${r.stdout}`.split("\n").filter((l) => l.trim() && !/complete log|npm help|^npm (error|ERR!)\s*$|behind a proxy/.test(l));
    return { error: lines.slice(0, 2).join("; ") || `exit ${r.code ?? "?"}` };
  }
  const version = JSON.parse(readFileSync(path.join(tmp, "node_modules", "pm2", "package.json"), "utf8")).version;
  return { bin, version };
}

async function measurePm2(tracker, tmp, bin, options, log) {
  const home = path.join(tmp, "home");
  await fs.mkdir(home);
  const env = { ...process.env, PM2_HOME: home };
  const pm2 = (args, timeoutMs = 60_000) => run(tracker, process.execPath, [bin, ...args], { env, timeoutMs, cwd: tmp });
  const port = await freePort();
  const ecosystem = path.join(tmp, "ecosystem.config.cjs");
  // PM2's defaults otherwise (kill_timeout 1600 ms, listen_timeout 3000 ms): what a user gets.
  await fs.writeFile(ecosystem, `module.exports = { apps: [{ name: "hello", script: ${JSON.stringify(HELLO_APP)}, exec_mode: "cluster", instances: ${options.instances}, env: { PORT: "${port}" } }] };\n`);
  const seen = new Set();
  const godPid = () => {
    const file = path.join(home, "pm2.pid");
    return existsSync(file) ? Number(readFileSync(file, "utf8").trim()) : null;
  };
  const workers = async () => {
    const r = await pm2(["jlist"]);
    const text = r.stdout.slice(r.stdout.indexOf("["));
    const list = JSON.parse(text || "[]").map((p) => ({ pid: p.pid, status: p.pm2_env?.status }));
    for (const w of list) if (w.pid) (seen.add(w.pid), tracker.adopt(w.pid));
    return list;
  };
  try {
    const started = await pm2(["start", ecosystem]);
    const god = godPid();
    tracker.adopt(god);
    if (started.code !== 0) throw new Error(`pm2 start failed (exit ${started.code}): ${started.stderr || started.stdout}`);
    const deadline = Date.now() + 20_000;
    for (;;) {
      const online = (await workers()).filter((w) => w.status === "online").length;
      if (online === options.instances && (await canConnect(port))) break;
      if (Date.now() > deadline) throw new Error(`PM2 did not bring ${options.instances} instances online on port ${port} within 20 s`);
      await sleep(200);
    }
    log(`PM2 God daemon pid ${god}, ${options.instances} cluster instances on 127.0.0.1:${port}`);
    await sleep(1000);
    const idle = readMemory(god);
    const sampler = startRssSampler(god, 100, ["load"]);
    sampler.phase = "load";
    const reloads = [];
    const load = await underLoad(tracker, port, options, async () => {
      const before = (await workers()).map((w) => w.pid);
      const r = await pm2(["reload", "hello"]);
      if (r.code !== 0) throw new Error(`pm2 reload failed (exit ${r.code}): ${r.stderr || r.stdout}`);
      const after = await workers();
      const replaced = after.filter((w) => w.status === "online" && !before.includes(w.pid)).length;
      reloads.push({ wallMs: Math.round(r.wallMs), replaced });
      log(`pm2 reload: ${Math.round(r.wallMs)} ms, ${replaced} of ${options.instances} instances replaced`);
    });
    const series = sampler.stop().load.map((s) => s.rssKB);
    const hwm = readMemory(god).hwmKB;
    return {
      godPid: god,
      godRss: { idleMB: kbToMB(idle.rssKB), peakUnderLoadMB: kbToMB(hwm > idle.hwmKB ? hwm : Math.max(0, ...series)), highWaterMarkMB: kbToMB(hwm) },
      reloadMs: stats(reloads.map((r) => r.wallMs)),
      allReplaced: reloads.every((r) => r.replaced === options.instances),
      reloads,
      load: summarizeLoad(load),
    };
  } finally {
    const killed = await pm2(["kill"], 30_000);
    if (killed.code !== 0) log(`pm2 kill failed (exit ${killed.code}); stopping its processes by pid`);
    const god = godPid();
    await Promise.all([god, ...seen].filter(Boolean).map((pid) => tracker.stopPid(pid, 5000)));
  }
}

// --- Rollbridge, the same reload ---

async function measureRollbridge(tracker, options, log) {
  const d = await startBenchDaemon({ tracker, entry: HELLO_APP, health: { path: "/ping" }, replicas: options.instances > 1 ? options.instances : undefined });
  try {
    await d.deploy("v1");
    const pid = d.daemonPid;
    log(`rollbridge daemon pid ${pid}, ${options.instances} replica(s), proxy 127.0.0.1:${d.proxyPort}`);
    await sleep(1000);
    const idle = readMemory(pid);
    const reloads = [];
    let next = "v2";
    const load = await underLoad(tracker, d.proxyPort, options, async () => {
      const r = await d.deploy(next);
      next = next === "v2" ? "v1" : "v2";
      reloads.push({ wallMs: r.cliWallMs, cliStartToSwitchedMs: r.cliStartToSwitchedMs });
      log(`rollbridge apply --wait: ${r.cliWallMs} ms (switched at ${r.cliStartToSwitchedMs} ms)`);
    });
    const hwm = readMemory(pid).hwmKB;
    return {
      daemonPid: pid,
      daemonRss: { idleMB: kbToMB(idle.rssKB), highWaterMarkMB: kbToMB(hwm) },
      reloadMs: stats(reloads.map((r) => r.wallMs)),
      reloads,
      load: summarizeLoad(load),
    };
  } finally {
    await d.stop();
  }
}

// --- shared ---

/**
 * Keeps wrk running against `port` while `reload()` runs `options.reloads` times (after a gap
 * of steady load, with gaps between), then ends wrk with SIGINT and resolves with its numbers.
 */
async function underLoad(tracker, port, options, reload) {
  let wrk = null;
  const loading = runWrk(tracker, port, { durationSec: 300, connections: options.connections, threads: options.threads, onStart: (child) => (wrk = child) });
  try {
    await sleep(options.gapMs);
    for (let i = 0; i < options.reloads; i++) {
      await reload();
      await sleep(options.gapMs);
    }
  } finally {
    wrk?.kill("SIGINT");
  }
  return loading;
}

function summarizeLoad(load) {
  return { requests: load.requests, rps: load.rps, p99Ms: load.p99Ms, failed: load.errors, non2xx: load.non2xx, socketErrors: load.socketErrorKinds };
}

/** A child process (tracked), resolving {code, stdout, stderr, wallMs}; never rejects. */
function run(tracker, command, args, { env = process.env, timeoutMs = 60_000, cwd } = {}) {
  return new Promise((resolve) => {
    const startedAt = performance.now();
    const child = execFile(command, args, { env, cwd, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      tracker.children.delete(child);
      resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr, wallMs: performance.now() - startedAt });
    });
    tracker.children.add(child);
  });
}

function print(result) {
  const { instances, reloads, connections } = result.meta;
  console.log(`\nPM2 for reference: ${reloads} reloads of ${instances} instance(s) under ${connections} connections (context, not a target)`);
  const rows = [];
  const p = result.pm2;
  if (!p || p.skipped || p.failed) rows.push([`PM2 ${result.meta.pm2 ?? ""}`.trim(), p?.failed ? `failed: ${p.failed}` : `skipped: ${p?.skipped ?? "not run"}`, "", "", ""]);
  else {
    rows.push([
      `PM2 ${result.meta.pm2} cluster, \`pm2 reload\``,
      `${p.load.failed} of ${p.load.requests}`,
      `${fmt(p.reloadMs.median, 0)} (${fmt(p.reloadMs.min, 0)}–${fmt(p.reloadMs.max, 0)})`,
      fmt(p.load.rps, 0),
      `God daemon ${fmt(p.godRss.idleMB, 1)} idle, ${fmt(p.godRss.peakUnderLoadMB, 1)} peak${p.allReplaced ? "" : "; NOT every instance was replaced"}`,
    ]);
  }
  const r = result.rollbridge;
  if (r)
    rows.push([
      "Rollbridge, `apply --wait` via its proxy",
      `${r.load.failed} of ${r.load.requests}`,
      `${fmt(r.reloadMs.median, 0)} (${fmt(r.reloadMs.min, 0)}–${fmt(r.reloadMs.max, 0)})`,
      fmt(r.load.rps, 0),
      `daemon ${fmt(r.daemonRss.idleMB, 1)} idle, VmHWM ${fmt(r.daemonRss.highWaterMarkMB, 1)}`,
    ]);
  printTable(["reload under load", "failed requests", "reload ms median (min–max)", "req/s during", "RSS MB"], rows);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runPm2Bench({
    resultsDir: path.join(here, "results"),
    ...parseNumberFlags(process.argv.slice(2), { "--instances": "instances", "--reloads": "reloads", "--connections": "connections", "--threads": "threads", "--timeout": "timeoutSec" }),
  }).catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
