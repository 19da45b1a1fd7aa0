// A daemon restart during a rollout judged on live traffic (issue 16, item 6): the daemon is
// SIGKILLed (or hands over with `rollbridge upgrade`) during a bake window or a canary step, and
// a new daemon on the same config adopts the processes (src/reconcile/adoption.ts). Traffic must
// never stay split between two releases with nobody deciding, and a baking release is never kept
// unjudged: the bake window resumes with the time it had left (the old release still running and
// ready, same pid), a release that fails after the restart is rolled back, one that passes is kept
// and only then the old one drained; a canary step is resumed and can be decided as before.
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { isAlive as pidAlive, startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { get } from "../helpers/load.js";
import { deploy, isAlive, json, killDaemonHard, Started, STATE, stateLists, WEB } from "../helpers/recovery.js";

let daemon: TestDaemon;
const t = new Started();
/** Daemons started by an upgrade are nobody's child here: stopped by pid, before the rest. */
let daemonPids: number[] = [];
afterEach(async () => {
  for (const pid of daemonPids.reverse()) {
    if (!pidAlive(pid)) continue;
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // gone
    }
    await until(() => !pidAlive(pid), 20_000, `daemon ${pid} to stop`).catch(() => process.kill(pid, "SIGKILL"));
  }
  daemonPids = [];
  await t.cleanup();
});

type Status = Awaited<ReturnType<TestDaemon["status"]>>;
const pidOf = (s: Status, release: string): number => s.processes.find((p: { releaseId: string }) => p.releaseId === release)?.pid;

/** The proxied fixture app; a release directory holding BROKEN answers 500 to every request but /ping. */
const BREAKABLE = WEB("{FAIL_REQUESTS_IF_EXISTS: BROKEN}");

interface During {
  v1: number;
  v2: number;
  /** When the daemon was killed or the upgrade began (this clock). */
  restartedAt: number;
}

/**
 * Deploys v1, applies v2 (with BROKEN when `broken`) with `flags`, waits for `phase` with no
 * request sent, then kills the daemon hard and starts another on the same config, or upgrades.
 */
async function restartDuring(phase: "bake" | "canary", flags: string[], how: { by: "kill" | "upgrade"; broken?: boolean; extra?: string } = { by: "kill" }): Promise<During> {
  t.daemon = daemon = await startDaemon({ processes: BREAKABLE, extra: `statePath: ${STATE}${how.extra ? `\n${how.extra}` : ""}` });
  await deploy(daemon, "v1");
  const v2Dir = await daemon.release("v2");
  if (how.broken) await fs.writeFile(path.join(v2Dir, "BROKEN"), "");
  const applied = await daemon.cli(["apply", ...flags, "--release-path", v2Dir]);
  expect(applied.code, applied.stderr).toBe(0);
  const during = await until(
    async () => {
      const s = await daemon.status();
      return s.rolloutPhase?.phase === phase ? s : null;
    },
    15_000,
    `the ${phase} phase`,
  );
  const pids = { v1: pidOf(during, "v1"), v2: pidOf(during, "v2") };
  const state = await until(
    async () => {
      const written = await stateLists(daemon, pids.v2);
      return written.releases.some((r: { id: string; rollout?: { phase: string } }) => r.id === "v2" && r.rollout?.phase === phase) ? written : null;
    },
    10_000,
    `the state file recording the ${phase}`,
  );
  expect(state.activeKey).toBeTruthy();
  const restartedAt = Date.now();
  if (how.by === "kill") {
    await killDaemonHard(daemon);
    await t.daemonAgain(daemon);
  } else {
    const up = await daemon.cli(["upgrade", "--json"], { timeoutMs: 120_000 });
    expect(up.code, up.stderr).toBe(0);
    const doc = JSON.parse(up.stdout);
    daemonPids.push(doc.oldPid, doc.newPid);
    await until(async () => (await json(await daemon.cli(["status", "--json"]))).daemonPid === doc.newPid, 15_000, `daemon ${doc.newPid} answering`);
  }
  return { ...pids, restartedAt };
}

/** Waits for the resumed bake window of v2 after the restart: v1 still running with its pid. */
async function bakeResumed(pids: During, bakeMs: number): Promise<Status> {
  let asked = 0;
  const s = await until(
    async () => {
      asked = Date.now();
      const st = await json(await daemon.cli(["status", "--json"]));
      return st.rolloutPhase?.phase === "bake" && st.activeRelease?.id === "v2" ? st : null;
    },
    15_000,
    "the bake window resumed",
  );
  expect(s.rolloutPhase).toMatchObject({ releaseId: "v2", previousReleaseId: "v1" });
  // Resumed with the time it had left (the switch came before the restart), not a new window.
  expect(s.rolloutPhase.leftMs).toBeLessThan(pids.restartedAt + bakeMs - asked);
  expect(pidOf(s, "v1")).toBe(pids.v1);
  expect(pidOf(s, "v2")).toBe(pids.v2);
  expect(isAlive(pids.v1)).toBe(true);
  expect(s.processes.find((p: { releaseId: string }) => p.releaseId === "v1").state).toBe("running");
  expect((await eventsNow()).map((e) => e.type)).toContain("bake-resumed");
  return s;
}

/** After a rollback following the restart: v1 serves with its old pid, v2 failed, the desired file names v1. */
async function rolledBackToV1(pids: During): Promise<void> {
  const answers: number[] = [];
  const back = await until(
    async () => {
      // Requests until the judgement: v2 answers 500 to them.
      for (let i = 0; i < 5; i++) answers.push((await get(daemon.proxyPort)).status);
      const s = await json(await daemon.cli(["status", "--json"]));
      return s.desired.releaseId === "v1" && s.releases.find((x: { id: string }) => x.id === "v2")?.state === "failed" ? s : null;
    },
    30_000,
    "v2 rolled back to v1",
  );
  expect(answers).toContain(500);
  expect(back.activeRelease.id).toBe("v1");
  expect(pidOf(back, "v1")).toBe(pids.v1);
  expect(back.releases.find((x: { id: string }) => x.id === "v2").failure).toMatchObject({ code: "ROLLED_BACK" });
  expect(back.releases.find((x: { id: string }) => x.id === "v2").failure.reason).toMatch(/^rolled back: \d+ of \d+ responses failed/);
  expect(await fs.readFile(daemon.desiredPath, "utf8")).toContain(path.join(daemon.dir, "releases", "v1"));
  await until(() => !isAlive(pids.v2), 20_000, `v2 (pid ${pids.v2}) stopped`);
  expect(new Set(await answersOf(10))).toEqual(new Set(["v1"]));
  expect(isAlive(pids.v1)).toBe(true);
}

/** Waits until one release alone runs and no rollout is judged; its status. */
async function oneReleaseLeft(timeoutMs = 30_000): Promise<Status> {
  let last: Status | null = null;
  return until(
    async () => {
      const s = await json(await daemon.cli(["status", "--json"])).catch(() => null);
      last = s;
      if (!s?.converged || s.rolloutPhase) return null;
      const running = new Set(s.processes.filter((p: { state: string }) => p.state === "running").map((p: { releaseId: string }) => p.releaseId));
      return running.size === 1 ? s : null;
    },
    timeoutMs,
    "one release left running",
  ).catch((error: Error) => {
    throw new Error(`${error.message}; last status: ${JSON.stringify(last)}`);
  });
}

/** The events of the daemon that serves now, oldest first. */
async function eventsNow(): Promise<{ type: string; seq: number; message: string }[]> {
  return (await json(await daemon.cli(["events", "--json", "--limit", "1000"]))).events;
}

async function answersOf(n: number): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await get(daemon.proxyPort);
    expect(r.status).toBe(200);
    seen.push(JSON.parse(r.body).release as string);
  }
  return seen;
}

/** After a restart (or an upgrade) during a 25% canary step: resumed, both serving, promote ends it on v2. */
async function canaryResumed(by: "kill" | "upgrade"): Promise<void> {
  const pids = await restartDuring("canary", ["--canary", "25:60000"], { by });
  const resumed = await until(
    async () => {
      const s = await json(await daemon.cli(["status", "--json"])).catch(() => null);
      return s?.rolloutPhase?.phase === "canary" && s.activeRelease?.id === "v1" ? s : null;
    },
    15_000,
    "the canary resumed",
  );
  expect(resumed.rolloutPhase).toMatchObject({ releaseId: "v2", previousReleaseId: "v1", weight: 25 });
  expect(pidOf(resumed, "v1")).toBe(pids.v1);
  const seen = await until(
    async () => {
      const answers = await answersOf(20);
      return answers.includes("v2") ? answers : null;
    },
    15_000,
    "the canary taking requests again",
  );
  expect(seen).toContain("v1");
  const promoted = await daemon.cli(["promote"]);
  expect(promoted.code, promoted.stderr).toBe(0);
  const settled = await oneReleaseLeft();
  expect(settled.activeRelease.id).toBe("v2");
  expect(settled.desired.releaseId).toBe("v2");
  await until(() => !isAlive(pids.v1), 15_000, `v1 (pid ${pids.v1}) stopped`);
  expect(new Set(await answersOf(10))).toEqual(new Set(["v2"]));
}

describe("a daemon restart during a rollout judged on live traffic", () => {
  it("during a bake window: the bake resumes with the time it had left, and a release failing after the restart is rolled back to the old one (same pid, desired file set back)", async () => {
    const pids = await restartDuring("bake", ["--bake", "60000"], { by: "kill", broken: true, extra: "rollout: {minRequests: 10, maxErrorRate: 0.2}" });
    await bakeResumed(pids, 60_000);
    await rolledBackToV1(pids);
  });

  it("during a bake window: a release that passes the rest of its window is kept, and only then is the old one drained and stopped", async () => {
    const bakeMs = 20_000;
    const pids = await restartDuring("bake", ["--bake", String(bakeMs)], { by: "kill", extra: "rollout: {minRequests: 5}" });
    await bakeResumed(pids, bakeMs);
    // Judged on its traffic in the meantime: every answer is v2's.
    expect(new Set(await answersOf(10))).toEqual(new Set(["v2"]));
    const settled = await oneReleaseLeft(45_000);
    expect(settled.activeRelease.id).toBe("v2");
    expect(settled.desired.releaseId).toBe("v2");
    expect(pidOf(settled, "v2")).toBe(pids.v2);
    await until(() => !isAlive(pids.v1), 15_000, `v1 (pid ${pids.v1}) stopped`);
    const events = await eventsNow();
    const passed = events.find((e) => e.type === "rollout-passed");
    const drained = events.filter((e) => e.type === "drain-started").at(-1);
    expect(passed).toBeDefined();
    expect(drained!.seq).toBeGreaterThan(passed!.seq);
    expect(events.some((e) => e.type === "rolled-back")).toBe(false);
  }, 90_000);

  it("an upgrade during a bake window: the new daemon resumes the bake and rolls a release failing on live traffic back to the old one", async () => {
    const pids = await restartDuring("bake", ["--bake", "60000"], { by: "upgrade", broken: true, extra: "rollout: {minRequests: 10, maxErrorRate: 0.2}" });
    await bakeResumed(pids, 60_000);
    await rolledBackToV1(pids);
  }, 120_000);

  it("during a canary step: the canary is resumed with both releases serving, and promote then ends it on the new release", async () => {
    await canaryResumed("kill");
  });

  it("an upgrade during a canary step: the new daemon resumes the canary, and promote then ends it on the new release", async () => {
    await canaryResumed("upgrade");
  }, 120_000);
});
