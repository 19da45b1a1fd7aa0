import type http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { closeAll, deadPort, onCleanup, rawExchange, request, sleep, startProxy, startUpstream, waitFor } from "./helpers.js";

afterEach(closeAll);

/** An http upstream with an echoing WebSocketServer; remembers each handshake's headers. */
async function wsUpstream() {
  const handshakes: http.IncomingHttpHeaders[] = [];
  const upstream = await startUpstream((_req, res) => res.end("plain http"));
  const wss = new WebSocketServer({ server: upstream.server });
  wss.on("connection", (socket, req) => {
    handshakes.push(req.headers);
    socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }));
  });
  onCleanup(
    () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close(() => resolve());
      }),
  );
  return { ...upstream, wss, handshakes };
}

function connect(port: number, headers: Record<string, string> = {}, path = "/socket"): WebSocket {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers });
  ws.on("error", () => undefined);
  onCleanup(() => ws.terminate());
  return ws;
}

function opened(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("unexpected-response", (_req, res) => reject(new Error(`unexpected ${res.statusCode}`)));
    ws.once("error", reject);
  });
}

function nextMessage(ws: WebSocket): Promise<string> {
  return new Promise((resolve) => ws.once("message", (data) => resolve(String(data))));
}

/** Resolves with the HTTP status of a failed handshake, or "error" if the socket just closed. */
function rejectedWith(ws: WebSocket): Promise<number | "error" | "open"> {
  return new Promise((resolve) => {
    ws.once("open", () => resolve("open"));
    ws.once("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
    });
    ws.once("error", () => resolve("error"));
  });
}

async function rawServer(onConnection: (socket: net.Socket) => void): Promise<number> {
  const server = net.createServer(onConnection);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  onCleanup(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as AddressInfo).port;
}

describe("WebSocket forwarding", () => {
  it("echoes messages through the proxy and counts the open socket", async () => {
    const upstream = await wsUpstream();
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [upstream.backend("web")]);
    proxy.setActive("a");
    const ws = connect(port);
    await opened(ws);
    ws.send("hello");
    expect(await nextMessage(ws)).toBe("hello");
    ws.send(Buffer.alloc(100_000, 7));
    const big = await new Promise<Buffer>((resolve) => ws.once("message", (data) => resolve(data as Buffer)));
    expect(big.length).toBe(100_000);
    expect(proxy.connections("a")).toEqual({ inflight: 0, websockets: 1 });
    ws.close();
    await waitFor(() => proxy.connections("a").websockets === 0);
    await waitFor(async () => (await upstream.connections()) === 0);
  });

  it("sets X-Forwarded-* on the handshake and keeps Host", async () => {
    const upstream = await wsUpstream();
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [upstream.backend("web")]);
    proxy.setActive("a");
    await opened(connect(port, { host: "chat.example" }));
    await opened(
      connect(port, {
        host: "internal:9000",
        "x-forwarded-for": "198.51.100.1",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "chat.example",
      }),
    );
    const [plain, fronted] = upstream.handshakes;
    expect(plain?.host).toBe("chat.example");
    expect(plain?.["x-forwarded-for"]).toBe("127.0.0.1");
    expect(plain?.["x-forwarded-proto"]).toBe("http");
    expect(plain?.["x-forwarded-host"]).toBe("chat.example");
    expect(fronted?.host).toBe("internal:9000");
    expect(fronted?.["x-forwarded-for"]).toBe("198.51.100.1, 127.0.0.1");
    expect(fronted?.["x-forwarded-proto"]).toBe("https");
    expect(fronted?.["x-forwarded-host"]).toBe("chat.example");
  });

  it("strips hop-by-hop headers from the handshake but keeps Upgrade", async () => {
    const upstream = await wsUpstream();
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [upstream.backend("web")]);
    proxy.setActive("a");
    const reply = await rawExchange(
      port,
      [
        "GET /socket HTTP/1.1",
        "Host: chat.example",
        "Connection: Upgrade, X-Private",
        "Upgrade: websocket",
        "X-Private: secret",
        "Proxy-Authorization: Basic Zm9v",
        "Keep-Alive: 5",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "",
        "",
      ].join("\r\n"),
      /\r\n\r\n/,
    );
    expect(reply).toMatch(/^HTTP\/1.1 101 /);
    expect(reply).toMatch(/sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
    const headers = upstream.handshakes[0];
    expect(headers?.upgrade).toBe("websocket");
    expect(headers?.["x-private"]).toBeUndefined();
    expect(headers?.["proxy-authorization"]).toBeUndefined();
    expect(headers?.["keep-alive"]).toBeUndefined();
  });

  it("strips hop-by-hop headers from the upstream's 101 but keeps Connection: Upgrade", async () => {
    const upstreamPort = await rawServer((socket) =>
      socket.once("data", () =>
        socket.write(
          [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade, X-Internal",
            "X-Internal: secret",
            "Keep-Alive: timeout=5",
            "Proxy-Authenticate: Basic",
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            "X-Public: yes",
            "",
            "",
          ].join("\r\n"),
        ),
      ),
    );
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [{ id: "raw", host: "127.0.0.1", port: upstreamPort, ready: true }]);
    proxy.setActive("a");
    const reply = await rawExchange(port, "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", /\r\n\r\n/);
    expect(reply).toMatch(/^HTTP\/1.1 101 /);
    expect(reply).toMatch(/^connection: upgrade/im);
    expect(reply).toMatch(/^upgrade: websocket/im);
    expect(reply).toMatch(/^x-public: yes/im);
    expect(reply).not.toMatch(/x-internal: secret/i);
    expect(reply).not.toMatch(/keep-alive/i);
    expect(reply).not.toMatch(/proxy-authenticate/i);
  });

  it("answers 503 to an upgrade when no release is active", async () => {
    const { port } = await startProxy();
    expect(await rejectedWith(connect(port))).toBe(503);
  });

  it("holds an upgrade until a backend is ready, and 502s after holdTimeoutMs", async () => {
    const upstream = await wsUpstream();
    const { proxy, port } = await startProxy({ holdTimeoutMs: 300 });
    proxy.setBackends("a", [upstream.backend("web", false)]);
    proxy.setActive("a");
    expect(await rejectedWith(connect(port))).toBe(502);
    const ws = connect(port);
    const open = opened(ws);
    await sleep(50);
    proxy.setBackends("a", [upstream.backend("web", true)]);
    await open;
    ws.send("late");
    expect(await nextMessage(ws)).toBe("late");
  });

  it("survives an upstream that resets before 101 and answers 502", async () => {
    const resetPort = await rawServer((socket) => socket.once("data", () => socket.resetAndDestroy()));
    const upstream = await startUpstream((_req, res) => res.end("still alive"));
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [{ id: "reset", host: "127.0.0.1", port: resetPort, ready: true }]);
    proxy.setActive("a");
    const outcomes = await Promise.all(Array.from({ length: 5 }, () => rejectedWith(connect(port))));
    expect(outcomes).toEqual([502, 502, 502, 502, 502]);
    await waitFor(() => proxy.connections("a").websockets === 0);
    proxy.setBackends("a", [upstream.backend("web")]);
    expect((await request(port)).body).toBe("still alive");
  });

  it("survives an upstream that closes mid-handshake after a partial response", async () => {
    const halfPort = await rawServer((socket) =>
      socket.once("data", () => {
        socket.write("HTTP/1.1 101 Switching");
        setTimeout(() => socket.destroy(), 10);
      }),
    );
    const upstream = await startUpstream((_req, res) => res.end("still alive"));
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [{ id: "half", host: "127.0.0.1", port: halfPort, ready: true }]);
    proxy.setActive("a");
    expect(await rejectedWith(connect(port))).toBe(502);
    await waitFor(() => proxy.connections("a").websockets === 0);
    proxy.setBackends("a", [upstream.backend("web")]);
    expect((await request(port)).body).toBe("still alive");
  });

  it("relays a non-101 answer to the handshake and stays up", async () => {
    const upstream = await startUpstream((_req, res) => {
      res.writeHead(403, { "content-type": "text/plain" });
      res.end("forbidden");
    });
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [upstream.backend("web")]);
    proxy.setActive("a");
    expect(await rejectedWith(connect(port))).toBe(403);
    await waitFor(() => proxy.connections("a").websockets === 0);
    expect((await request(port)).status).toBe(403);
  });

  it("answers 502 to an upgrade when the upstream refuses", async () => {
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [{ id: "dead", host: "127.0.0.1", port: await deadPort(), ready: true }]);
    proxy.setActive("a");
    expect(await rejectedWith(connect(port))).toBe(502);
    await waitFor(() => proxy.connections("a").websockets === 0);
  });

  it("closes the client when the upstream WebSocket goes away", async () => {
    const upstream = await wsUpstream();
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [upstream.backend("web")]);
    proxy.setActive("a");
    const ws = connect(port);
    await opened(ws);
    const closed = new Promise<void>((resolve) => ws.once("close", () => resolve()));
    for (const client of upstream.wss.clients) client.terminate();
    await closed;
    await waitFor(() => proxy.connections("a").websockets === 0);
  });

  it("closeRelease closes its WebSockets and leaves another release's open", async () => {
    const a = await wsUpstream();
    const b = await wsUpstream();
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [a.backend("web")]);
    proxy.setActive("a");
    const onA = connect(port);
    await opened(onA);
    proxy.setBackends("b", [b.backend("web")]);
    proxy.setActive("b");
    const onB = connect(port);
    await opened(onB);
    expect(proxy.connections("a").websockets).toBe(1);
    expect(proxy.connections("b").websockets).toBe(1);
    const closedA = new Promise<void>((resolve) => onA.once("close", () => resolve()));
    await proxy.closeRelease("a");
    await closedA;
    expect(proxy.connections("a")).toEqual({ inflight: 0, websockets: 0 });
    await waitFor(async () => (await a.connections()) === 0);
    onB.send("still here");
    expect(await nextMessage(onB)).toBe("still here");
  });

  it("answers a non-WebSocket upgrade (h2c) as plain HTTP", async () => {
    const upstream = await startUpstream((req, res) => res.end(`plain ${req.headers.upgrade ?? "none"} ${req.headers["http2-settings"] ?? "none"}`));
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [upstream.backend("web")]);
    proxy.setActive("a");
    const reply = await rawExchange(port, "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n", /plain \S+ \S+$/);
    expect(reply).toMatch(/^HTTP\/1.1 200 /);
    expect(reply).toMatch(/plain none none/);
  });
});
