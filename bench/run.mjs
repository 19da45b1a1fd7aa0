// `npm run bench` (after `npm run build`): every benchmark in bench/, one after the other so
// they never compete for the CPU, then the issue-17 summary (now / goal / ratio against the
// baseline of the same run). Prints each table and writes the combined JSON, with the summary
// under `summary`, to bench/results/bench-<ISO timestamp>.json and bench/results/latest.json.
//
//   node bench/run.mjs [--quick] [--only a,b] [--skip-<name>]... [--soak]
//
// --quick: only the benchmarks the summary needs, with few rounds and short loads (about two
// minutes; numbers are indicative only); written to bench/results/quick-<timestamp>.json,
// never to latest.json.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { buildSummary, printSummary } from "./summary.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const resultsDir = path.join(here, "results");
const argv = process.argv.slice(2);
const args = new Set(argv);
const quick = args.has("--quick");
const onlyIndex = argv.indexOf("--only");
const only = onlyIndex >= 0 ? new Set((argv[onlyIndex + 1] ?? "").split(",").filter(Boolean)) : null;
const startedAt = new Date();
const combined = {
  meta: {
    date: startedAt.toISOString(),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? null,
    totalMemMB: Math.round(os.totalmem() / 2 ** 20),
    quick,
    // Other load on the machine skews every number (the ratios less so): worth a look.
    loadAvgAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  },
  errors: [],
};

// Each benchmark: its module, its export, the key it fills in the combined result, its options
// (and those of --quick). `summary`: the summary needs it, so --quick runs it. Optional ones are
// skipped (with a note) when their module is missing; soak is opt-in (--soak).
const benches = [
  { key: "cli", file: "cli-start.mjs", fn: "runCliStartBench", options: { print: true }, quickOptions: { runs: 12, warmup: 2 }, summary: true },
  { key: "deploy", file: "deploy-latency.mjs", fn: "runDeployLatencyBench", options: { print: true }, quickOptions: { deploys: 3 }, summary: true },
  { key: "rss", file: "daemon-rss.mjs", fn: "runDaemonRssBench", options: { print: true }, quickOptions: { durationSec: 4 }, summary: true },
  { key: "proxy", file: "proxy.mjs", fn: "runProxyBench", options: { resultsDir: null, print: true }, quickOptions: { rounds: 1, durationSec: 3 }, summary: true },
  { key: "streams", file: "streams.mjs", fn: "runStreamsBench", options: { resultsDir: null, print: true }, quickOptions: { mb: 100, rounds: 1, warmupMb: 16 }, summary: true },
  { key: "longLived", file: "long-lived.mjs", fn: "runLongLivedBench", options: { resultsDir: null, print: true }, quickOptions: { deploys: 1, settleMs: 1000, scenarios: ["announce/announce"] }, summary: true },
  { key: "nginx", file: "nginx.mjs", fn: "runNginxBench", options: { resultsDir: null, print: true } },
  { key: "websocket", file: "websocket.mjs", fn: "runWebSocketBench", options: { resultsDir: null, print: true } },
  { key: "daemon", file: "daemon.mjs", fn: "runDaemonBench", options: { resultsDir: null, print: true } },
  { key: "daemonCrashHolder", file: "daemon-crash.mjs", fn: "runDaemonCrashBench", options: { print: true, holder: true }, quickOptions: { beforeSec: 1, afterSec: 1 } },
  { key: "daemonCrash", file: "daemon-crash.mjs", fn: "runDaemonCrashBench", options: { print: true }, quickOptions: { beforeSec: 1, afterSec: 1 } },
  { key: "daemonUpgrade", file: "daemon-upgrade.mjs", fn: "runDaemonUpgradeBench", options: { print: true }, quickOptions: { beforeSec: 1, afterSec: 1 } },
  { key: "rollout", file: "rollout.mjs", fn: "runRolloutBench", options: { print: true }, quickOptions: { rounds: 1, durationSec: 2, canaryRequests: 400 }, summary: true },
  { key: "memory", file: "memory.mjs", fn: "runMemoryBench", options: {} },
  { key: "replicas", file: "replicas.mjs", fn: "runReplicasBench", options: { print: true } },
  { key: "pm2", file: "pm2.mjs", fn: "runPm2Bench", options: { print: true }, quickOptions: { reloads: 1, gapMs: 1000 }, summary: true },
  { key: "soak", file: "soak.mjs", fn: "runSoak", options: { durationSec: 60, resultsDir: null, print: true }, optIn: "--soak" },
];
const unknown = only ? [...only].filter((key) => !benches.some((b) => b.key === key)) : [];
if (unknown.length) {
  console.error(`--only: unknown benchmark ${unknown.join(", ")}; the names are ${benches.map((b) => b.key).join(", ")}`);
  process.exit(2);
}
if (combined.meta.loadAvgAtStart[0] > 0.5 * combined.meta.cpus) {
  console.error(`warning: load average ${combined.meta.loadAvgAtStart[0]} on ${combined.meta.cpus} CPUs before the run; something else is busy, so treat the numbers as indicative`);
}

for (const bench of benches) {
  const file = path.join(here, bench.file);
  if (only && !only.has(bench.key)) {
    combined[bench.key] = { skipped: `not in --only ${[...only].join(",")}` };
    continue;
  }
  if (bench.optIn && !args.has(bench.optIn)) {
    combined[bench.key] = { skipped: `opt-in: pass ${bench.optIn}` };
    continue;
  }
  if (quick && !bench.summary && !only) {
    combined[bench.key] = { skipped: "--quick runs only the benchmarks of the summary" };
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
    combined[bench.key] = await mod[bench.fn]({ ...bench.options, ...(quick ? bench.quickOptions : {}) });
    if (combined[bench.key]?.verdict && combined[bench.key].verdict.ok === false) {
      combined.errors.push({ bench: bench.key, message: "verdict not ok" });
    }
  } catch (error) {
    console.error(`${bench.key} benchmark failed: ${error.stack ?? error}`);
    combined[bench.key] = { failed: String(error.message ?? error) };
    combined.errors.push({ bench: bench.key, message: String(error.message ?? error) });
  }
}

combined.summary = buildSummary(combined);
printSummary(combined.summary);
combined.meta.durationSec = Math.round((Date.now() - startedAt.getTime()) / 100) / 10;
mkdirSync(resultsDir, { recursive: true });
const json = `${JSON.stringify(combined, null, 2)}\n`;
const file = path.join(resultsDir, `${quick ? "quick" : "bench"}-${combined.meta.date.replace(/[:.]/g, "-")}.json`);
writeFileSync(file, json);
const written = [file];
// latest.json is the record of a full run: a quick (or partial) one never replaces it.
if (!quick && !only) {
  writeFileSync(path.join(resultsDir, "latest.json"), json);
  written.push(path.join(resultsDir, "latest.json"));
}
console.log(`written ${written.map((f) => path.relative(process.cwd(), f)).join(" and ")} (${combined.meta.durationSec} s)`);
process.exitCode = combined.errors.length ? 1 : 0;
