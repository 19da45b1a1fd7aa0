// A daemon restart during a rollout judged on live traffic (issue 16, item 6): the daemon is
// SIGKILLed during a bake window or a canary step, and a new daemon on the same config adopts
// the processes (src/reconcile/adoption.ts). Traffic must never stay split between two releases
// with nobody deciding: after a bake window the new daemon ends on one release with the other
// drained and stopped; a canary step is resumed (both releases serve, the step runs again) and
// can be decided as before.
import { afterEach, describe, expect, it } from "vitest";
import { startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { get } from "../helpers/load.js";
import { deploy, isAlive, killDaemonHard, Started, STATE, stateLists, WEB } from "../helpers/recovery.js";

let daemon: TestDaemon;
const t = new Started();
afterEach(() => t.cleanup());

type Status = Awaited<ReturnType<TestDaemon["status"]>>;
const pidOf = (s: Status, release: string): number => s.processes.find((p: { releaseId: string }) => p.releaseId === release).pid;

/** Deploys v1, applies v2 with `flags`, waits for `phase`, then kills the daemon hard and starts another on the same config. */
async function restartDuring(phase: "bake" | "canary", flags: string[]): Promise<{ v1: number; v2: number }> {
  t.daemon = daemon = await startDaemon({ processes: WEB("{}"), extra: `statePath: ${STATE}` });
  await deploy(daemon, "v1");
  const applied = await daemon.cli(["apply", ...flags, "--release-path", await daemon.release("v2")]);
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
  await stateLists(daemon, pids.v2);
  await killDaemonHard(daemon);
  await t.daemonAgain(daemon);
  return pids;
}

/** Waits until one release alone runs and no rollout is judged; its status. */
async function oneReleaseLeft(): Promise<Status> {
  let last: Status | null = null;
  return until(
    async () => {
      const s = await daemon.status().catch(() => null);
      last = s;
      if (!s?.converged || s.rolloutPhase) return null;
      const running = new Set(s.processes.filter((p: { state: string }) => p.state === "running").map((p: { releaseId: string }) => p.releaseId));
      return running.size === 1 ? s : null;
    },
    30_000,
    "one release left running",
  ).catch((error: Error) => {
    throw new Error(`${error.message}; last status: ${JSON.stringify(last)}`);
  });
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

describe("a daemon restart during a rollout judged on live traffic", () => {
  it("during a bake window: the new daemon ends on one release, the other drained and stopped, the desired file naming it", async () => {
    const pids = await restartDuring("bake", ["--bake", "60000"]);
    const settled = await oneReleaseLeft();
    const survivor = settled.activeRelease.id as "v1" | "v2";
    expect(settled.desired.releaseId).toBe(survivor);
    expect(pidOf(settled, survivor)).toBe(pids[survivor]);
    const other = survivor === "v1" ? pids.v2 : pids.v1;
    await until(() => !isAlive(other), 15_000, `pid ${other} stopped`);
    expect(new Set(await answersOf(10))).toEqual(new Set([survivor]));
  });

  it("during a canary step: the canary is resumed with both releases serving, and promote then ends it on the new release", async () => {
    const pids = await restartDuring("canary", ["--canary", "25:60000"]);
    const resumed = await until(
      async () => {
        const s = await daemon.status().catch(() => null);
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
  });
});
