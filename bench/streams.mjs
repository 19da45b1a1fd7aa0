// Large bodies through the daemon's proxy vs direct to the app, both ways, in one run: the wall
// time of a 500 MB download and a 500 MB upload, and the daemon's RSS before and at its peak
// during each proxied transfer (backpressure, not buffering, keeps the rise small). The app
// (bench/stream-app.cjs) is the daemon's proxied process; the client is a child process of this
// benchmark that times the transfer itself. A third target is the floor of any proxy in Node: a
// bare TCP relay (this file run as `--relay <port>`: two sockets piped both ways, no HTTP, the
// proxy's 256 KiB socket buffers), so proxy / direct reads beside relay / direct. Rounds rotate
// which target goes first.
//
//   npm run build && node bench/streams.mjs [--mb 500] [--rounds 3] [--timeout 400]
//
// Writes bench/results/streams-<timestamp>.json.

import http from "node:http";
import net from "node:net";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { startBenchDaemon } from "./bench-daemon.mjs";
import { bounded, fmt, median, parseNumberFlags, printTable, writeResult } from "./lib.mjs";
import { ChildTracker, cpuSeconds, cpuTimes, kbToMB, readMemory } from "./proc.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const self = fileURLToPath(import.meta.url);
export const STREAM_APP = join(here, "stream-app.cjs");

/** Default options; every field may be overridden by runStreamsBench(opts) or CLI flags. */
export const defaultStreamsBenchOptions = {
  /** Body size of each transfer, in MiB. */
  mb: 500,
  rounds: 3,
  /** Size of the untimed warm-up transfer per target and direction, in MiB. */
  warmupMb: 32,
  /** Goals of issue 18: proxied time ≤ 1.3x direct, daemon RSS rise ≤ 20 MB. */
  goalRatio: 1.3,
  goalRiseMB: 20,
  sampleEveryMs: 25,
  timeoutSec: 400,
  resultsDir: join(here, "results"),
  print: true,
};

const DIRECTIONS = ["download", "upload"];

/** Runs the benchmark and resolves with {meta, rounds, summary}; stops everything it started by pid. */
export async function runStreamsBench(opts = {}) {
  const options = { ...defaultStreamsBenchOptions, ...opts };
  const tracker = new ChildTracker();
  return bounded("streams bench", options.timeoutSec, tracker, () => body(options, tracker));
}

async function body(options, tracker) {
  const loadAvgAtStart = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const daemon = await startBenchDaemon({ tracker, entry: STREAM_APP, health: { path: "/ping" }, drainTimeoutMs: 60_000 });
  try {
    await daemon.deploy("v1");
    const app = await daemon.app();
    const relay = await startRelay(tracker, app.port);
    const targets = [
      { name: "direct", port: app.port },
      { name: "proxy", port: daemon.proxyPort, pid: daemon.daemonPid },
      { name: "relay", port: relay.port, pid: relay.pid },
    ];
    const bytes = options.mb * 2 ** 20;
    // The baseline of the rise: the idle daemon, before any body went through it.
    const idleMB = kbToMB(readMemory(daemon.daemonPid).rssKB);
    for (const target of targets) for (const direction of DIRECTIONS) await transfer(tracker, direction, target.port, options.warmupMb * 2 ** 20);

    const rounds = [];
    for (let round = 0; round < options.rounds; round++) {
      for (const direction of DIRECTIONS) {
        const order = targets.map((_, i) => targets[(i + round) % targets.length]);
        for (const target of order) {
          const memory = target.name === "proxy" ? watchMemory(daemon.daemonPid, options.sampleEveryMs) : null;
          const cpuBefore = { app: cpuSeconds(app.pid), hop: target.pid === undefined ? null : cpuTimes(target.pid) };
          const result = await transfer(tracker, direction, target.port, bytes);
          const rss = memory?.stop() ?? null;
          // CPU per MiB of each process of the chain: unlike wall time, it hardly depends on other load
          const perMiB = (seconds) => (seconds * 1000) / options.mb;
          const cpuMsPerMiB = {
            client: perMiB(result.cpuSeconds),
            app: perMiB(cpuSeconds(app.pid) - cpuBefore.app),
          };
          // The hop's (daemon's or relay's) CPU, and the part of it in user space (the rest is the kernel's socket work).
          if (cpuBefore.hop !== null) {
            const after = cpuTimes(target.pid);
            const user = after.user - cpuBefore.hop.user;
            cpuMsPerMiB[target.name === "proxy" ? "daemon" : "relay"] = perMiB(user + after.system - cpuBefore.hop.system);
            cpuMsPerMiB.hopUser = perMiB(user);
          }
          rounds.push({ round: round + 1, direction, target: target.name, ...result, cpuMsPerMiB, ...(rss ? { daemonRss: rss } : {}) });
          if (options.print) {
            const mem = rss ? `  daemon RSS ${fmt(rss.beforeMB, 0)} -> peak ${fmt(rss.peakMB, 0)} MB, CPU ${fmt(cpuMsPerMiB.daemon, 2)} ms/MiB (user ${fmt(cpuMsPerMiB.hopUser, 2)})` : "";
            const hop = target.name === "relay" ? `  relay CPU ${fmt(cpuMsPerMiB.relay, 2)} ms/MiB (user ${fmt(cpuMsPerMiB.hopUser, 2)})` : "";
            console.error(`round ${round + 1} ${direction.padEnd(8)} ${target.name.padEnd(6)} ${fmt(result.ms, 0).padStart(6)} ms  ${fmt(result.mbPerSec, 0).padStart(5)} MB/s${mem}${hop}`);
          }
        }
      }
    }

    const summary = summarize(rounds, idleMB, options);
    const result = {
      meta: {
        date: new Date().toISOString(),
        node: process.version,
        cpus: os.cpus().length,
        mb: options.mb,
        rounds: options.rounds,
        goalRatio: options.goalRatio,
        goalRiseMB: options.goalRiseMB,
        daemon: { started: "rollbridge daemon (no V8 flags)", pid: daemon.daemonPid, idleMB },
        relay: { started: "node bench/streams.mjs --relay (net sockets piped both ways)", pid: relay.pid, highWaterMark: RELAY_HIGH_WATER_MARK },
        loadAvgAtStart,
      },
      rounds,
      summary,
    };
    if (options.print) printSummary(summary, options);
    writeResult(result, options.resultsDir, "streams", result.meta.date, options.print);
    return result;
  } finally {
    await daemon.stop();
  }
}

// --- the client: this file run as `--client <download|upload> <port> <bytes>` ---

/** One transfer by a child client; resolves {bytes, ms, mbPerSec, firstByteMs, cpuSeconds} (the client's own CPU). */
function transfer(tracker, direction, port, bytes) {
  return new Promise((resolve, reject) => {
    const child = tracker.spawn(process.execPath, [self, "--client", direction, String(port), String(bytes)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk) => (out += chunk));
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`${direction} client on port ${port} exited with ${code}`));
      try {
        const result = JSON.parse(out);
        if (result.bytes !== bytes) throw new Error(`${direction} on port ${port}: ${result.bytes} of ${bytes} bytes`);
        resolve({ ...result, mbPerSec: bytes / 2 ** 20 / (result.ms / 1000) });
      } catch (error) {
        reject(error);
      }
    });
  });
}

// Download: reads the body as fast as it comes. Upload: writes a 64 KiB buffer again and again,
// waiting for 'drain' (the app answers with the byte count it read).
function runClient(direction, port, bytes) {
  const startedAt = performance.now();
  const cpuAtStart = process.cpuUsage();
  let firstByteMs = null;
  const done = (received) => {
    const cpu = process.cpuUsage(cpuAtStart);
    process.stdout.write(JSON.stringify({ bytes: received, ms: performance.now() - startedAt, firstByteMs, cpuSeconds: (cpu.user + cpu.system) / 1e6 }));
  };
  const fail = (error) => {
    console.error(`${direction} client: ${error.message}`);
    process.exit(1);
  };
  if (direction === "download") {
    http
      .get({ host: "127.0.0.1", port, path: `/download?bytes=${bytes}`, agent: false }, (res) => {
        let received = 0;
        res.on("data", (chunk) => {
          firstByteMs ??= performance.now() - startedAt;
          received += chunk.length;
        });
        res.on("end", () => done(received));
        res.on("error", fail);
      })
      .on("error", fail);
    return;
  }
  const chunk = Buffer.alloc(64 * 1024, 0x62);
  const req = http.request({ host: "127.0.0.1", port, path: "/upload", method: "PUT", agent: false, headers: { "content-length": bytes } }, (res) => {
    let text = "";
    res.on("data", (c) => (text += c));
    res.on("end", () => done(JSON.parse(text).bytes));
  });
  req.on("error", fail);
  let left = bytes;
  const pump = () => {
    while (left > 0) {
      const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= piece.length;
      if (!req.write(piece)) return void req.once("drain", pump);
    }
    req.end();
  };
  pump();
}

// --- the floor: a bare TCP relay, this file run as `--relay <port>` ---

/** The relay's socket buffers: those of the proxy's sockets (STREAM_HIGH_WATER_MARK). */
const RELAY_HIGH_WATER_MARK = 256 * 1024;

/** Starts the relay in front of `port` as a child; resolves {port, pid} once it listens. */
function startRelay(tracker, port) {
  return new Promise((resolve, reject) => {
    const child = tracker.spawn(process.execPath, [self, "--relay", String(port)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const ready = /READY (\d+)/.exec(out);
      if (ready) resolve({ port: Number(ready[1]), pid: child.pid });
    });
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`the relay exited with ${code} before it listened`)));
  });
}

// Each connection: one socket to the app, each side piped into the other (pipe pauses the
// reader while the writer's buffer is full, and ends the writer after what it buffered when the
// reader ends); an error on either side destroys both.
function runRelay(port) {
  const server = net.createServer({ noDelay: true, highWaterMark: RELAY_HIGH_WATER_MARK }, (client) => {
    const upstream = net.connect({ host: "127.0.0.1", port, noDelay: true, highWaterMark: RELAY_HIGH_WATER_MARK });
    const fail = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", fail);
    upstream.on("error", fail);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.listen(0, "127.0.0.1", () => process.stdout.write(`READY ${server.address().port}\n`));
  process.on("SIGTERM", () => process.exit(0));
}

// --- the daemon's memory during one transfer ---

// VmRSS every `everyMs`; the peak is VmHWM when the high-water mark rose during the transfer
// (it catches what falls between two samples), else the highest sample.
function watchMemory(pid, everyMs) {
  const first = readMemory(pid);
  let highestKB = first.rssKB;
  const timer = setInterval(() => {
    try {
      highestKB = Math.max(highestKB, readMemory(pid).rssKB);
    } catch {
      // the daemon is gone: the transfer fails and says so
    }
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      const last = readMemory(pid);
      const peakKB = last.hwmKB > first.hwmKB ? last.hwmKB : Math.max(highestKB, last.rssKB);
      return { beforeMB: kbToMB(first.rssKB), peakMB: kbToMB(peakKB), afterMB: kbToMB(last.rssKB) };
    },
  };
}

// --- reporting ---

// Per direction: the median wall time of each target, their ratio, and the daemon's highest RSS
// during a proxied transfer, as a rise over the idle daemon's.
function summarize(rounds, idleMB, options) {
  return DIRECTIONS.map((direction) => {
    const mine = rounds.filter((r) => r.direction === direction);
    const direct = median(mine.filter((r) => r.target === "direct").map((r) => r.ms));
    const proxied = mine.filter((r) => r.target === "proxy");
    const proxy = median(proxied.map((r) => r.ms));
    const ratio = proxy / direct;
    const relayed = mine.filter((r) => r.target === "relay");
    const relayMs = median(relayed.map((r) => r.ms));
    const relayRatio = relayMs / direct;
    // Each round's own ratios: their range says how noisy the run was.
    const perRound = (target) => mine.filter((r) => r.target === target).map((r) => r.ms / mine.find((d) => d.target === "direct" && d.round === r.round).ms);
    const range = (xs) => [Math.min(...xs), Math.max(...xs)];
    const peakMB = Math.max(...proxied.map((r) => r.daemonRss.peakMB));
    const riseMB = Math.round((peakMB - idleMB) * 10) / 10;
    // The daemon's CPU against the ends' (client and app) for the same bytes: what the proxy hop
    // costs when the CPU is the limit (chainCpuRatio: the whole chain's CPU over the direct one's).
    const daemonCpu = median(proxied.map((r) => r.cpuMsPerMiB.daemon));
    const relayCpu = median(relayed.map((r) => r.cpuMsPerMiB.relay));
    const daemonUserCpu = median(proxied.map((r) => r.cpuMsPerMiB.hopUser));
    const relayUserCpu = median(relayed.map((r) => r.cpuMsPerMiB.hopUser));
    const endsCpu = median(mine.filter((r) => r.target === "direct").map((r) => r.cpuMsPerMiB.client + r.cpuMsPerMiB.app));
    const chainCpuRatio = (endsCpu + daemonCpu) / endsCpu;
    return {
      direction,
      directMs: direct,
      proxyMs: proxy,
      ratio,
      ratioRange: range(perRound("proxy")),
      ratioMet: ratio <= options.goalRatio,
      relayMs,
      relayRatio,
      relayRatioRange: range(perRound("relay")),
      proxyOverRelay: proxy / relayMs,
      idleMB,
      peakMB,
      riseMB,
      riseMet: riseMB <= options.goalRiseMB,
      daemonCpuMsPerMiB: daemonCpu,
      daemonUserCpuMsPerMiB: daemonUserCpu,
      relayCpuMsPerMiB: relayCpu,
      relayUserCpuMsPerMiB: relayUserCpu,
      endsCpuMsPerMiB: endsCpu,
      chainCpuRatio,
    };
  });
}

function printSummary(summary, options) {
  printTable(
    [
      "direction",
      "direct ms",
      "proxy ms",
      "proxy / direct",
      `≤ ${options.goalRatio}x`,
      "relay ms",
      "relay / direct",
      "proxy / relay",
      "daemon RSS idle",
      "peak",
      "rise",
      `≤ ${options.goalRiseMB} MB`,
      "CPU ms/MiB daemon (user)",
      "relay (user)",
      "client+app",
      "chain CPU",
    ],
    summary.map((s) => [
      s.direction,
      fmt(s.directMs, 0),
      fmt(s.proxyMs, 0),
      `${fmt(s.ratio, 2)}x (${fmt(s.ratioRange[0], 2)}-${fmt(s.ratioRange[1], 2)})`,
      s.ratioMet ? "yes" : "NO",
      fmt(s.relayMs, 0),
      `${fmt(s.relayRatio, 2)}x (${fmt(s.relayRatioRange[0], 2)}-${fmt(s.relayRatioRange[1], 2)})`,
      `${fmt(s.proxyOverRelay, 2)}x`,
      `${fmt(s.idleMB, 0)} MB`,
      `${fmt(s.peakMB, 0)} MB`,
      `${fmt(s.riseMB, 0)} MB`,
      s.riseMet ? "yes" : "NO",
      `${fmt(s.daemonCpuMsPerMiB, 2)} (${fmt(s.daemonUserCpuMsPerMiB, 2)})`,
      `${fmt(s.relayCpuMsPerMiB, 2)} (${fmt(s.relayUserCpuMsPerMiB, 2)})`,
      fmt(s.endsCpuMsPerMiB, 2),
      `${fmt(s.chainCpuRatio, 2)}x`,
    ]),
  );
}

// --- CLI ---

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const argv = process.argv.slice(2);
  if (argv[0] === "--client") runClient(argv[1], Number(argv[2]), Number(argv[3]));
  else if (argv[0] === "--relay") runRelay(Number(argv[1]));
  else
    runStreamsBench(parseNumberFlags(argv, { "--mb": "mb", "--rounds": "rounds", "--warmup-mb": "warmupMb", "--timeout": "timeoutSec" })).catch((err) => {
      console.error(err);
      process.exitCode = 1;
    });
}
