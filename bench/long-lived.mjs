// Long-lived connections across deploys (issue 18): real socket.io-client and ws clients keep
// talking to a Socket.IO app (bench/long-lived-app.mjs, proxy.affinity {query: sid}, the drain
// notice used as docs/long-lived-connections.md recommends) through Rollbridge's proxy, and
// through nginx in front of it, while the app is deployed 3 times (apply --wait-drained).
//
//   - 20 Socket.IO polling-only clients and 20 WebSocket-transport clients, each emitting every
//     200 ms with an acknowledgement: broken sessions (a disconnect the app did not ask for:
//     transport error/close, ping timeout; goal 0), lost acks (an emit whose ack never came, or
//     failed; goal 0), the longest time a client was without a connected session;
//   - 10 raw WebSocket clients (the app ignores the drain for them): the close codes they get at
//     the drain deadline (goal: 1001/1012 only, never 1006).
//
// Scenarios (app on the drain notice / client):
//   disconnect/plain     io.disconnectSockets(true); the client reconnects on "io server disconnect"
//   disconnect/retries   the same, the client with {ackTimeout, retries} (Socket.IO resends an
//                        emit that was not acknowledged)
//   announce/announce    the app emits "server-draining"; the client stops emitting, waits for its
//                        acks, then reconnects itself (the app disconnects stragglers after 2 s)
//
//   npm run build && node bench/long-lived.mjs [--deploys 3] [--drain 5000] [--settle 3000]
//
// Every server listens on 127.0.0.1; everything started is stopped by pid; the run is bounded.
// Writes bench/results/long-lived-<timestamp>.json when run directly.
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { io as connect } from "socket.io-client";
import { WebSocket } from "ws";
import { startBenchDaemon } from "./bench-daemon.mjs";
import { bounded, parseNumberFlags, printTable, sleep, writeResult } from "./lib.mjs";
import { findNginx, NGINX_MISSING, nginxVersion, startNginx } from "./nginx-server.mjs";
import { ChildTracker } from "./proc.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const APP = path.join(here, "long-lived-app.mjs");

export const SCENARIOS = [
  { name: "disconnect/plain", app: "disconnect", client: "plain" },
  { name: "disconnect/retries", app: "disconnect", client: "retries" },
  { name: "announce/announce", app: "announce", client: "announce" },
];

export const defaultLongLivedOptions = {
  deploys: 3,
  pollingClients: 20,
  wsClients: 20,
  rawClients: 10,
  emitEveryMs: 200,
  /** An emit whose ack has not come after this long is lost. */
  ackTimeoutMs: 5000,
  drainTimeoutMs: 5000,
  drainCloseCode: 1001,
  /** Steady traffic before the first deploy, between deploys and after the last. */
  settleMs: 3000,
  fronts: ["proxy", "nginx"],
  scenarios: SCENARIOS.map((s) => s.name),
  timeoutSec: 900,
  resultsDir: path.join(here, "results"),
  print: true,
};

/** Resolves with {meta, runs: [{front, scenario, polling, websocket, raw, deploys}], nginx}. */
export async function runLongLivedBench(opts = {}) {
  const options = { ...defaultLongLivedOptions, ...opts };
  const tracker = new ChildTracker();
  return bounded("long-lived bench", options.timeoutSec, tracker, () => body(options, tracker));
}

async function body(options, tracker) {
  const log = (text) => options.print && process.stderr.write(`[long-lived bench] ${text}\n`);
  const nginx = options.fronts.includes("nginx") ? findNginx() : null;
  const fronts = options.fronts.filter((f) => f !== "nginx" || nginx);
  const runs = [];
  const wrapperDir = tracker.tempDir(await fs.mkdtemp(path.join(os.tmpdir(), "rollbridge-long-lived-")));
  // The release's server.mjs imports the app from the repository, so socket.io and ws resolve.
  const wrapper = path.join(wrapperDir, "server.mjs");
  await fs.writeFile(wrapper, `import ${JSON.stringify(pathToFileURL(APP).href)};\n`);
  try {
    for (const front of fronts) {
      for (const scenario of SCENARIOS.filter((s) => options.scenarios.includes(s.name))) {
        log(`${front} ${scenario.name}: starting`);
        runs.push(await runOne(options, tracker, { front, scenario, nginx, wrapper, log }));
      }
    }
  } finally {
    await fs.rm(wrapperDir, { recursive: true, force: true });
  }
  const result = {
    meta: {
      date: new Date().toISOString(),
      node: process.version,
      cpus: os.cpus().length,
      loadAvgAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
      deploys: options.deploys,
      clients: { polling: options.pollingClients, websocket: options.wsClients, raw: options.rawClients },
      emitEveryMs: options.emitEveryMs,
      ackTimeoutMs: options.ackTimeoutMs,
      drainTimeoutMs: options.drainTimeoutMs,
      drainCloseCode: options.drainCloseCode,
      affinity: "{query: sid}",
    },
    nginx: !options.fronts.includes("nginx") ? { skipped: "not in fronts" } : nginx ? { version: nginxVersion(nginx) } : { skipped: NGINX_MISSING },
    runs,
  };
  result.verdict = verdict(runs);
  if (options.print) printResult(result);
  writeResult(result, options.resultsDir, "long-lived", result.meta.date, options.print);
  return result;
}

async function runOne(options, tracker, { front, scenario, nginx, wrapper, log }) {
  const d = await startBenchDaemon({
    tracker,
    entry: wrapper,
    env: { DRAIN_MODE: scenario.app },
    health: { path: "/ping", intervalMs: 100 },
    drainTimeoutMs: options.drainTimeoutMs,
    gracefulStopMs: 3000,
    proxyYaml: `affinity: {query: sid}, drainCloseCode: ${options.drainCloseCode}`,
  });
  let front_ = null;
  const clients = [];
  try {
    await deploy(d, "v1");
    let port = d.proxyPort;
    if (front === "nginx") {
      front_ = await startNginx({ nginx, appPort: d.proxyPort, spawnChild: (c, a, o) => tracker.spawn(c, a, o), websocket: true });
      port = front_.port;
    }
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < options.pollingClients; i++) clients.push(sioClient(url, "polling", scenario.client, options));
    for (let i = 0; i < options.wsClients; i++) clients.push(sioClient(url, "websocket", scenario.client, options));
    for (let i = 0; i < options.rawClients; i++) clients.push(rawClient(`ws://127.0.0.1:${port}/raw`, options));
    await Promise.all(clients.map((c) => c.ready));
    await sleep(options.settleMs);
    const deploys = [];
    for (let i = 0; i < options.deploys; i++) {
      const release = i % 2 === 0 ? "v2" : "v1";
      const t0 = Date.now();
      await deploy(d, release, true);
      deploys.push({ release, applyWaitDrainedMs: Date.now() - t0 });
      log(`${front} ${scenario.name}: deploy ${i + 1} → ${release} drained in ${Date.now() - t0} ms`);
      await sleep(options.settleMs);
    }
    for (const c of clients) c.stopEmitting();
    // The last acks come, or time out.
    const settleBy = Date.now() + options.ackTimeoutMs + 2000;
    while (Date.now() < settleBy && clients.some((c) => c.pending() > 0)) await sleep(50);
    const events = d.events.filter((e) => e.type === "drain-started" || e.type === "drain-timeout" || e.type === "release-stopped").map((e) => ({ type: e.type, at: e.at, data: e.data }));
    return {
      front,
      scenario: scenario.name,
      polling: aggregate(clients.filter((c) => c.kind === "polling")),
      websocket: aggregate(clients.filter((c) => c.kind === "websocket")),
      raw: aggregateRaw(clients.filter((c) => c.kind === "raw")),
      deploys,
      drainEvents: events,
    };
  } finally {
    for (const c of clients) c.close();
    await front_?.stop();
    await d.stop();
  }
}

async function deploy(d, release, waitDrained = false) {
  const r = await d.cli(["apply", "--release-path", path.join(d.dir, "releases", release), "--wait", ...(waitDrained ? ["--wait-drained"] : [])], 120_000);
  if (r.code !== 0) throw new Error(`apply ${release} failed (exit ${r.code}):\n${r.stderr}`);
}

/** A Socket.IO client emitting "ping" every emitEveryMs with an ack; it counts what happens. */
function sioClient(url, transport, mode, options) {
  const socket = connect(url, {
    forceNew: true,
    transports: [transport],
    upgrade: false,
    reconnectionDelay: 100,
    reconnectionDelayMax: 1000,
    ...(mode === "retries" ? { ackTimeout: 2000, retries: 3 } : {}),
  });
  const s = { kind: transport, sent: 0, acked: 0, lost: 0, lostReasons: {}, disconnects: {}, connectErrors: 0, maxOutageMs: 0, releases: new Set() };
  const pending = new Set();
  let downSince = null;
  let draining = false;
  let held = [];
  let n = 0;
  let emitting = true;
  let resolveReady;
  const ready = new Promise((resolve) => (resolveReady = resolve));
  const emit = (k) => {
    s.sent++;
    pending.add(k);
    const done = (err, res) => {
      pending.delete(k);
      if (err) {
        s.lost++;
        const why = String(err.message ?? err);
        s.lostReasons[why] = (s.lostReasons[why] ?? 0) + 1;
      } else {
        s.acked++;
        if (res?.release) s.releases.add(res.release);
      }
      maybeMove();
    };
    if (mode === "retries") socket.emit("ping", k, done);
    else socket.timeout(options.ackTimeoutMs).emit("ping", k, done);
  };
  const maybeMove = () => {
    if (!draining || pending.size > 0) return;
    draining = false;
    socket.disconnect().connect();
    // Emits while disconnected are buffered by the client and sent once it is connected again.
    for (const k of held.splice(0)) emit(k);
  };
  socket.on("connect", () => {
    if (downSince !== null) s.maxOutageMs = Math.max(s.maxOutageMs, Date.now() - downSince);
    downSince = null;
    resolveReady();
  });
  socket.on("disconnect", (reason) => {
    s.disconnects[reason] = (s.disconnects[reason] ?? 0) + 1;
    if (downSince === null) downSince = Date.now();
    if (reason === "io server disconnect") socket.connect();
  });
  socket.on("connect_error", () => {
    s.connectErrors++;
    if (downSince === null) downSince = Date.now();
  });
  if (mode === "announce") {
    socket.on("server-draining", () => {
      draining = true;
      maybeMove();
    });
  }
  const timer = setInterval(() => {
    if (!emitting) return;
    const k = ++n;
    if (draining) held.push(k);
    else emit(k);
  }, options.emitEveryMs);
  return {
    kind: transport,
    ready,
    stats: () => ({ ...s, releases: s.releases.size, pendingAtEnd: pending.size + held.length }),
    pending: () => pending.size + held.length,
    stopEmitting() {
      emitting = false;
      if (draining) {
        draining = false;
        for (const k of held.splice(0)) emit(k);
      }
    },
    close() {
      clearInterval(timer);
      socket.disconnect();
    },
  };
}

/** A raw WebSocket client sending a message every emitEveryMs; counts close codes, reconnects. */
function rawClient(url, options) {
  const s = { kind: "raw", closeCodes: {}, errors: 0, echoes: 0, maxOutageMs: 0 };
  let ws = null;
  let closed = false;
  let downSince = null;
  let resolveReady;
  const ready = new Promise((resolve) => (resolveReady = resolve));
  const open = () => {
    if (closed) return;
    ws = new WebSocket(url, { perMessageDeflate: false });
    ws.on("open", () => {
      if (downSince !== null) s.maxOutageMs = Math.max(s.maxOutageMs, Date.now() - downSince);
      downSince = null;
      resolveReady();
    });
    ws.on("message", () => s.echoes++);
    ws.on("error", () => s.errors++);
    ws.on("close", (code) => {
      if (closed) return;
      s.closeCodes[code] = (s.closeCodes[code] ?? 0) + 1;
      if (downSince === null) downSince = Date.now();
      setTimeout(open, 100);
    });
  };
  open();
  const timer = setInterval(() => ws?.readyState === WebSocket.OPEN && ws.send("x"), options.emitEveryMs);
  return {
    kind: "raw",
    ready,
    stats: () => s,
    pending: () => 0,
    stopEmitting() {},
    close() {
      closed = true;
      clearInterval(timer);
      ws?.terminate();
    },
  };
}

function aggregate(clients) {
  const all = clients.map((c) => c.stats());
  const sum = (k) => all.reduce((a, x) => a + x[k], 0);
  const merge = (k) =>
    all.reduce((acc, x) => {
      for (const [why, count] of Object.entries(x[k])) acc[why] = (acc[why] ?? 0) + count;
      return acc;
    }, {});
  const disconnects = merge("disconnects");
  const broken = Object.entries(disconnects)
    .filter(([reason]) => reason !== "io server disconnect" && reason !== "io client disconnect")
    .reduce((a, [, c]) => a + c, 0);
  const outages = all.map((x) => x.maxOutageMs).sort((a, b) => a - b);
  return {
    clients: all.length,
    sent: sum("sent"),
    acked: sum("acked"),
    lostAcks: sum("lost"),
    lostReasons: merge("lostReasons"),
    pendingAtEnd: sum("pendingAtEnd"),
    brokenSessions: broken,
    disconnects,
    connectErrors: sum("connectErrors"),
    maxOutageMs: outages.at(-1) ?? null,
    medianMaxOutageMs: outages.length ? outages[Math.floor(outages.length / 2)] : null,
  };
}

function aggregateRaw(clients) {
  const all = clients.map((c) => c.stats());
  const closeCodes = {};
  for (const x of all) for (const [code, count] of Object.entries(x.closeCodes)) closeCodes[code] = (closeCodes[code] ?? 0) + count;
  return { clients: all.length, closeCodes, errors: all.reduce((a, x) => a + x.errors, 0), maxOutageMs: Math.max(0, ...all.map((x) => x.maxOutageMs)) };
}

function verdict(runs) {
  const problems = [];
  for (const r of runs) {
    for (const kind of ["polling", "websocket"]) {
      if (r[kind].brokenSessions) problems.push(`${r.front} ${r.scenario} ${kind}: ${r[kind].brokenSessions} broken sessions`);
      if (r[kind].lostAcks || r[kind].pendingAtEnd) problems.push(`${r.front} ${r.scenario} ${kind}: ${r[kind].lostAcks} lost acks, ${r[kind].pendingAtEnd} unanswered at the end`);
    }
    const bad = Object.keys(r.raw.closeCodes).filter((c) => c !== "1001" && c !== "1012");
    if (bad.length) problems.push(`${r.front} ${r.scenario} raw: close codes ${bad.join(", ")}`);
  }
  return { ok: problems.length === 0, problems };
}

function printResult(result) {
  const rows = result.runs.flatMap((r) =>
    ["polling", "websocket"].map((kind) => [
      `${r.front} ${r.scenario} ${kind}`,
      String(r[kind].sent),
      String(r[kind].lostAcks + r[kind].pendingAtEnd),
      String(r[kind].brokenSessions),
      String(r[kind].maxOutageMs ?? "-"),
      String(r[kind].medianMaxOutageMs ?? "-"),
    ]),
  );
  printTable(["run", "emits", "lost acks", "broken sessions", "max outage ms", "median per-client max outage ms"], rows);
  printTable(
    ["run", "raw WebSocket close codes"],
    result.runs.map((r) => [
      `${r.front} ${r.scenario}`,
      Object.entries(r.raw.closeCodes)
        .map(([c, n]) => `${c}×${n}`)
        .join(" ") || "none",
    ]),
  );
  if (result.nginx.skipped) console.log(`nginx half skipped: ${result.nginx.skipped}`);
  console.log(result.verdict.ok ? "verdict: goals met" : `verdict: ${result.verdict.problems.join("; ")}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const argv = process.argv.slice(2);
  const opts = parseNumberFlags(argv, { "--deploys": "deploys", "--drain": "drainTimeoutMs", "--settle": "settleMs" });
  const i = argv.indexOf("--scenarios");
  if (i >= 0) opts.scenarios = argv[i + 1].split(",");
  const f = argv.indexOf("--fronts");
  if (f >= 0) opts.fronts = argv[f + 1].split(",");
  runLongLivedBench(opts).then(
    (r) => (process.exitCode = r.verdict.ok ? 0 : 1),
    (error) => {
      console.error(error.stack ?? error);
      process.exitCode = 1;
    },
  );
}
