// The daemon's two V8 settings against CPU per request, in one run: `--max-semi-space-size`
// (the young generation's cap; the daemon adds 4 when Node was started without one) and
// `--liftoff-only` (WebAssembly on V8's baseline compiler; undici's llhttp parser is
// WebAssembly): the daemon's default, the smaller cap it had before, and Node's own settings. Every
// setting runs as `instances` real daemons started side by side, each with its own app; rounds
// alternate the order of all daemons so drift is shared. Pinned when the machine allows it
// (the daemons on CPU 1; the apps and wrk on CPU 0), so placement does not differ between them.
// Reported per setting: req/s and the daemon's CPU per request (utime+stime over wrk's
// requests), the median over its instances and rounds, as a ratio to the default setting's,
// and the highest VmRSS sampled under load and VmHWM (the kernel's high-water mark) over its
// instances. Two daemons of the same setting differ by up to ~7 µs per request on this 2-core
// machine, so a smaller difference between settings is noise; run it more than once.
//
//   npm run build && node bench/heap-settings.mjs [--rounds 4] [--duration 5] [--instances 1] [--connections 50] [--timeout 400]
//
// Needs wrk. Writes bench/results/heap-settings-<timestamp>.json.
import { spawnSync } from "node:child_process";
import os from "node:os";
import { pathToFileURL } from "node:url";
import { startBenchDaemon } from "./bench-daemon.mjs";
import { cpuPlacer, fmt, median, parseNumberFlags, printTable, runBench, writeResult } from "./lib.mjs";
import { cpuSeconds, kbToMB, readMemory } from "./proc.mjs";
import { HELLO_APP } from "./proxy.mjs";
import { findWrk, runWrk, WRK_MISSING } from "./wrk.mjs";

/** The settings compared: node flags given to `rollbridge daemon` (the daemon keeps a flag it was given). */
export const SETTINGS = [
  { name: "the daemon's default (semi-space 4 MB, Liftoff only)", flags: [] },
  { name: "semi-space 2 MB (the default before 2026-12-04)", flags: ["--max-semi-space-size=2"] },
  { name: "semi-space 16 MB (Node's), Liftoff only", flags: ["--max-semi-space-size=16"] },
  { name: "semi-space 16 MB, optimised WebAssembly (Node's defaults)", flags: ["--max-semi-space-size=16", "--no-liftoff-only"] },
];

export const defaultHeapSettingsOptions = {
  rounds: 4,
  durationSec: 5,
  instances: 1,
  connections: 50,
  threads: 2,
  timeoutSec: 400,
  resultsDir: new URL("./results", import.meta.url).pathname,
  print: true,
};

export function runHeapSettingsBench(opts = {}) {
  return runBench("heap settings bench", defaultHeapSettingsOptions, opts, body);
}

async function body(options, tracker, log) {
  if (!findWrk()) throw new Error(`${WRK_MISSING}: the heap settings benchmark needs it`);
  const onCpu = cpuPlacer(true);
  const daemons = [];
  try {
    for (let i = 0; i < options.instances; i++) {
      for (const setting of SETTINGS) {
        const d = await startBenchDaemon({ tracker, entry: HELLO_APP, nodeFlags: setting.flags, place: (command, args) => onCpu(1, command, args) });
        daemons.push({ setting, d, rounds: [], peakKB: 0 });
        await d.deploy("v1");
        const app = await d.app();
        if (onCpu.pinned) spawnSync("taskset", ["-a", "-p", "-c", "0", String(app.pid)], { stdio: "ignore" });
      }
    }
    log(`${daemons.length} daemons (${SETTINGS.length} settings × ${options.instances}), ${onCpu.pinned ? "pinned" : "unpinned"}`);
    const load = (d, durationSec) => runWrk(tracker, d.proxyPort, { durationSec, connections: options.connections, threads: options.threads, place: (command, args) => onCpu(0, command, args) });
    for (const x of daemons) await load(x.d, 2);
    for (let round = 0; round < options.rounds; round++) {
      for (const x of round % 2 === 0 ? daemons : [...daemons].reverse()) {
        const pid = x.d.daemonPid;
        const sampler = setInterval(() => {
          x.peakKB = Math.max(x.peakKB, readMemory(pid).rssKB);
        }, 100);
        const cpuBefore = cpuSeconds(pid);
        const w = await load(x.d, options.durationSec).finally(() => clearInterval(sampler));
        const usPerRequest = ((cpuSeconds(pid) - cpuBefore) / w.requests) * 1e6;
        x.rounds.push({ rps: w.rps, usPerRequest, p99Ms: w.p99Ms, errors: w.errors });
        log(`round ${round + 1} ${x.setting.name}: ${fmt(w.rps, 0)} req/s, ${fmt(usPerRequest, 1)} µs/request`);
      }
    }
    const settings = SETTINGS.map((setting) => {
      const mine = daemons.filter((x) => x.setting === setting);
      const rounds = mine.flatMap((x) => x.rounds);
      return {
        name: setting.name,
        flags: setting.flags,
        rps: median(rounds.map((r) => r.rps)),
        usPerRequest: median(rounds.map((r) => r.usPerRequest)),
        usRange: [Math.min(...rounds.map((r) => r.usPerRequest)), Math.max(...rounds.map((r) => r.usPerRequest))],
        errors: rounds.reduce((n, r) => n + r.errors, 0),
        peakMB: kbToMB(Math.max(...mine.map((x) => x.peakKB))),
        hwmMB: kbToMB(Math.max(...mine.map((x) => readMemory(x.d.daemonPid).hwmKB))),
      };
    });
    const base = settings[0];
    for (const s of settings) {
      s.rpsVsDefault = s.rps / base.rps;
      s.cpuVsDefault = s.usPerRequest / base.usPerRequest;
    }
    const result = {
      meta: { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, pinned: onCpu.pinned, ...options, resultsDir: undefined, print: undefined },
      settings,
    };
    if (options.print) {
      printTable(
        ["setting", "req/s", "vs default", "µs/request (range)", "vs default", "peak RSS MB", "VmHWM MB", "errors"],
        settings.map((s) => [
          s.name,
          fmt(s.rps, 0),
          `${fmt(s.rpsVsDefault, 2)}x`,
          `${fmt(s.usPerRequest, 1)} (${fmt(s.usRange[0], 1)}-${fmt(s.usRange[1], 1)})`,
          `${fmt(s.cpuVsDefault, 2)}x`,
          fmt(s.peakMB, 1),
          fmt(s.hwmMB, 1),
          String(s.errors),
        ]),
      );
    }
    writeResult(result, options.resultsDir, "heap-settings", result.meta.date, options.print);
    return result;
  } finally {
    for (const x of daemons) await x.d.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const flags = parseNumberFlags(process.argv.slice(2), { "--rounds": "rounds", "--duration": "durationSec", "--instances": "instances", "--connections": "connections", "--timeout": "timeoutSec" });
  runHeapSettingsBench(flags).catch((error) => {
    console.error(error.message);
    process.exitCode = 1;
  });
}
