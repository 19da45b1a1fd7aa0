// Recovery signals only what a daemon started, as the user it started it as: a recorded group
// whose leader is gone is still an orphan while its members live (and they are stopped one by
// one), a recorded uid that does not match leaves the process alone, and a legacyTakeover entry
// with a `user` matches only that user's processes. Real processes, real /proc.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import type { Config } from "../../src/config/resolved-config.js";
import type { StateSnapshot } from "../../src/observe/state-file.js";
import { groupMembers, readIdentity } from "../../src/process/identity.js";
import { findLegacyProcesses } from "../../src/process/legacy.js";
import { liveOrphans, stopOrphans } from "../../src/reconcile/orphans.js";
import { isAlive, killQuietly } from "../helpers/process.js";
import { until } from "../helpers/daemon.js";

const me = process.getuid?.() ?? 0;
const started: ChildProcess[] = [];
const pgids: number[] = [];
afterEach(() => {
  for (const pgid of pgids.splice(0)) killQuietly(-pgid);
  for (const child of started.splice(0)) if (child.pid) killQuietly(child.pid);
});

/** A group leader (sh) with two `sleep` members; it exits when its stdin closes, leaving them behind. */
async function groupWithMembers(env: Record<string, string>): Promise<{ leader: ChildProcess; pgid: number; startTime: number }> {
  const leader = spawn("/bin/sh", ["-c", "sleep 300 & sleep 300 & read line"], { detached: true, stdio: ["pipe", "ignore", "ignore"], env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env } });
  started.push(leader);
  const pgid = leader.pid!;
  pgids.push(pgid);
  await until(async () => (await groupMembers(pgid)).length === 3, 5000, "the group's two sleeps");
  const identity = await readIdentity(pgid);
  return { leader, pgid, startTime: identity!.startTime };
}

async function leaderExits(leader: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => leader.once("exit", resolve));
  leader.stdin!.end();
  await exited;
  await until(async () => (await readIdentity(leader.pid!)) === null, 5000, "the leader gone");
}

function snapshot(processes: StateSnapshot["processes"]): StateSnapshot {
  return {
    version: 1,
    application: "app",
    writtenAt: new Date().toISOString(),
    // A daemon that is gone: what it recorded may be orphaned.
    daemon: { pid: 999_999, startTime: null },
    activeKey: null,
    releases: [],
    processes,
    orphans: [],
    events: [],
  };
}

function entry(pid: number, startTime: number, uid: number, instanceId = "web", releaseId = "v1"): StateSnapshot["processes"][number] {
  return { instanceId, processId: "web", releaseKey: "k1", releaseId, pid, pgid: pid, uid, startTime, port: null, restarts: 0, lastStartReason: "deploy", startedAt: 1, stopSignal: "SIGTERM", gracefulStopMs: 2000 };
}

const config = { processes: [], legacyTakeover: { screens: [], processes: [] } } as unknown as Config;

describe("orphans", () => {
  it("counts a recorded group whose leader is gone while members it started live, and stops them one by one", async () => {
    const group = await groupWithMembers({ ROLLBRIDGE_INSTANCE_ID: "web", ROLLBRIDGE_RELEASE_ID: "v1" });
    await leaderExits(group.leader);
    const members = await groupMembers(group.pgid);
    expect(members).toHaveLength(2);

    const orphans = await liveOrphans(snapshot([entry(group.pgid, group.startTime, me)]));
    expect(orphans.map((o) => o.pgid)).toEqual([group.pgid]);

    const [report] = await stopOrphans(config, orphans);
    expect(report).toMatchObject({ outcome: "exited", members: 2 });
    for (const m of members) expect(await isAlive(m.pid)).toBe(false);
  });

  it("does not count the members of a leaderless group that the daemon did not start (no ROLLBRIDGE_INSTANCE_ID of that instance)", async () => {
    const group = await groupWithMembers({ ROLLBRIDGE_INSTANCE_ID: "worker#0", ROLLBRIDGE_RELEASE_ID: "v1" });
    await leaderExits(group.leader);
    expect(await liveOrphans(snapshot([entry(group.pgid, group.startTime, me)]))).toEqual([]);
    for (const m of await groupMembers(group.pgid)) expect(await isAlive(m.pid)).toBe(true);
  });

  it("leaves a process alone when it runs as another uid than the one recorded", async () => {
    const group = await groupWithMembers({ ROLLBRIDGE_INSTANCE_ID: "web", ROLLBRIDGE_RELEASE_ID: "v1" });
    const recorded = entry(group.pgid, group.startTime, me + 4242);
    expect(await liveOrphans(snapshot([recorded]))).toEqual([]);
    // Even handed over directly, nothing of another uid is signalled.
    const [report] = await stopOrphans(config, [{ ...recorded, detectedAt: new Date().toISOString() }]);
    expect(report?.outcome).toBe("other-user");
    expect(await groupMembers(group.pgid)).toHaveLength(3);
  });
});

describe("legacyTakeover user", () => {
  it("matches only processes of the configured user", async () => {
    const marker = `rbmark-${randomBytes(4).toString("hex")}`;
    const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1e6)", marker], { detached: true, stdio: "ignore" });
    started.push(child);
    pgids.push(child.pid!);
    await until(async () => (await readIdentity(child.pid!)) !== null, 5000, "the legacy process");
    const found = (user: number | string | undefined) => findLegacyProcesses([{ name: "old", includes: [marker], user }], new Set());
    expect((await found(undefined)).map((p) => p.pid)).toEqual([child.pid]);
    expect((await found(me)).map((p) => p.pid)).toEqual([child.pid]);
    expect(await found(me + 4242)).toEqual([]);
    expect(await found("no-such-user-rb")).toEqual([]);
  });
});
