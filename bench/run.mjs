// `npm run bench` (after `npm run build`): every benchmark in bench/, one after the other so
// they never compete for the CPU (proxy vs direct vs bare undici, nginx, WebSocket, daemon
// switch latency and RSS, memory sampling; soak with --soak). Prints each table and writes the
// combined JSON to bench/results/bench-<ISO timestamp>.json and bench/results/latest.json.
//
//   node bench/run.mjs [--skip-<name>]... [--soak]
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const resultsDir = path.join(here, "results");
const args = new Set(process.argv.slice(2));
const startedAt = new Date();
const combined = {
  meta: { date: startedAt.toISOString(), node: process.version, platform: `${os.platform()} ${os.release()}`, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? null, totalMemMB: Math.round(os.totalmem() / 2 ** 20) },
  errors: [],
};

// Each benchmark: its module, its export, and the key it fills in the combined result.
// Optional ones are skipped (with a note) when their module is missing; soak is opt-in (--soak).
const benches = [
  { key: "proxy", file: "proxy.mjs", fn: "runProxyBench", options: { resultsDir: null, print: true } },
  { key: "nginx", file: "nginx.mjs", fn: "runNginxBench", options: { resultsDir: null, print: true } },
  { key: "websocket", file: "websocket.mjs", fn: "runWebSocketBench", options: { resultsDir: null, print: true } },
  { key: "daemon", file: "daemon.mjs", fn: "runDaemonBench", options: { resultsDir: null, print: true } },
  { key: "memory", file: "memory.mjs", fn: "runMemoryBench", options: {} },
  { key: "replicas", file: "replicas.mjs", fn: "runReplicasBench", options: { print: true } },
  { key: "soak", file: "soak.mjs", fn: "runSoak", options: { durationSec: 60, resultsDir: null, print: true }, optIn: "--soak" },
];

for (const bench of benches) {
  const file = path.join(here, bench.file);
  if (bench.optIn && !args.has(bench.optIn)) {
    combined[bench.key] = { skipped: `opt-in: pass ${bench.optIn}` };
    continue;
  }
  if (args.has(`--skip-${bench.key}`)) {
    combined[bench.key] = { skipped: `--skip-${bench.key}` };
    continue;
  }
  if (!existsSync(file)) {
    console.log(`bench/${bench.file} not found: skipping the ${bench.key} benchmark`);
    combined[bench.key] = { skipped: `bench/${bench.file} not found` };
    continue;
  }
  console.log(`\n== ${bench.key} benchmark (bench/${bench.file}) ==`);
  try {
    const mod = await import(pathToFileURL(file).href);
    if (typeof mod[bench.fn] !== "function") throw new Error(`bench/${bench.file} does not export ${bench.fn}`);
    combined[bench.key] = await mod[bench.fn](bench.options);
    if (combined[bench.key]?.verdict && combined[bench.key].verdict.ok === false) {
      combined.errors.push({ bench: bench.key, message: "verdict not ok" });
    }
  } catch (error) {
    console.error(`${bench.key} benchmark failed: ${error.stack ?? error}`);
    combined[bench.key] = { failed: String(error.message ?? error) };
    combined.errors.push({ bench: bench.key, message: String(error.message ?? error) });
  }
}

combined.meta.durationSec = Math.round((Date.now() - startedAt.getTime()) / 100) / 10;
mkdirSync(resultsDir, { recursive: true });
const json = `${JSON.stringify(combined, null, 2)}\n`;
const file = path.join(resultsDir, `bench-${combined.meta.date.replace(/[:.]/g, "-")}.json`);
writeFileSync(file, json);
writeFileSync(path.join(resultsDir, "latest.json"), json);
console.log(`written ${path.relative(process.cwd(), file)} and ${path.relative(process.cwd(), path.join(resultsDir, "latest.json"))} (${combined.meta.durationSec} s)`);
process.exitCode = combined.errors.length ? 1 : 0;
