// Pieces every benchmark shares: pinning processes to CPUs, printing a markdown table of
// ratios, reading numeric flags, writing a result file, finding a free port.
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import os from "node:os";

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

/** Prints a markdown table: first column left-aligned, the rest right-aligned. */
export function printTable(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ")} |`;
  console.log(line(header));
  console.log(`|${widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : `${"-".repeat(w + 1)}:`)).join("|")}|`);
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
