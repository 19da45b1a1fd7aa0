// Forwarded headers from trusted peers only: X-Forwarded-* (and Forwarded, X-Real-IP) are kept
// from peers in proxy.trustedProxies and replaced by what the proxy sees from anyone else, over
// IPv4, IPv6 and IPv4-mapped addresses, for HTTP and for WebSocket handshakes.
import type http from "node:http";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { closeAll, onCleanup, startProxy, startUpstream } from "./helpers.js";

afterEach(closeAll);

const SPOOFED = {
  "x-forwarded-for": "203.0.113.66",
  "x-forwarded-proto": "https",
  "x-forwarded-host": "bank.example",
  "x-forwarded-port": "443",
  "x-forwarded-prefix": "/admin",
  forwarded: "for=203.0.113.66;proto=https",
  "x-real-ip": "203.0.113.66",
};

/** A proxy (listening on `host`) in front of an upstream that answers with the request headers, and one that records WebSocket handshakes. */
async function headerEcho(trustedProxies: string[] | undefined, host = "127.0.0.1") {
  const handshakes: http.IncomingHttpHeaders[] = [];
  const upstream = await startUpstream((req, res) => res.end(JSON.stringify(req.headers)));
  const wss = new WebSocketServer({ server: upstream.server });
  wss.on("connection", (socket, req) => {
    handshakes.push(req.headers);
    socket.close();
  });
  onCleanup(() => new Promise<void>((resolve) => wss.close(() => resolve())));
  const { proxy, port } = await startProxy({ host, ...(trustedProxies === undefined ? {} : { trustedProxies }) });
  proxy.setBackends("a", [upstream.backend("web")]);
  proxy.setActive("a");
  return { port, handshakes };
}

/** GET / with `headers`, from `localAddress` to `host`:`port`; resolves with the headers the app saw. */
function seenBy(host: string, port: number, headers: Record<string, string>): Promise<http.IncomingHttpHeaders> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let text = "";
    socket.on("data", (chunk) => (text += chunk.toString()));
    socket.on("close", () => resolve(JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)) as http.IncomingHttpHeaders));
    socket.on("error", reject);
    const lines = Object.entries({ host: "shop.example", ...headers, connection: "close" }).map(([k, v]) => `${k}: ${v}\r\n`);
    socket.write(`GET / HTTP/1.1\r\n${lines.join("")}\r\n`);
  });
}

function handshake(url: string, headers: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on("close", () => resolve());
    ws.on("error", reject);
  });
}

function ipv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(0, "::1", () => server.close(() => resolve(true)));
  });
}

describe("X-Forwarded-* and trusted peers", () => {
  it("keeps and appends a loopback peer's headers by default", async () => {
    const { port, handshakes } = await headerEcho(undefined);
    const seen = await seenBy("127.0.0.1", port, SPOOFED);
    expect(seen["x-forwarded-for"]).toBe("203.0.113.66, 127.0.0.1");
    expect(seen["x-forwarded-proto"]).toBe("https");
    expect(seen["x-forwarded-host"]).toBe("bank.example");
    expect(seen["x-forwarded-port"]).toBe("443");
    expect(seen.forwarded).toBe("for=203.0.113.66;proto=https");
    expect(seen["x-real-ip"]).toBe("203.0.113.66");
    await handshake(`ws://127.0.0.1:${port}/ws`, { ...SPOOFED, host: "shop.example" });
    expect(handshakes[0]?.["x-forwarded-for"]).toBe("203.0.113.66, 127.0.0.1");
    expect(handshakes[0]?.["x-forwarded-proto"]).toBe("https");
    expect(handshakes[0]?.["x-real-ip"]).toBe("203.0.113.66");
  });

  it("replaces what an untrusted peer claims with what the proxy sees, on HTTP and WebSocket", async () => {
    const { port, handshakes } = await headerEcho(["10.0.0.0/8", "2001:db8::/32"]);
    const seen = await seenBy("127.0.0.1", port, SPOOFED);
    expect(seen["x-forwarded-for"]).toBe("127.0.0.1");
    expect(seen["x-forwarded-proto"]).toBe("http");
    expect(seen["x-forwarded-host"]).toBe("shop.example");
    for (const name of ["x-forwarded-port", "x-forwarded-prefix", "forwarded", "x-real-ip"]) expect(seen[name], name).toBeUndefined();
    expect(seen.host).toBe("shop.example");

    await handshake(`ws://127.0.0.1:${port}/ws`, { ...SPOOFED, host: "shop.example" });
    const ws = handshakes[0];
    expect(ws?.["x-forwarded-for"]).toBe("127.0.0.1");
    expect(ws?.["x-forwarded-proto"]).toBe("http");
    expect(ws?.["x-forwarded-host"]).toBe("shop.example");
    for (const name of ["x-forwarded-port", "x-forwarded-prefix", "forwarded", "x-real-ip"]) expect(ws?.[name], name).toBeUndefined();
  });

  it("trusts nobody with an empty list", async () => {
    const { port } = await headerEcho([]);
    const seen = await seenBy("127.0.0.1", port, { "X-Forwarded-For": "198.51.100.1", "X-FORWARDED-PROTO": "https" });
    expect(seen["x-forwarded-for"]).toBe("127.0.0.1");
    expect(seen["x-forwarded-proto"]).toBe("http");
  });

  it("matches IPv4-mapped peers of a dual-stack listener against IPv4 blocks", async (ctx) => {
    if (!(await ipv6Loopback())) ctx.skip("no IPv6 on this machine: the dual-stack listener cannot be tested");
    const trusted = await headerEcho(["127.0.0.0/8"], "::");
    const kept = await seenBy("127.0.0.1", trusted.port, { "x-forwarded-for": "203.0.113.9" });
    expect(kept["x-forwarded-for"]).toBe("203.0.113.9, ::ffff:127.0.0.1");
    const untrusted = await headerEcho(["::1/128"], "::");
    const replaced = await seenBy("127.0.0.1", untrusted.port, { "x-forwarded-for": "203.0.113.9" });
    expect(replaced["x-forwarded-for"]).toBe("::ffff:127.0.0.1");
  });

  it("matches IPv6 peers against IPv6 blocks only", async (ctx) => {
    if (!(await ipv6Loopback())) ctx.skip("no IPv6 loopback (::1) on this machine");
    const trusted = await headerEcho(["::1/128"], "::1");
    expect((await seenBy("::1", trusted.port, { "x-forwarded-for": "203.0.113.9" }))["x-forwarded-for"]).toBe("203.0.113.9, ::1");
    const v4only = await headerEcho(["127.0.0.0/8"], "::1");
    expect((await seenBy("::1", v4only.port, { "x-forwarded-for": "203.0.113.9" }))["x-forwarded-for"]).toBe("::1");
  });
});
