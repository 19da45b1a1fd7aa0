// Socket.IO long-polling sessions across a switch, through a real daemon and real socket.io
// client and server: without affinity the session's next request reaches the new release,
// which does not know it (400 Session ID unknown), and the client drops; with proxy.affinity
// ({query: sid}, or the cookie with a client that keeps cookies) the session stays on the
// draining release, and a new session goes to the new one.
// And the zero-lost-acks recipe of docs/long-lived-connections.md: an app that disconnects its
// clients on the drain notice and a client with {ackTimeout, retries} (without retries, the emits
// in flight at the disconnect fail with "socket has been disconnected").
import path from "node:path";
import { io as connect, type Socket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { ROOT, portRange, startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { applyOverSocket, control, quickStatus } from "../helpers/raw.js";

const SOCKETIO_APP = path.join(ROOT, "test/fixtures/socketio-app.mjs");

let daemon: TestDaemon | null = null;
const clients: Socket[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.disconnect();
  await daemon?.stop();
  daemon = null;
});

async function deployV1(affinity: string | null, env = "{}"): Promise<TestDaemon> {
  const range = portRange();
  daemon = await startDaemon({
    // Long enough that the old release is still draining while the test looks.
    proxy: { drainTimeoutMs: 30_000, ...(affinity === null ? {} : { affinity }) },
    processes: `  - id: web
    policy: proxied
    command: node ${SOCKETIO_APP}
    env: ${env}
    port: {from: ${range.from}, to: ${range.to}}
    health: {path: /ping, intervalMs: 50}
    gracefulStopMs: 3000`,
  });
  const v1 = await daemon.release("v1");
  await applyOverSocket(daemon.socket, { release: { path: v1 } }, "v1");
  return daemon;
}

/** A polling-only client (no upgrade): every emit is an HTTP request of its session. */
async function pollingClient(port: number, withCredentials = false) {
  const socket = connect(`http://127.0.0.1:${port}`, { transports: ["polling"], upgrade: false, reconnection: false, withCredentials });
  clients.push(socket);
  const disconnects: string[] = [];
  socket.on("disconnect", (reason) => disconnects.push(reason));
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("connect_error", reject);
  });
  const which = (): Promise<string> => socket.timeout(3000).emitWithAck("which");
  return { socket, disconnects, which };
}

/** Deploys v2 and returns once it takes the traffic (v1 is then draining: not converged yet). */
async function switchToV2(d: TestDaemon): Promise<void> {
  const v2 = await d.release("v2");
  const put = await control(d.socket, "PUT", "/desired", { document: { release: { path: v2 } } });
  expect(put.status).toBe(200);
  await until(async () => (await quickStatus(d.socket)).activeRelease?.id === "v2", 20_000, "v2 active");
}

describe("Socket.IO polling sessions across a switch", () => {
  it("break without affinity: the next request of the session reaches the new release, which does not know it", async () => {
    const d = await deployV1(null);
    const client = await pollingClient(d.proxyPort);
    expect(await client.which()).toBe("v1");
    const sid = client.socket.id;
    await switchToV2(d);
    await expect(client.which()).rejects.toThrow();
    await until(() => client.disconnects.length > 0, 10_000, "the client to drop");
    expect(client.disconnects[0]).toBe("transport error");
    expect(client.socket.id).not.toBe(sid);
  });

  it("survive with affinity {query: sid}: the session stays on the draining release, a new one goes to the new release", async () => {
    const d = await deployV1("{query: sid}");
    const client = await pollingClient(d.proxyPort);
    expect(await client.which()).toBe("v1");
    await switchToV2(d);
    for (let i = 0; i < 5; i++) expect(await client.which()).toBe("v1");
    expect(client.disconnects).toEqual([]);
    expect(client.socket.connected).toBe(true);
    const fresh = await pollingClient(d.proxyPort);
    expect(await fresh.which()).toBe("v2");
  });

  it("survive with affinity: cookie, for a client that keeps cookies", async () => {
    const d = await deployV1("cookie");
    const client = await pollingClient(d.proxyPort, true);
    expect(await client.which()).toBe("v1");
    await switchToV2(d);
    for (let i = 0; i < 5; i++) expect(await client.which()).toBe("v1");
    expect(client.disconnects).toEqual([]);
    const fresh = await pollingClient(d.proxyPort, true);
    expect(await fresh.which()).toBe("v2");
  });
});

describe("Socket.IO acks across a deploy whose app disconnects its clients on the drain notice", () => {
  it("with client retries, no ack is lost and no session breaks: every emit is acknowledged, by v1 before the move and v2 after", async () => {
    const d = await deployV1("{query: sid}", "{ON_DRAINING: disconnect}");
    const reasons: string[] = [];
    const sockets = ["polling", "websocket"].map((transport) => {
      const socket = connect(`http://127.0.0.1:${d.proxyPort}`, { forceNew: true, transports: [transport], upgrade: false, reconnectionDelay: 100, ackTimeout: 2000, retries: 3 });
      clients.push(socket);
      socket.on("disconnect", (reason) => {
        reasons.push(reason);
        if (reason === "io server disconnect") socket.connect();
      });
      return socket;
    });
    await Promise.all(sockets.map((socket) => new Promise<void>((resolve) => socket.once("connect", () => resolve()))));
    const acks: Promise<{ n: number; release: string }>[] = [];
    let n = 0;
    const emitting = setInterval(() => {
      for (const socket of sockets) acks.push(socket.emitWithAck("ping", ++n));
    }, 50);
    try {
      await switchToV2(d);
      // Until the app has moved both clients to v2 (after its drain notice) and they emit there.
      const seen = new Set<string>();
      await until(
        async () => {
          const settled = await Promise.allSettled(acks.slice(-4));
          for (const r of settled) if (r.status === "fulfilled") seen.add(r.value.release);
          return reasons.length >= 2 && seen.has("v2");
        },
        20_000,
        "both clients moved to v2",
      );
    } finally {
      clearInterval(emitting);
    }
    const results = await Promise.allSettled(acks);
    const failed = results.filter((r) => r.status === "rejected");
    expect(failed).toEqual([]);
    const releases = new Set(results.map((r) => (r as PromiseFulfilledResult<{ release: string }>).value.release));
    expect(releases).toEqual(new Set(["v1", "v2"]));
    // Only the app's own disconnects: no transport error (a cut poll) or ping timeout.
    expect(reasons.every((r) => r === "io server disconnect")).toBe(true);
  });
});
