// The proxy's timeouts through a real daemon: a WebSocket handshake the app never answers is
// cut with 502 after proxy.upgradeTimeoutMs and stops holding its release's drain; a request
// body that stalls gets 408 after proxy.bodyTimeoutMs and leaves nothing in flight.
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { expectDaemonServes, quickStatus, rawExchange, upgradeRequest } from "../helpers/raw.js";

const UPGRADE_TIMEOUT_MS = 1500;
const BODY_TIMEOUT_MS = 1000;
const DRAIN_TIMEOUT_MS = 30_000;

let daemon: TestDaemon;

beforeAll(async () => {
  daemon = await startDaemon({ proxy: { upgradeTimeoutMs: UPGRADE_TIMEOUT_MS, bodyTimeoutMs: BODY_TIMEOUT_MS, drainTimeoutMs: DRAIN_TIMEOUT_MS } });
  await daemon.applyRelease("v1");
});

afterAll(async () => {
  await daemon?.stop();
});

describe("proxy timeouts through the daemon", () => {
  it("answers 408 to a stalled request body and aborts it at the app", async () => {
    const started = Date.now();
    const { text } = await rawExchange(daemon.proxyPort, `POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n${"x".repeat(10)}`, BODY_TIMEOUT_MS + 10_000);
    const ms = Date.now() - started;
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(ms).toBeGreaterThanOrEqual(BODY_TIMEOUT_MS - 100);
    expect(ms).toBeLessThan(BODY_TIMEOUT_MS + 5000);
    await until(async () => (await quickStatus(daemon.socket)).releases[0].connections.inflight === 0, 5000, "nothing in flight");
    await expectDaemonServes(daemon, "v1");
  });

  it("cuts a handshake the app never answers with 502, so it does not hold the old release's drain", async () => {
    const client = net.connect(daemon.proxyPort, "127.0.0.1");
    let answer = "";
    client.on("data", (chunk) => (answer += chunk.toString("latin1")));
    client.on("error", () => undefined);
    const closed = new Promise<number>((resolve) => client.on("close", () => resolve(Date.now())));
    // the fixture completes this handshake only after a minute
    client.write(upgradeRequest("/ws-delay?ms=60000"));
    const opened = Date.now();
    await until(async () => (await quickStatus(daemon.socket)).releases.find((r: { id: string }) => r.id === "v1")?.connections.websockets === 1, 5000, "handshake counted");

    const v2 = await daemon.release("v2");
    const applied = await daemon.cli(["apply", "--release-path", v2]);
    expect(applied.code, applied.stderr).toBe(0);
    // Without the timeout v1 would drain for DRAIN_TIMEOUT_MS (30 s).
    const v1Stopped = await until(
      async () => {
        const v1 = (await quickStatus(daemon.socket)).releases.find((r: { id: string }) => r.id === "v1");
        return v1?.state === "stopped" ? Date.now() : null;
      },
      DRAIN_TIMEOUT_MS - 10_000,
      "v1 stopped",
    );
    const closedAt = await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 502 /);
    expect(closedAt - opened).toBeGreaterThanOrEqual(UPGRADE_TIMEOUT_MS - 100);
    expect(v1Stopped - opened).toBeLessThan(DRAIN_TIMEOUT_MS / 2);
    await expectDaemonServes(daemon, "v2");
  });
});
