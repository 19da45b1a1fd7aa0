import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { FAST_PROBE_MS, FAST_PROBE_WINDOW_MS, HealthCheck, probeHttp } from "../../src/observe/health.js";
import { until } from "../helpers/daemon.js";
import { killTracked, startFixtureApp as startApp } from "../helpers/process.js";

const HOST = "127.0.0.1";

const checks: HealthCheck[] = [];

afterEach(() => {
  for (const check of checks.splice(0)) check.cancel();
  killTracked();
});

function check(port: number, options: Partial<ConstructorParameters<typeof HealthCheck>[0]> = {}): HealthCheck {
  const hc = new HealthCheck({ host: HOST, port, path: "/ping", intervalMs: 100, timeoutMs: 5_000, startDelayMs: 0, ...options });
  checks.push(hc);
  return hc;
}

function settled(hc: HealthCheck): Promise<void> {
  return new Promise((resolve) => hc.onChange(resolve));
}

/** Starts `hc` and resolves, once it has decided (ready or failed), with how long that took in ms. */
async function verdict(hc: HealthCheck): Promise<number> {
  const done = settled(hc);
  const t0 = Date.now();
  hc.start();
  await done;
  return Date.now() - t0;
}

describe("probeHttp", () => {
  it("reports a refused connection as a failed result instead of rejecting", async () => {
    const server = http.createServer();
    const port = await new Promise<number>((resolve) => server.listen(0, HOST, () => resolve((server.address() as AddressInfo).port)));
    await new Promise((resolve) => server.close(resolve));
    const result = await probeHttp(HOST, port, "/ping", 1_000);
    expect(result.ok).toBe(false);
    expect(result.error).toContain("ECONNREFUSED");
    expect(result.status).toBeUndefined();
  });

  it("closes a connection to itself at once and counts it as refused, so the port is free for the app", async () => {
    const server = http.createServer();
    const port = await new Promise<number>((resolve) => server.listen(0, HOST, () => resolve((server.address() as AddressInfo).port)));
    await new Promise((resolve) => server.close(resolve));
    // Connecting from the port itself is what the kernel may pick for a probe to a port nobody listens on yet.
    const result = await probeHttp(HOST, port, "/ping", 1_000, undefined, port);
    expect(result).toMatchObject({ ok: false, refused: true, error: "connected to itself: nothing listens on the port yet" });
    const app = http.createServer();
    await new Promise<void>((resolve, reject) => {
      app.once("error", reject);
      app.listen(port, HOST, () => resolve());
    });
    await new Promise((resolve) => app.close(resolve));
  });

  it("treats 2xx as ok and anything else as not ok, with the status", async () => {
    const { port } = await startApp({});
    expect(await probeHttp(HOST, port, "/ping", 1_000)).toMatchObject({ ok: true, status: 200 });
    const failing = await startApp({ HEALTH_FAIL: "1" });
    expect(await probeHttp(HOST, failing.port, "/ping", 1_000)).toMatchObject({ ok: false, status: 500 });
  });
});

describe("HealthCheck", () => {
  it("becomes ready only after the app's HEALTH_DELAY_MS has passed", async () => {
    const { proc, port } = await startApp({ HEALTH_DELAY_MS: "800" });
    const hc = check(port);
    const done = settled(hc);
    hc.start();
    expect(hc.state).toBe("pending");
    await done;
    expect(hc.state).toBe("ready");
    expect(hc.readyAt! - proc.startedAt!).toBeGreaterThanOrEqual(800);
    expect(hc.lastResult).toMatchObject({ ok: true, status: 200 });
    expect(hc.reason).toBeUndefined();
  });

  it("fails with a clear reason when the endpoint keeps answering 500", async () => {
    const { port } = await startApp({ HEALTH_FAIL: "1" });
    const hc = check(port, { timeoutMs: 700 });
    const elapsed = await verdict(hc);
    expect(hc.state).toBe("failed");
    // The last probe is cut to the time left in the window: on a loaded machine it can run out
    // (a few ms) before the app's 500 arrives, and then that is what the reason says.
    expect(hc.reason).toMatch(new RegExp(`^health check GET http://${HOST.replaceAll(".", "\\.")}:${port}/ping did not return 2xx within 700ms \\(last: (HTTP 500|timed out after \\d+ms)\\)$`));
    expect(elapsed).toBeGreaterThanOrEqual(690);
    expect(elapsed).toBeLessThan(1_200);
  });

  it("fails by timeout against an endpoint that never answers", async () => {
    const { port } = await startApp({ HEALTH_HANG: "1" });
    const hc = check(port, { timeoutMs: 700, startDelayMs: 100 });
    const elapsed = await verdict(hc);
    expect(hc.state).toBe("failed");
    expect(hc.reason).toMatch(/did not return 2xx within 700ms \(last: timed out after \d+ms\)$/);
    expect(elapsed).toBeGreaterThanOrEqual(790);
    expect(elapsed).toBeLessThan(1_300);
  });

  it("probes often in its first second, so an app that answers 503 at first is ready long before intervalMs", async () => {
    // /ping answers 503 to its first 3 probes (counted by the app, so a slow start under load
    // cannot skip them), and the interval is a minute: only the fast first second can reach the
    // 4th probe's 200 before the check's 20 s deadline (the next regular probe would be past it).
    const { port } = await startApp({ HEALTH_FAIL_FIRST: "3" });
    const hc = check(port, { intervalMs: 60_000, timeoutMs: 20_000 });
    await verdict(hc);
    expect(hc.state).toBe("ready");
    expect(hc.lastResult).toMatchObject({ ok: true, status: 200 });
    expect(hc.probes).toBe(4);
  });

  it("while nothing listens yet, probes more often than every FAST_PROBE_MS, so the first request goes out as the port starts accepting", async () => {
    const port = await freePort();
    // A minute's interval: after the first second only the fast window's probes count.
    const hc = check(port, { intervalMs: 60_000, timeoutMs: 20_000 });
    hc.start();
    await new Promise((resolve) => setTimeout(resolve, FAST_PROBE_WINDOW_MS + 300));
    expect(hc.lastResult).toMatchObject({ ok: false, refused: true });
    // Every FAST_PROBE_MS would allow at most this many in the first second.
    expect(hc.probes).toBeGreaterThan(FAST_PROBE_WINDOW_MS / FAST_PROBE_MS + 1);
  });

  it("once the port accepts, an app answering 503 gets one probe every FAST_PROBE_MS, not the refused-port pace", async () => {
    const port = await freePort();
    const hc = check(port, { intervalMs: 60_000, timeoutMs: 20_000 });
    hc.start();
    await until(async () => hc.probes >= 3 && hc.lastResult?.refused === true, 5_000, "a refused probe");
    let requests = 0;
    const server = http.createServer((_req, res) => {
      requests += 1;
      res.writeHead(503).end("booting");
    });
    await new Promise<void>((resolve) => server.listen(port, HOST, resolve));
    const listeningAt = Date.now();
    try {
      await until(async () => hc.lastResult?.status === 503, 5_000, "a probe answered 503");
      await new Promise((resolve) => setTimeout(resolve, 400));
      const elapsed = Date.now() - listeningAt;
      expect(requests).toBeGreaterThan(0);
      expect(requests).toBeLessThanOrEqual(Math.ceil(elapsed / FAST_PROBE_MS) + 2);
    } finally {
      hc.cancel();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("probes every intervalMs once the first second is over", async () => {
    const { port } = await startApp({ HEALTH_FAIL: "1" });
    const hc = check(port, { intervalMs: 500, timeoutMs: 2_000 });
    await verdict(hc);
    expect(hc.state).toBe("failed");
    expect(hc.lastResult).toMatchObject({ ok: false, status: 500 });
    // More than intervalMs alone allows in 2 s (5: at 0, 500, …, 2000): the first second probed every 20 ms…
    expect(hc.probes).toBeGreaterThan(2_000 / 500 + 1);
    // …and no more than that second's probes plus the regular ones of the second after it.
    expect(hc.probes).toBeLessThanOrEqual(FAST_PROBE_WINDOW_MS / FAST_PROBE_MS + 1 + (2_000 - FAST_PROBE_WINDOW_MS) / 500 + 1);
  });

  it("stops probing when cancelled and never reports afterwards", async () => {
    const { port } = await startApp({ HEALTH_HANG: "1" });
    const hc = check(port, { timeoutMs: 400 });
    let changes = 0;
    hc.onChange(() => {
      changes += 1;
    });
    hc.start();
    await new Promise((resolve) => setTimeout(resolve, 150));
    hc.cancel();
    expect(hc.state).toBe("cancelled");
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(hc.state).toBe("cancelled");
    expect(changes).toBe(0);
  });
});

/** A port nothing listens on (bound once by the OS, then released). */
async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
