// 1000 WebSockets open across a deploy: none is closed before the switch, all of them after the
// drain deadline with a close frame (1001, never a reset's 1006), HTTP under load never fails,
// and the daemon's file descriptors come back to where they were.
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { startLoad } from "../helpers/load.js";
import { applyOverSocket, openFds, quickStatus, stdoutEvents } from "../helpers/raw.js";

const SOCKETS = 1000;
const DRAIN_MS = 1500;

let daemon: TestDaemon | null = null;
let clients: WebSocket[] = [];
afterEach(async () => {
  for (const ws of clients) ws.terminate();
  clients = [];
  await daemon?.stop();
  daemon = null;
});

describe("WebSockets across a deploy", () => {
  it(`drains ${SOCKETS} WebSockets and closes all of them at the deadline, leaking no descriptor`, async () => {
    daemon = await startDaemon({ proxy: { drainTimeoutMs: DRAIN_MS } });
    const d = daemon;
    const v1 = await d.release("v1");
    const daemonPid = (await applyOverSocket(d.socket, { release: { path: v1 } }, "v1")).daemonPid as number;
    const baselineFds = openFds(daemonPid);

    const closedAt: number[] = [];
    const codes = new Map<number, number>();
    for (let batch = 0; batch < SOCKETS / 200; batch++) {
      await Promise.all(
        Array.from({ length: 200 }, () => {
          const ws = new WebSocket(`ws://127.0.0.1:${d.proxyPort}/socket`);
          clients.push(ws);
          ws.on("error", () => undefined);
          ws.on("close", (code) => {
            closedAt.push(Date.now());
            codes.set(code, (codes.get(code) ?? 0) + 1);
          });
          return new Promise<void>((resolve, reject) => {
            ws.once("message", (data) => (String(data) === "hello v1" ? resolve() : reject(new Error(String(data)))));
            ws.once("close", () => reject(new Error("closed before hello")));
          });
        }),
      );
    }
    expect((await quickStatus(d.socket)).releases[0].connections.websockets).toBe(SOCKETS);
    expect(closedAt).toHaveLength(0);

    const load = startLoad(d.proxyPort, { connections: 4 });
    await until(() => load.stats.ok > 20, 5000, "load flowing");

    const v2 = await d.release("v2");
    await applyOverSocket(d.socket, { release: { path: v2 } }, "v2");
    await until(() => closedAt.length === SOCKETS, 5000, "every WebSocket closed");
    const switched = stdoutEvents(d.stdout).find((e) => e.type === "traffic-switched" && e.releaseId === "v2");
    expect(switched).toBeDefined();
    const switchedAt = Date.parse(switched!.at);
    const first = Math.min(...closedAt) - switchedAt;
    const last = Math.max(...closedAt) - switchedAt;
    // none before the drain deadline, all shortly after it
    expect(first).toBeGreaterThanOrEqual(DRAIN_MS - 50);
    expect(last).toBeLessThan(DRAIN_MS + 3000);
    expect(Object.fromEntries(codes)).toEqual({ 1001: SOCKETS });

    const stats = await load.stop();
    expect(stats.errors).toEqual([]);
    expect(stats.failed + stats.non2xx).toBe(0);
    expect(stats.byRelease["v2"]).toBeGreaterThan(0);
    const status = await quickStatus(d.socket);
    expect(status.activeRelease.id).toBe("v2");
    expect(status.releases.every((r: { connections?: { websockets: number } }) => (r.connections?.websockets ?? 0) === 0)).toBe(true);
    // 2000 sockets came and went (client and upstream side of each tunnel): none is left over.
    await until(() => openFds(daemonPid) <= baselineFds + 5, 5000, `daemon fds back to ${baselineFds} (now ${openFds(daemonPid)})`);
  });
});
