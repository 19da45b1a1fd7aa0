// Throughput with 2 web replicas vs 1, through a real daemon, in one run: for a CPU-bound app
// (where a second worker can use the second core) and for a trivial one (where the ratio shows
// the cost of balancing over two backends instead of one). Replicas change in place through
// `apply --replicas web=N`, so both counts are measured against the same release, alternating.
import { execFileSync, spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { freePort } from "./lib.mjs";
import { fmt, pickLoadGenerator } from "./proxy.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CLI = path.join(root, "dist/cli/main.js");

const APP = `import http from "node:http";
import { createHash } from "node:crypto";
const work = Number(process.env.WORK ?? 0);
http.createServer((req, res) => {
  if (req.url === "/ping") return res.end("pong");
  let h = "x";
  for (let i = 0; i < work; i++) h = createHash("sha256").update(h).digest("hex");
  res.end(h.slice(0, 16) + "\\n");
}).listen(Number(process.env.ROLLBRIDGE_PORT), "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));
`;

export async function runReplicasBench({ durationSec = 5, rounds = 2, connections = 50, heavyWork = 400, print = true } = {}) {
  const load = pickLoadGenerator();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "rb-replicas-"));
  const release = path.join(dir, "releases", "r1");
  await fs.mkdir(release, { recursive: true });
  await fs.writeFile(path.join(release, "app.mjs"), APP);
  const proxyPort = await freePort();
  const from = 10000 + Math.floor(Math.random() * 1000) * 10; // below the ephemeral range, as in bench-daemon.mjs
  const config = path.join(dir, "rollbridge.yaml");
  await fs.writeFile(
    config,
    `application: bench-replicas
control: {path: ${path.join(dir, "s.sock")}}
proxy: {port: ${proxyPort}, drainTimeoutMs: 2000}
processes:
  - id: web
    policy: proxied
    command: node app.mjs
    port: {from: ${from}, to: ${from + 9}}
    health: {path: /ping, intervalMs: 50}
`,
  );
  const cli = (...args) => execFileSync(process.execPath, [CLI, ...args, "--config", config], { encoding: "utf8", timeout: 60_000, stdio: ["ignore", "pipe", "pipe"] });
  const daemon = spawn(process.execPath, ["--max-semi-space-size=4", CLI, "daemon", "--config", config], { stdio: "ignore" });
  const result = { meta: { date: new Date().toISOString(), durationSec, rounds, connections, heavyWork, loadGenerator: load.name }, apps: {} };
  try {
    await waitFor(() => {
      try {
        cli("status", "--json");
        return true;
      } catch {
        return false;
      }
    });
    for (const [name, work] of [
      ["trivial", 0],
      ["cpu-bound", heavyWork],
    ]) {
      const desired = path.join(dir, `${name}.yaml`);
      await fs.writeFile(desired, `release: {path: ${release}, id: ${name}}\nenv: {WORK: "${work}"}\nreplicas: {web: 1}\n`);
      cli("apply", "-f", desired, "--wait");
      const samples = { 1: [], 2: [] };
      for (let round = 0; round < rounds; round++) {
        for (const n of round % 2 === 0 ? [1, 2] : [2, 1]) {
          cli("apply", "--replicas", `web=${n}`, "--wait");
          const m = load.run(proxyPort, { durationSec, connections, threads: 2 }, (c, a) => [c, a]);
          if (print) console.log(`${name.padEnd(9)} round ${round + 1} replicas ${n}: ${Math.round(m.rps)} req/s  p99 ${fmt(m.p99Ms, 2)} ms  errors ${m.errors}`);
          samples[n].push(m);
        }
      }
      const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      const one = { rps: median(samples[1].map((m) => m.rps)), p99Ms: median(samples[1].map((m) => m.p99Ms)) };
      const two = { rps: median(samples[2].map((m) => m.rps)), p99Ms: median(samples[2].map((m) => m.p99Ms)) };
      result.apps[name] = { replicas1: one, replicas2: two, ratio: two.rps / one.rps, errors: [...samples[1], ...samples[2]].reduce((n, m) => n + m.errors, 0) };
    }
  } finally {
    try {
      cli("shutdown");
    } catch {
      daemon.kill("SIGKILL");
    }
    await fs.rm(dir, { recursive: true, force: true });
  }
  if (print) {
    console.log(`\nweb replicas through the daemon (${os.cpus().length} cores, ${connections} connections, median of ${rounds} rounds)`);
    console.log("| app | 1 replica req/s | 2 replicas req/s | 2 vs 1 | p99 1 → 2 ms | errors |");
    console.log("|-----|----------------:|-----------------:|-------:|-------------:|-------:|");
    for (const [name, r] of Object.entries(result.apps)) {
      console.log(`| ${name} | ${Math.round(r.replicas1.rps)} | ${Math.round(r.replicas2.rps)} | ${fmt(r.ratio, 2)}x | ${fmt(r.replicas1.p99Ms, 2)} → ${fmt(r.replicas2.p99Ms, 2)} | ${r.errors} |`);
    }
  }
  return result;
}

async function waitFor(check, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the daemon did not answer");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  await runReplicasBench();
}
