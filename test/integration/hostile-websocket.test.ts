// WebSocket upgrades torn down at every phase, by the client and by the app, through a real
// daemon: before the 101, in the middle of a non-101 answer, and after the upgrade. After every
// case the daemon is alive and serving, counts no WebSocket, and holds no upstream socket.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { appSockets, expectDaemonServes, quickStatus, rawExchange, resetAfter, upgradeRequest } from "../helpers/raw.js";

let daemon: TestDaemon;
let appPort: number;

beforeAll(async () => {
  daemon = await startDaemon();
  await daemon.applyRelease("v1");
  appPort = (await daemon.status()).processes[0].port;
});

afterAll(async () => {
  await daemon?.stop();
});

// The daemon still serves, and neither it nor the app keeps anything of the torn-down tunnels.
async function expectCleanAfter(before: number): Promise<void> {
  await until(async () => (await quickStatus(daemon.socket)).releases[0].connections.websockets === 0, 5000, "no WebSocket counted");
  await until(async () => (await appSockets(appPort)).connections <= before, 5000, `app back to ${before} sockets`);
  await expectDaemonServes(daemon, "v1");
}

const many = <T>(n: number, make: (i: number) => Promise<T>) => Promise.all(Array.from({ length: n }, (_, i) => make(i)));

describe("WebSocket resets through the daemon", () => {
  it("survives clients resetting before the 101 arrives", async () => {
    const before = (await appSockets(appPort)).connections;
    const received = await many(20, () => resetAfter(daemon.proxyPort, upgradeRequest("/ws-delay?ms=1000"), 100));
    expect(received.every((text) => text === "")).toBe(true);
    await expectCleanAfter(before);
  });

  it("answers 502 when the app resets before the 101", async () => {
    const before = (await appSockets(appPort)).connections;
    const answers = await many(10, () => rawExchange(daemon.proxyPort, upgradeRequest("/ws-reset")));
    for (const { text } of answers) expect(text).toMatch(/^HTTP\/1\.1 502 /);
    await expectCleanAfter(before);
  });

  it("relays a non-101 answer whole, and closes the client when either side cuts it short", async () => {
    const before = (await appSockets(appPort)).connections;
    const whole = await rawExchange(daemon.proxyPort, upgradeRequest("/ws-reject"), 5000);
    expect(whole.text).toMatch(/^HTTP\/1\.1 403 /);
    expect(whole.text.endsWith("\r\n\r\n" + "x".repeat(20))).toBe(true);

    const byClient = await many(20, () => resetAfter(daemon.proxyPort, upgradeRequest("/ws-reject"), (text) => text.includes("xx")));
    expect(byClient.every((text) => text.startsWith("HTTP/1.1 403"))).toBe(true);
    const byApp = await many(10, (i) => rawExchange(daemon.proxyPort, upgradeRequest(`/ws-reject?${i % 2 ? "resetAfterMs" : "endAfterMs"}=300`), 5000));
    for (const { text, closedByServer } of byApp) {
      expect(closedByServer).toBe(true);
      expect(text.length).toBeLessThan(whole.text.length);
    }
    await expectCleanAfter(before);
  });

  it("survives clients resetting open WebSockets", async () => {
    const before = (await appSockets(appPort)).connections;
    const received = await many(20, () => resetAfter(daemon.proxyPort, upgradeRequest("/"), (text) => text.includes("hello v1")));
    expect(received.every((text) => text.startsWith("HTTP/1.1 101"))).toBe(true);
    await expectCleanAfter(before);
  });

  it("closes the client side when the app resets an open WebSocket", async () => {
    const before = (await appSockets(appPort)).connections;
    const closes = await many(10, async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${daemon.proxyPort}/ws?resetAfterMs=200`);
      ws.on("error", () => undefined);
      const opened = new Promise<boolean>((resolve) => {
        ws.once("open", () => resolve(true));
        ws.once("close", () => resolve(false));
      });
      const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
      expect(await opened).toBe(true);
      return closed;
    });
    // 1006: the connection went away without a close frame, as the app's reset did.
    expect(closes.every((code) => code === 1006)).toBe(true);
    await expectCleanAfter(before);
  });

  it("still upgrades and echoes after all of that", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${daemon.proxyPort}/socket`);
    const messages: string[] = [];
    ws.on("message", (data) => messages.push(String(data)));
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    ws.send("ping");
    await until(() => messages.includes("ping"), 3000, "echo");
    expect(messages[0]).toBe("hello v1");
    ws.close();
    await new Promise((resolve) => ws.once("close", resolve));
    expect(daemon.child.exitCode).toBeNull();
  });
});
