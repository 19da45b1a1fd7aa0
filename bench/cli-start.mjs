// CLI start-up: the wall time of `rollbridge status --json` against a running daemon and of
// `rollbridge --version`, each as a ratio to a bare Node start (`node -e 0`) measured in the
// same run, the three commands alternating (the order rotating every run), many runs each.
//
//   npm run build && node bench/cli-start.mjs [--runs 40] [--warmup 3] [--timeout 240]
//
// The daemon is a plain `rollbridge daemon` in a temp dir with one deployed release, so
// `status` has a process to report; `status --json` runs in that directory and finds its
// rollbridge.yaml there, as in a deploy script. Writes bench/results/cli-<timestamp>.json
// when run directly.
import { spawnSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { startBenchDaemon } from "./bench-daemon.mjs";
import { bounded, fmt, median, parseNumberFlags, percentile, printTable, stats, writeResult } from "./lib.mjs";
import { ChildTracker, CLI } from "./proc.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));

export const defaultCliStartOptions = {
  /** Timed runs per command. */
  runs: 40,
  /** Untimed runs per command first (page cache, compile cache). */
  warmup: 3,
  /** The goal: each command within this many times a bare Node start. */
  goalRatio: 2,
  timeoutSec: 240,
  resultsDir: null,
  print: true,
};

/** Resolves with {meta, commands: {name: {argv, ms: stats, samplesMs}}, ratios}. */
export async function runCliStartBench(opts = {}) {
  const options = { ...defaultCliStartOptions, ...opts };
  const tracker = new ChildTracker();
  return bounded("cli start bench", options.timeoutSec, tracker, () => body(options, tracker));
}

async function body(options, tracker) {
  // The timed loop is synchronous, so the bound's timer cannot fire inside it: check it here.
  const deadline = Date.now() + options.timeoutSec * 1000;
  const loadAvgAtStart = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const d = await startBenchDaemon({ tracker });
  try {
    await d.deploy("v1");
    const commands = [
      { name: "node -e 0", argv: ["-e", "0"] },
      { name: "rollbridge --version", argv: [CLI, "--version"] },
      { name: "rollbridge status --json", argv: [CLI, "status", "--json"], check: (out) => JSON.parse(out).daemonPid === d.daemonPid },
    ];
    // Each command once, checked: a failing command would time its error path.
    for (const c of commands) {
      const r = run(c, d.dir);
      if (r.status !== 0 || (c.check && !c.check(r.stdout))) throw new Error(`${c.name} failed (exit ${r.status}): ${r.stderr}${r.stdout.slice(0, 500)}`);
    }
    for (let i = 0; i < options.warmup; i++) for (const c of commands) run(c, d.dir);
    const samples = commands.map(() => []);
    for (let i = 0; i < options.runs; i++) {
      if (Date.now() > deadline) throw new Error(`cli start bench exceeded its ${options.timeoutSec} s bound after ${i} runs`);
      for (let k = 0; k < commands.length; k++) {
        const index = (i + k) % commands.length;
        const r = run(commands[index], d.dir);
        if (r.status !== 0) throw new Error(`${commands[index].name} failed on run ${i + 1} (exit ${r.status}): ${r.stderr}`);
        samples[index].push(r.ms);
      }
    }
    const baseline = samples[0];
    const result = {
      meta: { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, runs: options.runs, warmup: options.warmup, goalRatio: options.goalRatio, loadAvgAtStart },
      commands: Object.fromEntries(commands.map((c, k) => [c.name, { argv: ["node", ...c.argv.map((a) => (a === CLI ? "dist/cli/main.js" : a))], ms: stats(samples[k]), samplesMs: samples[k].map((x) => Math.round(x * 10) / 10) }])),
      ratios: Object.fromEntries(commands.slice(1).map((c, k) => [c.name, { median: median(samples[k + 1]) / median(baseline), p90: percentile(samples[k + 1], 90) / percentile(baseline, 90) }])),
    };
    if (options.print) print(result);
    writeResult(result, options.resultsDir, "cli", result.meta.date, options.print);
    return result;
  } finally {
    await d.stop();
  }
}

// Synchronous on purpose: nothing else of ours runs while a command is timed (the daemon writes
// to a file, not to a pipe we would have to drain).
function run(command, cwd) {
  const started = process.hrtime.bigint();
  const r = spawnSync(process.execPath, command.argv, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 });
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "", ms: Number(process.hrtime.bigint() - started) / 1e6 };
}

function print(result) {
  const base = result.commands["node -e 0"].ms;
  const rows = Object.entries(result.commands).map(([name, c]) => {
    const ratio = result.ratios[name];
    return [name, fmt(c.ms.median, 1), fmt(c.ms.p90, 1), ratio ? `${fmt(ratio.median, 2)}x` : "1.00x", ratio ? `${fmt(ratio.p90, 2)}x` : "1.00x", ratio ? (ratio.median <= result.meta.goalRatio ? "met" : "NOT met") : ""];
  });
  console.log(`\nCLI start: ${result.meta.runs} runs each, alternating (baseline node -e 0: median ${fmt(base.median, 1)} ms)`);
  printTable(["command", "median ms", "p90 ms", "vs node -e 0", "p90 vs p90", `goal ≤ ${result.meta.goalRatio}x`], rows);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runCliStartBench({ resultsDir: path.join(here, "results"), ...parseNumberFlags(process.argv.slice(2), { "--runs": "runs", "--warmup": "warmup", "--timeout": "timeoutSec" }) }).catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
