// Adoption end to end: a real daemon SIGKILLed, a new one started on the same config takes
// over its processes (same pids, no restart), supervises them (a crash is noticed through
// /proc and restarted, a deploy drains and stops them), keeps reading their output through
// the FIFOs that outlived the first daemon (into `logs` and into a logFile that goes on rotating
// at its size limit), and a singleton never runs twice.
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { sleep, startDaemon, until, waitForExit, type TestDaemon, statusWhen } from "../helpers/daemon.js";
import { get } from "../helpers/load.js";
import { deploy, isAlive, json, killDaemonHard, Started, STATE, stateLists, WEB } from "../helpers/recovery.js";

let daemon: TestDaemon;
const t = new Started();
afterEach(() => t.cleanup());

/** A singleton that counts its starts in a file and writes a line every 20 ms, for ever. */
const TICKER = (countFile: string) => `  - id: ticker
    policy: singleton
    command: sh -c 'echo start >> ${countFile}; i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.02; done'
    gracefulStopMs: 1000`;

async function servingPid(d: TestDaemon): Promise<number> {
  const res = await get(d.proxyPort);
  expect(res.status).toBe(200);
  return JSON.parse(res.body).pid as number;
}

describe("adoption after a daemon crash", () => {
  it("keeps the same pids serving with no restart, a singleton started once, and output still reaching logs", async () => {
    const dir = await t.tempDir("rb-adopt-");
    const starts = path.join(dir, "starts");
    t.daemon = daemon = await startDaemon({ processes: `${WEB(`{GREETING: "hi"}`)}\n${TICKER(starts)}`, extra: `statePath: ${STATE}` });
    await deploy(daemon, "v1");
    const before = await daemon.status();
    const web = before.processes.find((p: { id: string }) => p.id === "web");
    const ticker = before.processes.find((p: { id: string }) => p.id === "ticker");
    expect(await servingPid(daemon)).toBe(web.pid);
    await stateLists(daemon, ticker.pid);
    await stateLists(daemon, web.pid);

    await killDaemonHard(daemon);
    // The ticker keeps writing while no daemon reads: it must not die of SIGPIPE.
    await sleep(1500);
    expect(isAlive(ticker.pid)).toBe(true);
    expect(isAlive(web.pid)).toBe(true);

    const second = await t.daemonAgain(daemon);
    const after = await statusWhen(daemon, (s) => s.converged && s.activeRelease?.id === "v1", 15_000, "the new daemon to converge on v1");
    const webAfter = after.processes.find((p: { id: string }) => p.id === "web");
    const tickerAfter = after.processes.find((p: { id: string }) => p.id === "ticker");
    expect(webAfter.pid).toBe(web.pid);
    expect(tickerAfter.pid).toBe(ticker.pid);
    expect(webAfter.restarts).toBe(0);
    expect(after.orphans).toEqual([]);
    expect(await until(async () => (await get(daemon.proxyPort)).status === 200, 10_000, "the proxy serving")).toBe(true);
    expect(await servingPid(daemon)).toBe(web.pid);
    // The env of the release came back from the process itself: a crash restart would get it too.
    expect(JSON.parse((await get(daemon.proxyPort)).body).greeting).toBe("hi");

    // Output written after the adoption shows in logs, from the same pid.
    const seen = await until(
      async () => {
        const logs = await json(await daemon.cli(["logs", "--process", "ticker", "--json"]));
        const lines = logs.lines.filter((l: { pid: number | null; line: string }) => l.pid === ticker.pid && /^tick \d+$/.test(l.line));
        return lines.length >= 5 ? lines : null;
      },
      10_000,
      "ticker output in logs after the adoption",
    );
    expect(seen.length).toBeGreaterThanOrEqual(5);
    expect((await fs.readFile(starts, "utf8")).trim().split("\n")).toEqual(["start"]);

    // SIGTERM still stops everything, adopted processes included, and removes the state file.
    second.kill("SIGTERM");
    expect(await waitForExit(second, 20_000)).toBe(true);
    expect(isAlive(web.pid)).toBe(false);
    expect(isAlive(ticker.pid)).toBe(false);
    await expect(fs.stat(path.join(daemon.dir, STATE))).rejects.toThrow();
  });

  it("goes on rotating an adopted process's logFile at its size limit, as for a spawned one", async () => {
    // About 60 bytes a line, 50 lines a second: the 3000-byte file rotates about every second.
    const chatty = `  - id: chatty
    policy: singleton
    command: sh -c 'i=0; while :; do i=$((i+1)); echo "tick $i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"; sleep 0.02; done'
    logFile: {path: logs/chatty.log, maxBytes: 3000, keep: 2}
    gracefulStopMs: 1000`;
    t.daemon = daemon = await startDaemon({ processes: `${WEB("{}")}\n${chatty}`, extra: `statePath: ${STATE}` });
    await deploy(daemon, "v1");
    const logs = path.join(daemon.dir, "logs");
    const ticks = async (file: string): Promise<number[]> =>
      (await fs.readFile(path.join(logs, file), "utf8").catch(() => ""))
        .split("\n")
        .map((l) => /^tick (\d+) x+$/.exec(l))
        .filter((m) => m !== null)
        .map((m) => Number(m[1]));
    // Rotation of the spawned process first: the baseline.
    await until(async () => (await ticks("chatty.log.1")).length > 0, 15_000, "a first rotation by the daemon that spawned it");
    const pid = (await daemon.status()).processes.find((p: { id: string }) => p.id === "chatty").pid as number;
    await stateLists(daemon, pid);

    await killDaemonHard(daemon);
    await t.daemonAgain(daemon);
    await until(async () => (await daemon.status()).processes.find((p: { id: string }) => p.id === "chatty")?.pid === pid, 15_000, "chatty adopted");
    // Every line in the files now was written by the first daemon or has just been: a rotated file
    // that begins past them was started and rotated by the daemon that adopted the process.
    const seen = Math.max(0, ...(await ticks("chatty.log")), ...(await ticks("chatty.log.1")), ...(await ticks("chatty.log.2")));
    const rotated = await until(
      async () => {
        const first = await ticks("chatty.log.1");
        return first.length > 0 && first[0]! > seen ? first : null;
      },
      20_000,
      "a rotation after the adoption",
    );
    // Nothing lost across that rotation: the current file goes on where the rotated one ends.
    // (Read the current file first, then check the rotated one is still the same.)
    const current = await ticks("chatty.log");
    if ((await ticks("chatty.log.1"))[0] === rotated[0]) expect(current[0]).toBe(rotated.at(-1)! + 1);
    expect(rotated).toEqual(Array.from({ length: rotated.length }, (_, i) => rotated[0]! + i));
    // Rotated at the limit, and no more files than `keep`.
    for (const file of await fs.readdir(logs)) {
      expect(["chatty.log", "chatty.log.1", "chatty.log.2"]).toContain(file);
      // (A file renamed by a rotation between the listing and the stat is skipped.)
      const size = (await fs.stat(path.join(logs, file)).catch(() => null))?.size ?? 0;
      expect(size).toBeLessThanOrEqual(3000);
    }
    const s = await daemon.status();
    const p = s.processes.find((x: { id: string }) => x.id === "chatty");
    expect(p.pid).toBe(pid);
    expect(p.restarts).toBe(0);
  });

  it("notices a crash of an adopted process through /proc and restarts it", async () => {
    t.daemon = daemon = await startDaemon({ processes: WEB("{}"), extra: `statePath: ${STATE}` });
    const web = await adoptedWeb();
    process.kill(web.pid, "SIGKILL");
    const restarted = await until(
      async () => {
        const p = (await daemon.status()).processes.find((x: { id: string; pid: number | null }) => x.id === "web" && x.pid !== null && x.pid !== web.pid);
        return p ?? null;
      },
      10_000,
      "the crashed adopted process restarted",
    );
    expect(restarted.restarts).toBe(1);
    await until(async () => (await servingPid(daemon)) === restarted.pid, 10_000, "traffic on the restarted process");
  });

  it("drains and stops an adopted release when the next one is deployed", async () => {
    t.daemon = daemon = await startDaemon({ processes: WEB("{}"), extra: `statePath: ${STATE}` });
    const web = await adoptedWeb();
    await deploy(daemon, "v2");
    const s = await statusWhen(daemon, (s) => s.converged && s.activeRelease?.id === "v2" && s.processes.every((p: { releaseId: string }) => p.releaseId === "v2"), 20_000, "v2 serving alone");
    expect(s.processes[0].pid).not.toBe(web.pid);
    await until(() => !isAlive(web.pid), 10_000, "the adopted v1 process stopped");
    expect(JSON.parse((await get(daemon.proxyPort)).body).release).toBe("v2");
  });
});

/** Deploys v1, SIGKILLs the daemon, starts another, and waits until it serves through the adopted web process. */
async function adoptedWeb(): Promise<{ pid: number }> {
  await deploy(daemon, "v1");
  const web = (await daemon.status()).processes[0];
  await stateLists(daemon, web.pid);
  await killDaemonHard(daemon);
  await t.daemonAgain(daemon);
  await until(async () => (await daemon.status()).processes[0]?.pid === web.pid && (await get(daemon.proxyPort)).status === 200, 15_000, "adopted web serving");
  return web;
}
