// Deploy latency: the wall time of `rollbridge apply --release-path P --wait`, from the CLI's
// spawn to its exit, for an app that boots in 300 ms (examples/app/server.mjs, BOOT_DELAY_MS),
// against the app's own boot measured in the same run: before each deploy the bench starts the
// same app file the same way (node, the same preload and env) outside the daemon and times its
// spawn to its listen. The result reads "boot + N ms": N is what the deploy costs beyond the
// app's own boot (the CLI's start, the daemon noticing, spawn, health probe, switch, and what
// `--wait` waits for after the switch).
//
//   npm run build && node bench/deploy-latency.mjs [--deploys 8] [--boot 300] [--timeout 240]
//
// The daemon is a plain `rollbridge daemon`; the health check is `{path: /ping}` with the
// default interval (what users get without tuning). Writes bench/results/deploy-<timestamp>.json
// when run directly.
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { loadDefaultIntervalMs, startBenchDaemon } from "./bench-daemon.mjs";
import { bounded, fmt, freePort, parseNumberFlags, printTable, sleep, stats, writeResult } from "./lib.mjs";
import { ChildTracker } from "./proc.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));

export const defaultDeployLatencyOptions = {
  /** Measured deploys (after a first, cold one), each paired with a boot of the app alone. */
  deploys: 8,
  bootDelayMs: 300,
  /** The goal: a deploy costs the app's boot plus at most this much. */
  goalMs: 150,
  timeoutSec: 240,
  resultsDir: null,
  print: true,
};

/** Resolves with {meta, boot, wall, overhead, breakdown, pairs}. */
export async function runDeployLatencyBench(opts = {}) {
  const options = { ...defaultDeployLatencyOptions, ...opts };
  const tracker = new ChildTracker();
  return bounded("deploy latency bench", options.timeoutSec, tracker, () => body(options, tracker));
}

async function body(options, tracker) {
  const loadAvgAtStart = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const d = await startBenchDaemon({ tracker, env: { BOOT_DELAY_MS: String(options.bootDelayMs) }, stampListen: true });
  try {
    await d.deploy("v1"); // cold: not counted
    const pairs = [];
    for (let i = 0; i < options.deploys; i++) {
      const release = i % 2 === 0 ? "v2" : "v1";
      const aloneBootMs = await bootAlone(tracker, d.dir, release, options.bootDelayMs);
      const deploy = await d.deploy(release);
      pairs.push({ aloneBootMs, ...deploy, overheadMs: deploy.cliWallMs - aloneBootMs });
      if (options.print)
        process.stderr.write(
          `[deploy bench] ${String(i + 1).padStart(2)} → ${release}: app alone boots in ${aloneBootMs} ms; apply --wait ${deploy.cliWallMs} ms (boot + ${deploy.cliWallMs - aloneBootMs} ms; switched at ${deploy.cliStartToSwitchedMs} ms)\n`,
        );
    }
    const stat = (key) => stats(pairs.map((p) => p[key]).filter((v) => Number.isFinite(v)));
    const result = {
      meta: {
        date: new Date().toISOString(),
        node: process.version,
        cpus: os.cpus().length,
        deploys: options.deploys,
        bootDelayMs: options.bootDelayMs,
        healthIntervalMs: await loadDefaultIntervalMs(),
        goalMs: options.goalMs,
        daemon: "rollbridge daemon (no V8 flags)",
        loadAvgAtStart,
      },
      // the app alone: spawn → listening
      boot: stat("aloneBootMs"),
      // apply --wait: the CLI's spawn → its exit
      wall: stat("cliWallMs"),
      // per pair: wall − boot
      overhead: stat("overheadMs"),
      breakdown: {
        cliStartToRolloutStartMs: stat("cliStartToRolloutStartMs"),
        spawnToListenMs: stat("spawnToListenMs"),
        // the daemon's process-healthy: spawn → first 2xx health answer
        spawnToHealthyMs: stat("bootMs"),
        listenToSwitchedMs: stat("listenToSwitchedMs"),
        cliStartToSwitchedMs: stat("cliStartToSwitchedMs"),
        switchedToCliExitMs: stat("switchedToCliExitMs"),
      },
      pairs,
    };
    result.overheadAtSwitch = stats(pairs.map((p) => p.cliStartToSwitchedMs - p.aloneBootMs));
    result.met = result.overhead.median <= options.goalMs;
    if (options.print) print(result);
    writeResult(result, options.resultsDir, "deploy", result.meta.date, options.print);
    return result;
  } finally {
    await d.stop();
  }
}

/**
 * Starts the release's app file the way the daemon does (cwd the release, `node --import
 * <listen stamp> server.mjs`, a free port in ROLLBRIDGE_PORT) and resolves with the ms from its
 * spawn to its listen (the stamp's own clock), then stops it.
 */
async function bootAlone(tracker, dir, release, bootDelayMs) {
  const port = await freePort();
  const stampFile = path.join(dir, `boot-alone-${release}.log`);
  writeFileSync(stampFile, "");
  const env = { ...process.env, ROLLBRIDGE_PORT: String(port), ROLLBRIDGE_RELEASE_ID: `alone-${release}`, BOOT_DELAY_MS: String(bootDelayMs), BENCH_LISTEN_LOG: stampFile };
  const spawnedAt = Date.now();
  const child = tracker.spawn(process.execPath, ["--import", path.join(dir, "listen-stamp.mjs"), "server.mjs"], { cwd: path.join(dir, "releases", release), env, stdio: "ignore" });
  try {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const line = readFileSync(stampFile, "utf8").split("\n").find(Boolean);
      if (line) return Number(line.split(" ")[2]) - spawnedAt;
      if (child.exitCode !== null) throw new Error(`the app alone exited with ${child.exitCode} before listening`);
      if (Date.now() > deadline) throw new Error("the app alone did not listen within 15 s");
      await sleep(5);
    }
  } finally {
    await tracker.stop(child, 5000);
  }
}

function print(result) {
  const s3 = (s) => (s.count ? `${fmt(s.min, 0)} / ${fmt(s.median, 0)} / ${fmt(s.max, 0)}` : "n/a");
  console.log(`\nDeploy latency: ${result.meta.deploys} deploys of an app that boots in ${result.meta.bootDelayMs} ms, health interval ${result.meta.healthIntervalMs ?? "default"} ms (min / median / max, ms)`);
  printTable(
    ["measure", "ms"],
    [
      ["the app alone: spawn → listening (baseline)", s3(result.boot)],
      ["`apply --wait`: CLI spawn → exit", s3(result.wall)],
      [`… minus the app's boot (goal ≤ ${result.meta.goalMs}: ${result.met ? "met" : "NOT met"})`, s3(result.overhead)],
      ["CLI spawn → rollout started", s3(result.breakdown.cliStartToRolloutStartMs)],
      ["the app in the deploy: spawn → listening", s3(result.breakdown.spawnToListenMs)],
      ["the app in the deploy: spawn → healthy", s3(result.breakdown.spawnToHealthyMs)],
      ["app listening → traffic switched", s3(result.breakdown.listenToSwitchedMs)],
      ["CLI spawn → switched, minus the app's boot", s3(result.overheadAtSwitch)],
      ["switched → CLI exit", s3(result.breakdown.switchedToCliExitMs)],
    ],
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runDeployLatencyBench({ resultsDir: path.join(here, "results"), ...parseNumberFlags(process.argv.slice(2), { "--deploys": "deploys", "--boot": "bootDelayMs", "--timeout": "timeoutSec" }) }).catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
