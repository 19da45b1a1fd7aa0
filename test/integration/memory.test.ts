import { afterEach, describe, expect, it } from "vitest";
import type { ManagedProcess } from "../../src/process/managed-process.js";
import { groupHasLiveMembers, parseStat, readStartTime, sampleGroupMemory } from "../../src/process/memory.js";
import { killQuietly, killTracked, startFixtureApp, waitForLine } from "../helpers/process.js";

const extraPids: number[] = [];

afterEach(() => {
  killTracked();
  for (const pid of extraPids.splice(0)) killQuietly(pid);
});

async function startApp(env: Record<string, string>): Promise<ManagedProcess> {
  return (await startFixtureApp(env)).proc;
}

describe("sampleGroupMemory", () => {
  it("sees the group leader and its grandchild with their commands and RSS", async () => {
    const proc = await startApp({ SPAWN_CHILD: "1" });
    const child = Number((await waitForLine(proc, /^child pid \d+$/)).split(" ")[2]);
    extraPids.push(child);
    const sample = await sampleGroupMemory(proc.pid!);
    expect(sample).not.toBeNull();
    const pids = sample!.children.map((c) => c.pid);
    expect(pids).toContain(proc.pid);
    expect(pids).toContain(child);
    const leader = sample!.children.find((c) => c.pid === proc.pid)!;
    expect(leader.command).toContain("app.mjs");
    expect(sample!.children.find((c) => c.pid === child)!.command).toContain("setInterval");
    for (const member of sample!.children) expect(member.rssBytes).toBeGreaterThan(5 * 1024 * 1024);
    expect(sample!.rssBytes).toBe(sample!.children.reduce((sum, c) => sum + c.rssBytes, 0));
  });

  it("sees RSS grow while the app leaks memory", async () => {
    const proc = await startApp({ LEAK_MB_PER_SEC: "60" });
    const before = (await sampleGroupMemory(proc.pid!))!.rssBytes;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const after = (await sampleGroupMemory(proc.pid!))!.rssBytes;
    expect(after - before).toBeGreaterThan(30 * 1024 * 1024);
  });

  it("finds no live member once the group has stopped", async () => {
    const proc = await startApp({ SPAWN_CHILD: "1" });
    await proc.stop();
    expect(await groupHasLiveMembers(proc.pid!)).toBe(false);
    expect(await sampleGroupMemory(proc.pid!)).toEqual({ rssBytes: 0, children: [] });
  });
});

describe("readStartTime", () => {
  it("is stable for a living pid and null once it is gone", async () => {
    const proc = await startApp({});
    const first = await readStartTime(proc.pid!);
    expect(first).toBeTypeOf("number");
    expect(await readStartTime(proc.pid!)).toBe(first);
    expect(first!).toBeGreaterThanOrEqual((await readStartTime(process.pid))!);
    await proc.stop();
    expect(await readStartTime(proc.pid!)).toBeNull();
  });
});

describe("parseStat", () => {
  it("reads the fields after a comm that contains spaces and parentheses", () => {
    // Fields 3 (state) to 21; utime, stime, cutime, cstime (14-17) are 7, 3, 2, 1.
    const fields = ["S", "1", "4242", "4242", "0", "-1", "4194560", "1", "0", "0", "0", "7", "3", "2", "1", "20", "0", "1", "0"];
    const text = `4243 (my (weird) app) ${fields.join(" ")} 987654 123456789 2560 18446744073709551615\n`;
    expect(parseStat(4243, text)).toEqual({ pid: 4243, state: "S", pgrp: 4242, startTime: 987654, rssPages: 2560, cpuTicks: 13 });
  });
});
