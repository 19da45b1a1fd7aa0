// Rollouts judged on live traffic (CONTRACT.md §7) with a real daemon: a release that passes its
// health check and then answers 500 is rolled back by itself during its bake window (the old
// release never stopped, same pid), the desired file goes back, apply --wait exits 1 with the
// outcome rolled-back; a good release passes its bake window and only then is the old one drained.
import { promises as fs } from "node:fs";
import http from "node:http";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, isAlive, portRange, startDaemon, until, type TestDaemon, statusWhen } from "../helpers/daemon.js";
import { httpGet, parsePrometheus, sampleValue } from "../helpers/operations.js";

let daemon: TestDaemon | null = null;
let stopLoad: (() => Promise<void>) | null = null;
afterEach(async () => {
  await stopLoad?.();
  stopLoad = null;
  await daemon?.stop();
  daemon = null;
});

const WEB = (range: string) => `  - id: web
    policy: proxied
    command: node {{APP}}
    port: ${range}
    env: {FAIL_REQUESTS_IF_EXISTS: BROKEN, SLOW_REQUESTS_IF_EXISTS: SLOW, SLOW_MS: "300"}
    health: {path: /ping, intervalMs: 50}
    restartDelayMs: 200
    gracefulStopMs: 3000`;

function httpGetWithCookie(port: number, target: string, cookie: string): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: target, agent: false, timeout: 10_000, headers: { cookie } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

function ports(): string {
  const range = portRange();
  return `{from: ${range.from}, to: ${range.to}}`;
}

/** Sequential GETs through the proxy until stopped: every status seen, and which release answered. */
function load(port: number): { statuses: number[]; releases: string[]; stop: () => Promise<void> } {
  const statuses: number[] = [];
  const releases: string[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const r = await httpGet(port, "/hello");
        statuses.push(r.status);
        if (r.status === 200) releases.push((JSON.parse(r.body) as { release: string }).release);
      } catch {
        statuses.push(0);
      }
    }
  })();
  return {
    statuses,
    releases,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

async function brokenRelease(d: TestDaemon, name: string): Promise<string> {
  const dir = await d.release(name);
  await fs.writeFile(path.join(dir, "BROKEN"), "");
  return dir;
}

describe("bake window and automatic rollback", () => {
  it("rolls a release that fails on live traffic back to the old one, which kept its pid; the desired file follows; apply --wait says rolled-back", async () => {
    const metricsPort = await freePort();
    daemon = await startDaemon({
      processes: WEB(ports()),
      extra: `metrics: {host: 127.0.0.1, port: ${metricsPort}}\nrollout: {bakeMs: 60000, minRequests: 10, maxErrorRate: 0.2}`,
    });
    const d = daemon;
    expect((await d.cli(["deploy", "--release-path", await d.release("v1")])).code).toBe(0);
    const v1Pid = (await d.status()).processes.find((p: { releaseId: string }) => p.releaseId === "v1").pid as number;
    const traffic = load(d.proxyPort);
    stopLoad = traffic.stop;

    const r = await d.cli(["deploy", "--json", "--release-path", await brokenRelease(d, "v2")]);
    expect(r.code, r.stderr).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc.outcome.outcome).toBe("rolled-back");
    expect(doc.outcome.failure.code).toBe("ROLLED_BACK");
    expect(doc.outcome.message).toMatch(/^rolled back: \d+ of \d+ responses failed \(\d+%\) within [\d.]+ s of the switch$/);
    // Long before the 60 s bake window would have ended.
    expect(doc.events.map((e: { type: string }) => e.type)).toEqual(expect.arrayContaining(["traffic-switched", "bake-started", "rolled-back"]));

    // The old release serves again with the same process; the desired file names it again.
    const status = await statusWhen(d, (s) => s.desired.releaseId === "v1" && s.releases.find((x: { id: string }) => x.id === "v2")?.state === "failed", 15_000, "desired back on v1 and v2 failed");
    expect(status.activeRelease.id).toBe("v1");
    expect(status.processes.find((p: { releaseId: string }) => p.releaseId === "v1").pid).toBe(v1Pid);
    expect(isAlive(v1Pid)).toBe(true);
    expect(status.releases.find((x: { id: string }) => x.id === "v2").failure).toMatchObject({ code: "ROLLED_BACK", retryAt: null });
    expect(status.rolloutPhase).toBeNull();
    expect(await fs.readFile(d.desiredPath, "utf8")).toContain(path.join(d.dir, "releases", "v1"));

    const before = traffic.statuses.length;
    await until(() => traffic.statuses.length >= before + 20, 10_000, "more requests");
    await traffic.stop();
    // After the rollback every answer is v1's 200 again.
    expect(traffic.statuses.slice(before + 2).every((s) => s === 200)).toBe(true);
    // The failed share is bounded: at most minRequests and a few in flight beyond the judgement.
    const failed = traffic.statuses.filter((s) => s !== 200).length;
    expect(failed).toBeGreaterThanOrEqual(3);
    expect(failed).toBeLessThan(40);

    const metrics = parsePrometheus((await httpGet(metricsPort, "/metrics")).body);
    expect(sampleValue(metrics.samples, "rollbridge_rollbacks_total")).toBe(1);
    const events = await d.cli(["events", "--json"]);
    expect(events.stdout).toContain("rolled-back");
  });

  it("a release that passes its bake window is kept, and only then is the old one drained", async () => {
    daemon = await startDaemon({ processes: WEB(ports()) });
    const d = daemon;
    expect((await d.cli(["deploy", "--release-path", await d.release("v1")])).code).toBe(0);
    const v1Pid = (await d.status()).processes[0].pid as number;
    const traffic = load(d.proxyPort);
    stopLoad = traffic.stop;

    const deploying = d.cli(["deploy", "--bake", "2500", "--release-path", await d.release("v2")]);
    // During the bake: v2 takes the traffic, v1 still runs, active and ready, not draining.
    const baking = await statusWhen(d, (s) => s.rolloutPhase?.phase === "bake", 15_000, "bake window");
    expect(baking.activeRelease.id).toBe("v2");
    expect(baking.releases.find((x: { id: string }) => x.id === "v1").state).toBe("active");
    expect(baking.rolloutPhase).toMatchObject({ releaseId: "v2", previousReleaseId: "v1", weight: 100 });
    expect(baking.rolloutPhase.message).toMatch(/^baking, \d+ s left/);
    expect(isAlive(v1Pid)).toBe(true);

    const r = await deploying;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/v2 bakes for 2\.5 s; v1 stays ready to take traffic back/);
    expect(r.stdout).toMatch(/v2 passed/);
    await traffic.stop();
    expect(traffic.statuses.every((s) => s === 200)).toBe(true);
    const after = await d.status();
    expect(after.activeRelease.id).toBe("v2");
    expect(["draining", "stopped"]).toContain(after.releases.find((x: { id: string }) => x.id === "v1").state);
    expect(after.rolloutPhase).toBeNull();
  });

  it("rolls a release whose responses are too slow (p99 over --max-p99) back to the old one, naming the p99", async () => {
    daemon = await startDaemon({ processes: WEB(ports()), extra: "rollout: {minRequests: 10}" });
    const d = daemon;
    expect((await d.cli(["deploy", "--release-path", await d.release("v1")])).code).toBe(0);
    const v1Pid = (await d.status()).processes.find((p: { releaseId: string }) => p.releaseId === "v1").pid as number;
    const traffic = load(d.proxyPort);
    stopLoad = traffic.stop;
    const slow = await d.release("v2");
    await fs.writeFile(path.join(slow, "SLOW"), "");

    const r = await d.cli(["deploy", "--json", "--bake", "60000", "--max-p99", "100", "--release-path", slow]);
    expect(r.code, r.stderr).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc.outcome.outcome).toBe("rolled-back");
    expect(doc.outcome.failure.code).toBe("ROLLED_BACK");
    // Every answer of v2 took at least 300 ms: its p99 is reported at or above that.
    const m = /^rolled back: p99 (\d+) ms over 100 ms after (\d+) responses \((\d+) slower\) within [\d.]+ s of the switch$/.exec(doc.outcome.message);
    expect(m, doc.outcome.message).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(300);
    expect(Number(m![2])).toBeGreaterThanOrEqual(10);
    expect(Number(m![3])).toBeGreaterThanOrEqual(1);

    const status = await statusWhen(d, (s) => s.desired.releaseId === "v1" && s.releases.find((x: { id: string }) => x.id === "v2")?.state === "failed", 15_000, "desired back on v1 and v2 failed");
    expect(status.activeRelease.id).toBe("v1");
    expect(status.processes.find((p: { releaseId: string }) => p.releaseId === "v1").pid).toBe(v1Pid);
    expect(await fs.readFile(d.desiredPath, "utf8")).toContain(path.join(d.dir, "releases", "v1"));
    await traffic.stop();
    // Slow, not failed: every request was answered 200 (by v2 late, or by v1).
    expect(traffic.statuses.every((code) => code === 200)).toBe(true);
  });
});

describe("canary steps and rollouts by hand", () => {
  it("a 25% canary step gets a quarter of new requests; promote ends it and the deploy succeeds", async () => {
    daemon = await startDaemon({ processes: WEB(ports()) });
    const d = daemon;
    expect((await d.cli(["deploy", "--release-path", await d.release("v1")])).code).toBe(0);
    const deploying = d.cli(["deploy", "--json", "--canary", "25:60000", "--release-path", await d.release("v2")]);
    const inCanary = await statusWhen(d, (s) => s.rolloutPhase?.phase === "canary", 15_000, "canary step");
    expect(inCanary.activeRelease.id).toBe("v1");
    expect(inCanary.rolloutPhase).toMatchObject({ releaseId: "v2", weight: 25, step: 1, steps: 1 });
    // The config's sticky default is cookie: a client without the cookie is placed by the exact share, and told its side.
    const seen: string[] = [];
    let cookies = 0;
    for (let i = 0; i < 200; i++) {
      const r = await httpGet(d.proxyPort, "/hello");
      expect(r.status).toBe(200);
      seen.push((JSON.parse(r.body) as { release: string }).release);
      if (String(r.headers["set-cookie"] ?? "").includes("rb_release=")) cookies++;
    }
    const share = seen.filter((x) => x === "v2").length / seen.length;
    expect(share).toBeGreaterThanOrEqual(0.2);
    expect(share).toBeLessThanOrEqual(0.3);
    expect(cookies).toBe(200);
    // A client that carries the release cookie stays on its side for the whole rollout.
    for (const side of ["v1", "v2"]) {
      for (let i = 0; i < 8; i++) {
        const r = await httpGetWithCookie(d.proxyPort, "/hello", `rb_release=${side}`);
        expect((JSON.parse(r.body) as { release: string }).release).toBe(side);
        expect(r.headers["set-cookie"]).toBeUndefined();
      }
    }

    const promoted = await d.cli(["promote", "--json"]);
    expect(promoted.code, promoted.stderr).toBe(0);
    expect(JSON.parse(promoted.stdout)).toMatchObject({ releaseId: "v2", result: "promoted" });
    const r = await deploying;
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).events.map((e: { type: string }) => e.type)).toEqual(expect.arrayContaining(["canary-step", "traffic-switched"]));
    expect((await d.status()).activeRelease.id).toBe("v2");
    expect((await d.cli(["promote"])).code).toBe(1);
  });

  it("status names the phase while it runs; apply --wait prints each phase as it starts", async () => {
    daemon = await startDaemon({ processes: WEB(ports()) });
    const d = daemon;
    expect((await d.cli(["deploy", "--release-path", await d.release("v1")])).code).toBe(0);
    const deploying = d.cli(["apply", "--wait", "--canary", "25:10000", "--bake", "3000", "--release-path", await d.release("v2")]);
    await until(async () => (await d.status()).rolloutPhase?.phase === "canary", 15_000, "canary step");
    for (let i = 0; i < 8; i++) expect((await httpGet(d.proxyPort, "/hello")).status).toBe(200);
    const canaryText = await until(
      async () => {
        const r = await d.cli(["status"]);
        return /errors/.test(r.stdout) && !/no responses yet/.test(r.stdout) ? r.stdout : null;
      },
      10_000,
      "a canary line with responses",
    );
    expect(canaryText).toMatch(/^rollout: v2 canary 25%, step 1 of 1, \d+ s left, 0\.0% errors \(\d+ of 20 responses needed\) \(v1 ready to take traffic back\)$/m);
    const bakeText = await until(
      async () => {
        const r = await d.cli(["status"]);
        return /^rollout: v2 baking/m.test(r.stdout) ? r.stdout : null;
      },
      15_000,
      "the bake line",
    );
    expect(bakeText).toMatch(/^rollout: v2 baking, \d+ s left, (no responses yet|[\d.]+% errors.*) \(v1 ready to take traffic back\)$/m);
    const r = await deploying;
    expect(r.code, r.stderr).toBe(0);
    // Each phase as it started, in order: the canary step, the switch, the bake window, the verdict.
    const lines = r.stdout.split("\n");
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    const phases = [/canary 25% of new requests to v2 \(step 1 of 1\); v1 takes the rest/, /traffic switched to v2/, /v2 bakes for 3 s; v1 stays ready to take traffic back/, /v2 passed/];
    const found = phases.map(at);
    expect(
      found.every((i) => i >= 0),
      r.stdout,
    ).toBe(true);
    expect([...found].sort((a, b) => a - b)).toEqual(found);
    expect((await d.status()).rolloutPhase).toBeNull();
  });

  it("abort during a bake window rolls back at once; apply --wait exits 1 with rolled-back", async () => {
    daemon = await startDaemon({ processes: WEB(ports()) });
    const d = daemon;
    expect((await d.cli(["deploy", "--release-path", await d.release("v1")])).code).toBe(0);
    const v1Pid = (await d.status()).processes[0].pid as number;
    const deploying = d.cli(["apply", "--wait", "--json", "--bake", "60000", "--release-path", await d.release("v2")]);
    await until(async () => (await d.status()).rolloutPhase?.phase === "bake", 15_000, "bake window");
    const aborted = await d.cli(["abort", "--json"]);
    expect(aborted.code, aborted.stderr).toBe(0);
    expect(JSON.parse(aborted.stdout)).toMatchObject({ releaseId: "v2", previousReleaseId: "v1", result: "rolled-back" });
    const r = await deploying;
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).outcome).toMatchObject({ outcome: "rolled-back", releaseId: "v2" });
    expect(JSON.parse(r.stdout).outcome.message).toMatch(/^rolled back by hand \(rollbridge abort\) [\d.]+ s after the switch$/);
    const s = await until(
      async () => {
        const st = await d.status();
        return st.desired.releaseId === "v1" ? st : null;
      },
      10_000,
      "desired back on v1",
    );
    expect(s.activeRelease.id).toBe("v1");
    expect(s.processes.find((p: { releaseId: string }) => p.releaseId === "v1").pid).toBe(v1Pid);
    expect((await httpGet(d.proxyPort, "/hello")).body).toContain('"release":"v1"');
  });

  it("pause holds new requests and resume lets them through in order; past holdTimeoutMs a held request gets 503", async () => {
    daemon = await startDaemon({ processes: WEB(ports()), proxy: { holdTimeoutMs: 3000 } });
    const d = daemon;
    expect((await d.cli(["deploy", "--release-path", await d.release("v1")])).code).toBe(0);
    expect((await d.cli(["pause"])).code).toBe(0);
    // status shows it, human and JSON, until resume.
    expect((await d.status()).proxy.paused).toBe(true);
    const pausedText = await d.cli(["status"]);
    expect(pausedText.stdout).toMatch(/^paused: new requests are held \(each up to proxy\.holdTimeoutMs, then 503\) until rollbridge resume$/m);
    const order: number[] = [];
    const held = [0, 1, 2].map(async (i) => {
      await new Promise((resolve) => setTimeout(resolve, i * 100));
      const r = await httpGet(d.proxyPort, `/hello?n=${i}`);
      order.push(i);
      return r.status;
    });
    // Held, not answered, while paused.
    await new Promise((resolve) => setTimeout(resolve, 800));
    expect(order).toEqual([]);
    expect((await d.cli(["resume"])).code).toBe(0);
    expect(await Promise.all(held)).toEqual([200, 200, 200]);
    expect(order).toEqual([0, 1, 2]);
    expect((await d.status()).proxy.paused).toBe(false);
    expect((await d.cli(["status"])).stdout).not.toMatch(/^paused/m);

    expect((await d.cli(["pause"])).code).toBe(0);
    const late = await httpGet(d.proxyPort, "/hello");
    expect(late.status).toBe(503);
    expect((await d.cli(["resume"])).code).toBe(0);
    expect((await httpGet(d.proxyPort, "/hello")).status).toBe(200);
  });
});
