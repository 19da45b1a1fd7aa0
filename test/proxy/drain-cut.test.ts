// closeRelease at a drain deadline: every connection still open ends as cleanly as its protocol
// allows. WebSockets get a close frame each way (never between the bytes of one frame), streams
// their last chunk, requests without an answer 504; nothing sees a reset, and a peer that does
// not answer its close holds the cut for closeWaitMs at most.
import { createHash } from "node:crypto";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { closeAll, onCleanup, request, sleep, startProxy, startUpstream, waitFor } from "./helpers.js";

afterEach(closeAll);

interface CloseSeen {
  code: number;
  reason: string;
  wasClean: boolean;
}

/** An http upstream with an echoing WebSocketServer; each server-side socket's close is recorded. */
async function wsUpstream() {
  const upstream = await startUpstream((_req, res) => res.end("plain http"));
  const wss = new WebSocketServer({ server: upstream.server });
  const closes: CloseSeen[] = [];
  const received: Buffer[] = [];
  wss.on("connection", (socket) => {
    socket.on("message", (data: Buffer, isBinary) => {
      received.push(data);
      socket.send(data, { binary: isBinary });
    });
    socket.onclose = (event) => closes.push({ code: event.code, reason: event.reason, wasClean: event.wasClean });
  });
  onCleanup(
    () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close(() => resolve());
      }),
  );
  return { ...upstream, wss, closes, received };
}

function client(port: number): { ws: WebSocket; closed: Promise<CloseSeen>; messages: Buffer[] } {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/socket`);
  ws.on("error", () => undefined);
  onCleanup(() => ws.terminate());
  const messages: Buffer[] = [];
  ws.on("message", (data: Buffer) => messages.push(data));
  const closed = new Promise<CloseSeen>((resolve) => {
    ws.onclose = (event) => resolve({ code: event.code, reason: event.reason, wasClean: event.wasClean });
  });
  return { ws, closed, messages };
}

function opened(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
}

/** A frame as a peer writes it: FIN set, `masked` for client-to-server frames. */
function frame(opcode: number, payload: Buffer, masked: boolean): Buffer {
  const n = payload.length;
  const lengthBytes = n < 126 ? Buffer.from([n]) : n < 65536 ? Buffer.from([126, n >> 8, n & 0xff]) : Buffer.concat([Buffer.from([127]), bigLength(n)]);
  lengthBytes[0] = (lengthBytes[0] as number) | (masked ? 0x80 : 0);
  const mask = masked ? Buffer.from([0x12, 0x34, 0x56, 0x78]) : Buffer.alloc(0);
  const body = Buffer.from(payload);
  if (masked) for (let i = 0; i < n; i++) body[i] = (body[i] as number) ^ (mask[i & 3] as number);
  return Buffer.concat([Buffer.from([0x80 | opcode]), lengthBytes, mask, body]);
}

function bigLength(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/** The close frames (code, masked) in a byte stream of whole frames, after `from`. */
function closeFrames(bytes: Buffer): { code: number; masked: boolean }[] {
  const found: { code: number; masked: boolean }[] = [];
  let i = 0;
  while (i + 2 <= bytes.length) {
    const opcode = (bytes[i] as number) & 0x0f;
    const masked = ((bytes[i + 1] as number) & 0x80) !== 0;
    let len = (bytes[i + 1] as number) & 0x7f;
    let at = i + 2;
    if (len === 126) {
      len = bytes.readUInt16BE(at);
      at += 2;
    } else if (len === 127) {
      len = Number(bytes.readBigUInt64BE(at));
      at += 8;
    }
    const mask = masked ? bytes.subarray(at, at + 4) : null;
    if (masked) at += 4;
    if (opcode === 0x8) {
      const payload = Buffer.from(bytes.subarray(at, at + len));
      if (mask) for (let k = 0; k < payload.length; k++) payload[k] = (payload[k] as number) ^ (mask[k & 3] as number);
      found.push({ code: payload.readUInt16BE(0), masked });
    }
    i = at + len;
  }
  return found;
}

/** A raw upstream that completes WebSocket handshakes itself and hands over each socket. */
async function rawWsUpstream(onOpen: (socket: net.Socket) => void): Promise<number> {
  const server = net.createServer((socket) => {
    socket.on("error", () => undefined);
    let head = "";
    const onData = (chunk: Buffer) => {
      head += chunk.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.off("data", onData);
      const key = /sec-websocket-key: *(\S+)/i.exec(head)?.[1] ?? "";
      const accept = createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      onOpen(socket);
    };
    socket.on("data", onData);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  onCleanup(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
      }),
  );
  return (server.address() as AddressInfo).port;
}

/** A raw client: sends a handshake, then resolves with the socket once the 101 arrived; collects what follows. */
async function rawWsClient(port: number): Promise<{ socket: net.Socket; received: () => Buffer; ended: Promise<"end" | "error"> }> {
  // Half-open allowed: it answers nothing by itself, not even a FIN with its own.
  const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  onCleanup(() => {
    socket.destroy();
  });
  const chunks: Buffer[] = [];
  let headDone = false;
  let pending = Buffer.alloc(0);
  const ended = new Promise<"end" | "error">((resolve) => {
    socket.once("end", () => resolve("end"));
    socket.once("error", () => resolve("error"));
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.on("data", (chunk: Buffer) => {
      if (headDone) {
        chunks.push(chunk);
        return;
      }
      pending = Buffer.concat([pending, chunk]);
      const end = pending.indexOf("\r\n\r\n");
      if (end < 0) return;
      headDone = true;
      expect(pending.subarray(0, 12).toString()).toBe("HTTP/1.1 101");
      chunks.push(pending.subarray(end + 4));
      resolve();
    });
    socket.write("GET /socket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
  });
  return { socket, received: () => Buffer.concat(chunks), ended };
}

describe("closeRelease at the drain deadline", () => {
  it("closes an open WebSocket with 1001 on both sides, cleanly, and resolves once both answered", async () => {
    const upstream = await wsUpstream();
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [upstream.backend("web")]);
    proxy.setActive("a");
    const c = client(port);
    await opened(c.ws);
    c.ws.send("before");
    await waitFor(() => c.messages.length === 1);
    const started = Date.now();
    await proxy.closeRelease("a");
    // Both peers answered at once: no waiting out the bound.
    expect(Date.now() - started).toBeLessThan(1500);
    expect(await c.closed).toEqual({ code: 1001, reason: "release retired", wasClean: true });
    await waitFor(() => upstream.closes.length === 1);
    expect(upstream.closes[0]).toEqual({ code: 1001, reason: "release retired", wasClean: true });
    expect(proxy.connections("a")).toEqual({ inflight: 0, websockets: 0 });
    await waitFor(async () => (await upstream.connections()) === 0);
  });

  it("sends 1012 when drainCloseCode says so", async () => {
    const upstream = await wsUpstream();
    const { proxy, port } = await startProxy({ drainCloseCode: 1012 });
    proxy.setBackends("a", [upstream.backend("web")]);
    proxy.setActive("a");
    const c = client(port);
    await opened(c.ws);
    await proxy.closeRelease("a");
    expect(await c.closed).toMatchObject({ code: 1012, wasClean: true });
    await waitFor(() => upstream.closes.length === 1);
    expect(upstream.closes[0]).toMatchObject({ code: 1012, wasClean: true });
  });

  it("lets a frame the app is in the middle of sending finish before the client's close frame", async () => {
    const payload = Buffer.alloc(200_000, 7);
    const whole = frame(0x2, payload, false);
    let app: net.Socket | null = null;
    const appPort = await rawWsUpstream((socket) => {
      app = socket;
      socket.write(whole.subarray(0, 90_000));
    });
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [{ id: "web", host: "127.0.0.1", port: appPort, ready: true }]);
    proxy.setActive("a");
    const c = client(port);
    await opened(c.ws);
    await waitFor(() => app !== null);
    const appGot: Buffer[] = [];
    app!.on("data", (chunk: Buffer) => appGot.push(chunk));
    await sleep(100);
    const closing = proxy.closeRelease("a");
    await sleep(150);
    // The app got its close frame at once: nothing was in flight toward it.
    expect(closeFrames(Buffer.concat(appGot))).toEqual([{ code: 1001, masked: true }]);
    expect(c.messages).toHaveLength(0);
    app!.write(whole.subarray(90_000));
    // The app answers the close (as a server would), then closes.
    app!.end(frame(0x8, Buffer.from([0x03, 0xe9]), false));
    await closing;
    const closed = await c.closed;
    expect(c.messages).toHaveLength(1);
    expect(c.messages[0]!.equals(payload)).toBe(true);
    expect(closed).toMatchObject({ code: 1001, wasClean: true });
  });

  it("lets a frame the client is in the middle of sending finish before the app's close frame", async () => {
    const upstream = await wsUpstream();
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [upstream.backend("web")]);
    proxy.setActive("a");
    const raw = await rawWsClient(port);
    const payload = Buffer.alloc(70_000, 9);
    const whole = frame(0x2, payload, true);
    raw.socket.write(whole.subarray(0, 30_000));
    await sleep(100);
    const closing = proxy.closeRelease("a");
    await sleep(150);
    expect(upstream.received).toHaveLength(0);
    expect(closeFrames(raw.received())).toEqual([{ code: 1001, masked: false }]);
    raw.socket.write(whole.subarray(30_000));
    // The client answers the close frame it got; the proxy then ends the connection.
    raw.socket.write(frame(0x8, Buffer.from([0x03, 0xe9]), true));
    expect(await raw.ended).toBe("end");
    raw.socket.end();
    const started = Date.now();
    await closing;
    expect(Date.now() - started).toBeLessThan(1500);
    await waitFor(() => upstream.closes.length === 1);
    expect(upstream.received).toHaveLength(1);
    expect(upstream.received[0]!.equals(payload)).toBe(true);
    expect(upstream.closes[0]).toMatchObject({ code: 1001, wasClean: true });
  });

  it("waits closeWaitMs at most for a client that never answers its close frame, then closes the socket", async () => {
    const upstream = await wsUpstream();
    const { proxy, port } = await startProxy({ closeWaitMs: 400 });
    proxy.setBackends("a", [upstream.backend("web")]);
    proxy.setActive("a");
    const raw = await rawWsClient(port);
    const started = Date.now();
    await proxy.closeRelease("a");
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(350);
    expect(took).toBeLessThan(2000);
    expect(closeFrames(raw.received())).toEqual([{ code: 1001, masked: false }]);
    expect(await raw.ended).toBe("end");
    await waitFor(() => upstream.closes.length === 1);
    expect(upstream.closes[0]).toMatchObject({ code: 1001, wasClean: true });
  });

  it("ends a chunked stream (SSE) with its last chunk and closes the connection", async () => {
    const upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      const timer = setInterval(() => res.write("data: tick\n\n"), 30);
      res.on("close", () => clearInterval(timer));
    });
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [upstream.backend("web")]);
    proxy.setActive("a");
    const socket = net.connect(port, "127.0.0.1");
    onCleanup(() => {
      socket.destroy();
    });
    let received = "";
    socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
    const ended = new Promise<"end" | "error">((resolve) => {
      socket.once("end", () => resolve("end"));
      socket.once("error", () => resolve("error"));
    });
    socket.write("GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n");
    await waitFor(() => received.includes("data: tick"));
    await proxy.closeRelease("a");
    expect(await ended).toBe("end");
    expect(received).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(received).toMatch(/transfer-encoding: chunked/i);
    expect(received.endsWith("\r\n0\r\n\r\n")).toBe(true);
    await waitFor(async () => (await upstream.connections()) === 0);
  });

  it("ends a Content-Length body cut short with a FIN, never a reset", async () => {
    const upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { "content-length": "1000000" });
      res.write(Buffer.alloc(1000, 1));
    });
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [upstream.backend("web")]);
    proxy.setActive("a");
    const socket = net.connect(port, "127.0.0.1");
    onCleanup(() => {
      socket.destroy();
    });
    let bytes = 0;
    socket.on("data", (chunk: Buffer) => (bytes += chunk.length));
    const ended = new Promise<"end" | "error">((resolve) => {
      socket.once("end", () => resolve("end"));
      socket.once("error", () => resolve("error"));
    });
    socket.write("GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n");
    await waitFor(() => bytes > 1000);
    await proxy.closeRelease("a");
    expect(await ended).toBe("end");
    expect(bytes).toBeLessThan(1_000_000);
  });

  it("answers a request the app has not answered yet with 504 and closes its connection", async () => {
    let waiting = 0;
    const upstream = await startUpstream(() => {
      waiting++;
    });
    const responses: Array<[string | null, number]> = [];
    const { proxy, port } = await startProxy({ onResponse: (key, status) => responses.push([key, status]) });
    proxy.setBackends("a", [upstream.backend("web")]);
    proxy.setActive("a");
    const reply = request(port, { path: "/slow" });
    await waitFor(() => waiting === 1);
    await proxy.closeRelease("a");
    const answered = await reply;
    expect(answered.status).toBe(504);
    expect(answered.body).toBe("Gateway timeout");
    expect(answered.headers.connection).toBe("close");
    expect(responses).toEqual([["a", 504]]);
    await waitFor(async () => (await upstream.connections()) === 0);
  });

  it("leaves another release's WebSockets and requests alone", async () => {
    const a = await wsUpstream();
    const b = await wsUpstream();
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [a.backend("web")]);
    proxy.setActive("a");
    const onA = client(port);
    await opened(onA.ws);
    proxy.setBackends("b", [b.backend("web")]);
    proxy.setActive("b");
    const onB = client(port);
    await opened(onB.ws);
    await proxy.closeRelease("a");
    expect((await onA.closed).code).toBe(1001);
    onB.ws.send("still here");
    await waitFor(() => onB.messages.length === 1);
    expect(String(onB.messages[0])).toBe("still here");
    expect(proxy.connections("b").websockets).toBe(1);
    expect((await request(port)).body).toBe("plain http");
  });
});
