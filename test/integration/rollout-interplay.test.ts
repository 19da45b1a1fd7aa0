// Rollouts judged on live traffic meet other changes (issue 16, item 6) with a real daemon: a
// newer desired state during a canary step or a bake window supersedes the rollout cleanly (the
// newer release ends active, both older ones drained and stopped, every answer a 200), and a
// singleton moves to the new release only once its bake window has passed.
import { afterEach, describe, expect, it } from "vitest";
import { isAlive, portRange, startDaemon, until, type TestDaemon, statusWhen } from "../helpers/daemon.js";
import { httpGet } from "../helpers/operations.js";

let daemon: TestDaemon | null = null;
let stopLoad: (() => Promise<void>) | null = null;
afterEach(async () => {
  await stopLoad?.();
  stopLoad = null;
  await daemon?.stop();
  daemon = null;
});

const WEB = () => {
  const range = portRange();
  return `  - id: web
    policy: proxied
    command: node {{APP}}
    port: {from: ${range.from}, to: ${range.to}}
    health: {path: /ping, intervalMs: 50}
    restartDelayMs: 200
    gracefulStopMs: 3000`;
};

const TICKER = `  - id: ticker
    policy: singleton
    command: sh -c 'while :; do sleep 0.05; done'
    gracefulStopMs: 1000`;

/** Sequential GETs through the proxy until stopped: every status seen. */
function load(port: number): { statuses: number[]; stop: () => Promise<void> } {
  const statuses: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running)
      statuses.push(
        await httpGet(port, "/hello").then(
          (r) => r.status,
          () => 0,
        ),
      );
  })();
  return {
    statuses,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

type Status = Awaited<ReturnType<TestDaemon["status"]>>;
const pidsOf = (s: Status, release: string): number[] => s.processes.filter((p: { releaseId: string; state: string }) => p.releaseId === release && p.state === "running").map((p: { pid: number }) => p.pid);

describe.each([
  { phase: "canary", flags: ["--canary", "25:60000"] },
  { phase: "bake", flags: ["--bake", "60000"] },
])("a newer desired state during a $phase phase", ({ phase, flags }) => {
  it("supersedes the rollout: the newer release ends active, both older ones stop, no request fails", async () => {
    daemon = await startDaemon({ processes: WEB() });
    const d = daemon;
    expect((await d.cli(["deploy", "--release-path", await d.release("v1")])).code).toBe(0);
    const traffic = load(d.proxyPort);
    stopLoad = traffic.stop;
    const first = d.cli(["apply", "--wait", "--json", ...flags, "--release-path", await d.release("v2")]);
    const during = await until(
      async () => {
        const s = await d.status();
        return s.rolloutPhase?.phase === phase ? s : null;
      },
      15_000,
      `the ${phase} phase`,
    );
    const old = [...pidsOf(during, "v1"), ...pidsOf(during, "v2")];
    expect(old).toHaveLength(2);

    const newer = await d.cli(["apply", "--wait", "--release-path", await d.release("v3")]);
    expect(newer.code, newer.stderr).toBe(0);
    const superseded = await first;
    expect(superseded.code).toBe(1);
    expect(JSON.parse(superseded.stdout).outcome.outcome).toBe("superseded");

    const settled = await statusWhen(d, (s) => s.activeRelease?.id === "v3" && !s.rolloutPhase && pidsOf(s, "v1").length + pidsOf(s, "v2").length === 0, 20_000, "v3 alone");
    expect(settled.desired.releaseId).toBe("v3");
    for (const pid of old) await until(() => !isAlive(pid), 15_000, `pid ${pid} stopped`);
    await traffic.stop();
    expect(traffic.statuses.length).toBeGreaterThan(10);
    expect(traffic.statuses.filter((s) => s !== 200)).toEqual([]);
  });
});

describe("a singleton during a bake window", () => {
  it("stays on the old release while the new one bakes and moves once the rollout has passed", async () => {
    daemon = await startDaemon({ processes: `${WEB()}\n${TICKER}` });
    const d = daemon;
    expect((await d.cli(["deploy", "--release-path", await d.release("v1")])).code).toBe(0);
    const ticker = (s: Status) => s.processes.filter((p: { id: string; state: string }) => p.id === "ticker" && p.state === "running");
    const before = ticker(await d.status());
    expect(before).toHaveLength(1);
    expect(before[0].releaseId).toBe("v1");

    const deploying = d.cli(["apply", "--wait", "--bake", "3000", "--release-path", await d.release("v2")]);
    const baking = await statusWhen(d, (s) => s.rolloutPhase?.phase === "bake", 15_000, "the bake window");
    // The web process moved (v2 takes the traffic); the singleton did not: one, still v1's.
    expect(pidsOf(baking, "v2").length).toBeGreaterThan(0);
    expect(ticker(baking).map((p: { releaseId: string; pid: number }) => [p.releaseId, p.pid])).toEqual([["v1", before[0].pid]]);

    const r = await deploying;
    expect(r.code, r.stderr).toBe(0);
    const after = await until(
      async () => {
        const s = await d.status();
        const t = ticker(s);
        return t.length === 1 && t[0].releaseId === "v2" ? s : null;
      },
      15_000,
      "the singleton on v2",
    );
    expect(ticker(after)[0].pid).not.toBe(before[0].pid);
    await until(() => !isAlive(before[0].pid), 10_000, "v1's singleton stopped");
  });
});
