// /metrics: valid Prometheus text whose counters follow the traffic, deploys and restarts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { get } from "../helpers/load.js";
import { deploy, httpGet, parsePrometheus, repeatedSeries, sampleValue } from "../helpers/operations.js";

let daemon: TestDaemon;
let metricsPort: number;

beforeAll(async () => {
  metricsPort = await freePort();
  daemon = await startDaemon({ extra: `metrics: {host: 127.0.0.1, port: ${metricsPort}}`, proxy: { drainTimeoutMs: 1000 } });
});
afterAll(async () => {
  await daemon?.stop();
});

async function scrape() {
  const r = await httpGet(metricsPort, "/metrics");
  expect(r.status).toBe(200);
  expect(r.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(r.body);
}

describe("metrics", () => {
  it("serves Prometheus text whose request counter moves with traffic, per release and status class", async () => {
    // Before any deploy the proxy answers 503: counted under release="none".
    expect((await get(daemon.proxyPort)).status).toBe(503);
    let m = await scrape();
    expect(m.types).toMatchObject({
      rollbridge_http_requests_total: "counter",
      rollbridge_http_requests_in_flight: "gauge",
      rollbridge_websockets_open: "gauge",
      rollbridge_deploys_total: "counter",
      rollbridge_deploy_duration_seconds: "histogram",
      rollbridge_process_restarts_total: "counter",
      rollbridge_process_resident_memory_bytes: "gauge",
      rollbridge_reconcile_passes_total: "counter",
      rollbridge_reconcile_errors_total: "counter",
    });
    expect(sampleValue(m.samples, "rollbridge_http_requests_total", { release: "none", class: "5xx" })).toBe(1);

    expect((await deploy(daemon, "v1")).code).toBe(0);
    m = await scrape();
    const before = sampleValue(m.samples, "rollbridge_http_requests_total", { release: "v1", class: "2xx" }) ?? 0;
    for (let i = 0; i < 25; i++) expect((await get(daemon.proxyPort)).status).toBe(200);
    m = await scrape();
    expect(sampleValue(m.samples, "rollbridge_http_requests_total", { release: "v1", class: "2xx" })).toBe(before + 25);
    expect(sampleValue(m.samples, "rollbridge_http_requests_in_flight", { release: "v1" })).toBe(0);
    expect(sampleValue(m.samples, "rollbridge_websockets_open", { release: "v1" })).toBe(0);
    expect(sampleValue(m.samples, "rollbridge_deploys_total", { result: "succeeded" })).toBe(1);
    expect(sampleValue(m.samples, "rollbridge_deploys_total", { result: "failed" })).toBe(0);
    expect(sampleValue(m.samples, "rollbridge_deploy_duration_seconds_count")).toBe(1);
    expect(sampleValue(m.samples, "rollbridge_deploy_duration_seconds_bucket", { le: "+Inf" })).toBe(1);
    expect(sampleValue(m.samples, "rollbridge_deploy_duration_seconds_sum")).toBeGreaterThan(0);
    expect(sampleValue(m.samples, "rollbridge_reconcile_passes_total")).toBeGreaterThan(0);
    expect(sampleValue(m.samples, "rollbridge_release_info", { release: "v1", state: "active" })).toBe(1);
  });

  it("counts failed deploys and crash restarts", async () => {
    const v2 = await daemon.release("v2");
    const failing = await daemon.cli(["apply", "-f", "-", "--wait"], { input: `release: {path: ${v2}}\nenv: {EXIT_IMMEDIATELY: "1"}\n` });
    expect(failing.code).toBe(1);
    const pid = (await daemon.status()).processes.find((p: { releaseId: string; pid: number | null }) => p.releaseId === "v1" && p.pid !== null).pid;
    process.kill(pid, "SIGKILL");
    await until(async () => sampleValue((await scrape()).samples, "rollbridge_process_restarts_total", { process: "web", reason: "crash" }) === 1, 10_000, "a crash restart counted");
    const m = await scrape();
    expect(sampleValue(m.samples, "rollbridge_deploys_total", { result: "failed" })).toBe(1);
    expect(sampleValue(m.samples, "rollbridge_deploys_total", { result: "succeeded" })).toBe(1);
  });

  it("never repeats a series, whatever ids the releases have", async () => {
    // An id with a quote and a backslash, and one id given to two different releases.
    // (apply -f: the previous test left a crashing env in the desired file.)
    const weird = await daemon.release('we"ird\\id');
    const first = await daemon.cli(["apply", "-f", "-", "--wait"], { input: JSON.stringify({ release: { path: weird } }) });
    expect(first.code, first.stderr).toBe(0);
    for (let i = 0; i < 3; i++) expect((await get(daemon.proxyPort)).status).toBe(200);
    const other = await daemon.release("other");
    const again = await daemon.cli(["apply", "-f", "-", "--wait"], { input: `release: {path: ${other}, id: v1}\n` });
    expect(again.code, again.stderr).toBe(0);
    for (let i = 0; i < 3; i++) expect((await get(daemon.proxyPort)).status).toBe(200);
    // Both releases called v1 are now stopped: the same (id, state) twice (unless the daemon
    // gave the second one an id of its own, which is fine too).
    const last = await daemon.cli(["apply", "-f", "-", "--wait"], { input: JSON.stringify({ release: { path: await daemon.release("v9") } }) });
    expect(last.code, last.stderr).toBe(0);
    await until(async () => (await daemon.status()).releases.some((r: { path: string; state: string }) => r.path === other && r.state === "stopped"), 10_000, "the second v1 stopped");
    const m = await scrape();
    expect(repeatedSeries(m.samples)).toEqual([]);
    expect(sampleValue(m.samples, "rollbridge_release_info", { release: 'we"ird\\id' })).toBe(1);
    expect(sampleValue(m.samples, "rollbridge_http_requests_total", { release: 'we"ird\\id', class: "2xx" })).toBe(3);
  });

  it("answers 404 outside /metrics", async () => {
    expect((await httpGet(metricsPort, "/")).status).toBe(404);
    expect((await httpGet(metricsPort, "/metrics/x")).status).toBe(404);
  });
});
