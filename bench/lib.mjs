// Pieces every benchmark shares: pinning processes to CPUs, printing a markdown table of
// ratios, reading numeric flags, writing a result file, finding a free port, the bounded run.
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import os from "node:os";
import { ChildTracker } from "./proc.mjs";

/**
 * Returns `onCpu(cpu, command, args)` → [command, args], wrapped in `taskset -c cpu` when
 * pinning was asked for and is possible (taskset and at least 2 cores); `.pinned` says which.
 */
export function cpuPlacer(pinRequested) {
  const pin = pinRequested && os.cpus().length >= 2 && spawnSync("sh", ["-c", "command -v taskset"], { stdio: "ignore" }).status === 0;
  if (pinRequested && !pin) console.error("pinning unavailable (needs taskset and 2 cores): running unpinned");
  const place = (cpu, command, args) => (pin ? ["taskset", ["-c", String(cpu), command, ...args]] : [command, args]);
  place.pinned = pin;
  return place;
}

/**
 * Prints a markdown table: first column left-aligned, the rest right-aligned (numbers), or every
 * column left-aligned with `{ left: true }` (text).
 */
export function printTable(header, rows, { left = false } = {}) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const leftAt = (i) => left || i === 0;
  const line = (cells) => `| ${cells.map((c, i) => (leftAt(i) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ")} |`;
  console.log(line(header));
  console.log(`|${widths.map((w, i) => (leftAt(i) ? "-".repeat(w + 2) : `${"-".repeat(w + 1)}:`)).join("|")}|`);
  for (const row of rows) console.log(line(row));
}

/** `--pin` plus numeric flags named in `names` ({"--rounds": "rounds", …}). */
export function parseNumberFlags(argv, names) {
  const opts = {};
  if (argv.includes("--pin")) opts.pin = true;
  for (let i = 0; i < argv.length; i++) {
    const key = names[argv[i]];
    if (key) opts[key] = Number(argv[++i]);
  }
  return opts;
}

/** Writes `result` as <dir>/<name>-<date>.json (when a directory is given) and notes the file on it. */
export function writeResult(result, dir, name, date, print) {
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}-${date.replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  result.file = file;
  if (print) console.log(`written ${file}`);
}

/** A port the kernel says is free on 127.0.0.1 right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function median(xs) {
  return percentile(xs, 50);
}

/** The p-th percentile (nearest rank on the sorted values; the midpoint for the median of an even count). */
export function percentile(xs, p) {
  if (!xs.length) return Number.NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  if (p === 50) {
    const mid = sorted.length >> 1;
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  }
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** min / median / p90 / max / mean of a list of numbers (nulls when it is empty). */
export function stats(xs) {
  if (!xs.length) return { count: 0, min: null, median: null, p90: null, max: null, mean: null };
  const round = (x) => Math.round(x * 10) / 10;
  return { count: xs.length, min: round(Math.min(...xs)), median: round(median(xs)), p90: round(percentile(xs, 90)), max: round(Math.max(...xs)), mean: round(xs.reduce((a, b) => a + b, 0) / xs.length) };
}

export function fmt(n, digits) {
  return Number.isFinite(n) ? n.toFixed(digits) : "n/a";
}

/** The load averages (1, 5, 15 min) rounded to 0.01: other load skews every number, worth recording. */
export function loadAverage() {
  return os.loadavg().map((x) => Math.round(x * 100) / 100);
}

/**
 * The frame of a benchmark run: its options (`defaults` overridden by `opts`), a fresh
 * ChildTracker and a `log` to stderr (`[name] text`, when options.print), with `body(options,
 * tracker, log)` bounded by options.timeoutSec (see `bounded`).
 */
export function runBench(name, defaults, opts, body) {
  const options = { ...defaults, ...opts };
  const tracker = new ChildTracker();
  const log = (text) => options.print && process.stderr.write(`[${name}] ${text}\n`);
  return bounded(name, options.timeoutSec, tracker, () => body(options, tracker, log));
}

/**
 * Races `fn()` against a deadline of `timeoutSec`; on Ctrl-C or when the deadline passes,
 * everything `tracker` started is stopped (by pid) before the promise settles.
 */
export async function bounded(name, timeoutSec, tracker, fn) {
  // SIGTERM, not SIGKILL: a daemon (ours or PM2's) then still stops the apps it started.
  const onSigint = () => {
    tracker.killAll("SIGTERM");
    tracker.removeTempDirs();
    process.exit(130);
  };
  process.once("SIGINT", onSigint);
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${name} exceeded its ${timeoutSec} s bound; stopped everything it started`)), timeoutSec * 1000);
  });
  try {
    return await Promise.race([fn(), deadline]);
  } finally {
    clearTimeout(timer);
    process.off("SIGINT", onSigint);
    await tracker.stopAll();
  }
}
