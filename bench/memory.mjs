// Cost of one memory-sampling pass over 50 managed process groups (issue target: < 5 ms of
// daemon CPU per pass), beside two baselines measured in the same run: the floor (one bare
// scan of /proc/*/stat) and the naive way (one /proc scan per group).
import { spawn } from "node:child_process";
import { closeSync, openSync, readdirSync, readSync } from "node:fs";
import { readdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export async function runMemoryBench({ groups = 50, passes = 40 } = {}) {
  const { sampleGroupsMemory, sampleGroupMemory } = await import(pathToFileURL(path.join(root, "dist/process/memory.js")).href);
  const children = [];
  for (let i = 0; i < groups; i++) {
    // Two members per group, like a shell wrapper and its app.
    const child = spawn("/bin/sh", ["-c", "sleep 300 & sleep 300; wait"], { detached: true, stdio: "ignore" });
    children.push(child);
  }
  const pgids = children.map((c) => c.pid);
  await new Promise((r) => setTimeout(r, 300));
  const measure = async (fn) => {
    await fn(); // warm
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < passes; i++) await fn();
    const wall = (performance.now() - t0) / passes;
    const cpu = process.cpuUsage(cpu0);
    return { cpuMsPerPass: (cpu.user + cpu.system) / 1000 / passes, wallMsPerPass: wall };
  };
  try {
    const buf = Buffer.alloc(4096);
    const floor = await measure(async () => {
      for (const n of readdirSync("/proc")) {
        if (!/^\d+$/.test(n)) continue;
        try {
          const fd = openSync(`/proc/${n}/stat`, "r");
          readSync(fd, buf, 0, buf.length, 0);
          closeSync(fd);
        } catch {
          // vanished
        }
      }
    });
    const batched = await measure(async () => {
      const result = await sampleGroupsMemory(pgids);
      if (!result || result.get(pgids[0]).children.length < 1) throw new Error("sampling found nothing");
    });
    const naive = await measure(async () => {
      for (const pgid of pgids) await sampleGroupMemory(pgid);
    });
    const procCount = (await readdir("/proc")).filter((n) => /^\d+$/.test(n)).length;
    const result = {
      groups,
      passes,
      processesOnMachine: procCount,
      floor,
      batched,
      naive,
      batchedVsFloor: batched.cpuMsPerPass / floor.cpuMsPerPass,
      naiveVsBatched: naive.cpuMsPerPass / batched.cpuMsPerPass,
      targetMs: 5,
      meetsTarget: batched.cpuMsPerPass < 5,
    };
    console.log(`\nmemory sampling, ${groups} groups (${groups * 3} processes of ours, ${procCount} on the machine), ${passes} passes each`);
    console.log(`  ${"".padEnd(34)} ${"CPU ms/pass".padStart(12)} ${"wall ms/pass".padStart(13)}`);
    for (const [name, m] of [
      ["floor: bare sync /proc/*/stat scan", floor],
      ["supervisor pass (one scan, batched)", batched],
      ["naive (one scan per group)", naive],
    ]) {
      console.log(`  ${name.padEnd(34)} ${m.cpuMsPerPass.toFixed(2).padStart(12)} ${m.wallMsPerPass.toFixed(2).padStart(13)}`);
    }
    console.log(`  supervisor pass = ${result.batchedVsFloor.toFixed(2)}x the floor; naive = ${result.naiveVsBatched.toFixed(1)}x the supervisor; target < 5 ms: ${result.meetsTarget ? "met" : "MISSED"}`);
    return result;
  } finally {
    for (const c of children) {
      try {
        process.kill(-c.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  await runMemoryBench();
}
