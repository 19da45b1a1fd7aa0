// What clients of the old release see when its drain reaches drainTimeoutMs, through a real
// daemon: a WebSocket gets the configured close code in a clean closing handshake (and so does
// the app's end of it), a streaming response ends with its last chunk, a request the app never
// answered gets 504; and the old release is stopped right after.
import { promises as fs } from "node:fs";
import net from "node:net";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { applyOverSocket, stdoutEvents } from "../helpers/raw.js";
import { webProcess } from "../helpers/test-config.js";

const DRAIN_MS = 1500;

let daemon: TestDaemon | null = null;
const sockets: Array<{ destroy(): void }> = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await daemon?.stop();
  daemon = null;
});

/** A raw HTTP/1.1 exchange that keeps everything received and how the connection ended. */
function rawRequest(port: number, request: string) {
  const socket = net.connect(port, "127.0.0.1");
  sockets.push(socket);
  const state = { text: "", ending: "open" as "open" | "end" | "error" };
  socket.on("data", (chunk: Buffer) => (state.text += chunk.toString("latin1")));
  socket.once("end", () => (state.ending = "end"));
  socket.once("error", () => (state.ending = "error"));
  socket.write(request);
  return state;
}

describe("the drain deadline through the daemon", () => {
  it("closes WebSockets with 1012 both ways, ends streams with their last chunk, answers the rest 504, then stops the release", async () => {
    daemon = await startDaemon({
      proxy: { drainTimeoutMs: DRAIN_MS, drainCloseCode: 1012 },
      // GRACEFUL_MS: the app handles SIGTERM as a real one does (stop accepting, then exit). Without it
      // SIGTERM's default action could kill it before it read the proxy's FIN after the close
      // handshake it already answered, so the log line below would be missing (a race under load).
      processes: webProcess({ restartDelayMs: undefined, env: '{WS_CLOSE_LOG: "{{releasePath}}/ws-close.log", GRACEFUL_MS: "500"}' }),
    });
    const d = daemon;
    const v1 = await d.release("v1");
    await applyOverSocket(d.socket, { release: { path: v1 } }, "v1");

    const ws = new WebSocket(`ws://127.0.0.1:${d.proxyPort}/socket`);
    sockets.push({ destroy: () => ws.terminate() });
    ws.on("error", () => undefined);
    const closed = new Promise<{ code: number; wasClean: boolean; at: number }>((resolve) => {
      ws.onclose = (event) => resolve({ code: event.code, wasClean: event.wasClean, at: Date.now() });
    });
    await new Promise<void>((resolve, reject) => {
      ws.once("message", (data) => (String(data) === "hello v1" ? resolve() : reject(new Error(String(data)))));
    });
    const stream = rawRequest(d.proxyPort, "GET /stream?ms=50 HTTP/1.1\r\nHost: shop.test\r\n\r\n");
    const slow = rawRequest(d.proxyPort, "GET /slow?ms=30000 HTTP/1.1\r\nHost: shop.test\r\n\r\n");
    await until(() => stream.text.includes("line "), 5000, "the stream flowing");

    const v2 = await d.release("v2");
    await applyOverSocket(d.socket, { release: { path: v2 } }, "v2");
    const close = await closed;
    const events = stdoutEvents(d.stdout);
    const switchedAt = Date.parse(events.find((e) => e.type === "traffic-switched" && e.releaseId === "v2")!.at);
    expect(close.code).toBe(1012);
    expect(close.wasClean).toBe(true);
    // Not before the deadline (a little slack for clocks), and soon after it.
    expect(close.at - switchedAt).toBeGreaterThanOrEqual(DRAIN_MS - 50);
    expect(close.at - switchedAt).toBeLessThan(DRAIN_MS + 4000);

    await until(() => stream.ending !== "open" && slow.ending !== "open", 5000, "both HTTP connections closed");
    expect(stream.ending).toBe("end");
    expect(stream.text).toMatch(/transfer-encoding: chunked/i);
    expect(stream.text.endsWith("\r\n0\r\n\r\n")).toBe(true);
    expect(slow.ending).toBe("end");
    expect(slow.text).toMatch(/^HTTP\/1\.1 504 Gateway Timeout\r\n/);
    expect(slow.text).toMatch(/\r\nConnection: close\r\n/i);

    // The app's own end of the WebSocket saw the same close, cleanly, before it was stopped.
    expect((await fs.readFile(path.join(v1, "ws-close.log"), "utf8")).trim()).toBe("1012 true");
    const stopped = await until(() => stdoutEvents(d.stdout).find((e) => e.type === "release-stopped" && e.releaseId === "v1"), 10_000, "v1 stopped");
    const timedOut = stdoutEvents(d.stdout).find((e) => e.type === "drain-timeout" && e.releaseId === "v1");
    expect(timedOut?.data).toMatchObject({ inflight: 2, websockets: 1 });
    expect(Date.parse(stopped.at) - switchedAt).toBeLessThan(DRAIN_MS + 5000);
  });
});
