// HTTP at the edge (RFC 9110/9112), with raw sockets: non-WebSocket upgrades served as plain
// requests (body included, connection kept), Host that Connection cannot remove and that every
// forwarded request carries, absolute-form targets sent in origin form, and transfer codings
// other than chunked refused with 501.
import type http from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { closeAll, onCleanup, rawExchange, startProxy, startUpstream } from "./helpers.js";

afterEach(closeAll);

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

/** An upstream that records every request it gets and answers it with its JSON. */
async function recordingProxy(options: Parameters<typeof startProxy>[0] = {}) {
  const seen: Seen[] = [];
  const upstream = await startUpstream((req, res) => {
    const entry: Seen = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, rawHeaders: req.rawHeaders, body: "" };
    seen.push(entry);
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      entry.body = Buffer.concat(chunks).toString();
      res.end(JSON.stringify(entry));
    });
  });
  const started = await startProxy(options);
  started.proxy.setBackends("r1", [upstream.backend("web")]);
  started.proxy.setActive("r1");
  return { ...started, seen, upstream };
}

function byUrl(list: Seen[]): Seen[] {
  return [...list].sort((a, b) => a.url.localeCompare(b.url));
}

describe("a non-WebSocket Upgrade is a plain request", () => {
  it("serves h2c with a Content-Length body and keeps the connection for a pipelined request", async () => {
    const { port, seen } = await recordingProxy();
    const raw = await rawExchange(
      port,
      "POST /h2c HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: 11\r\n\r\nhello world" +
        "GET /h2c-again HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n" +
        "GET /next HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n",
    );
    expect(raw.match(/HTTP\/1\.1 200 /g)).toHaveLength(3);
    // pipelined requests reach the app concurrently, in either order
    const [h2c, again, next] = byUrl(seen);
    expect([h2c, again, next].map((s) => [s?.method, s?.url, s?.body])).toEqual([
      ["POST", "/h2c", "hello world"],
      ["GET", "/h2c-again", ""],
      ["GET", "/next", ""],
    ]);
    expect(h2c?.headers.upgrade).toBeUndefined();
    expect(h2c?.headers["http2-settings"]).toBeUndefined();
    expect(h2c?.headers.host).toBe("app.example");
  });

  it("answers pipelined requests in order around an h2c request, and a slow one after it outlives the keep-alive timer", async () => {
    const seen: string[] = [];
    const upstream = await startUpstream((req, res) => {
      seen.push(req.url ?? "");
      req.resume();
      const delay = Number(new URL(req.url ?? "/", "http://x").searchParams.get("ms") ?? 0);
      setTimeout(() => res.end(`done ${req.url};`), delay);
    });
    const { proxy, port } = await startProxy({ timeouts: { keepAliveTimeoutMs: 300 } });
    proxy.setBackends("a", [upstream.backend("web")]);
    proxy.setActive("a");
    const raw = await rawExchange(port, "GET /first?ms=400 HTTP/1.1\r\nHost: h\r\n\r\n" + "GET /h2c HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n" + "GET /slow?ms=900 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    expect([...raw.matchAll(/done (\S+?);/g)].map((m) => m[1])).toEqual(["/first?ms=400", "/h2c", "/slow?ms=900"]);
    expect(seen).toHaveLength(3);
  });

  it("serves an unknown upgrade with a chunked body", async () => {
    const { port, seen } = await recordingProxy();
    const raw = await rawExchange(
      port,
      "PUT /up HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: foo/2\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n" + "GET /after HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    expect(raw).toMatch(/^HTTP\/1\.1 200 /);
    const [after, up] = byUrl(seen);
    expect([up, after].map((s) => [s?.method, s?.url, s?.body])).toEqual([
      ["PUT", "/up", "hello world"],
      ["GET", "/after", ""],
    ]);
    expect(up?.headers.upgrade).toBeUndefined();
  });

  it("still upgrades a WebSocket handshake", async () => {
    const upstream = await startUpstream((_req, res) => res.end("plain"));
    const wss = new WebSocketServer({ server: upstream.server });
    onCleanup(() => new Promise<void>((resolve) => wss.close(() => resolve())));
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [upstream.backend("web")]);
    proxy.setActive("a");
    const raw = await rawExchange(port, "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", /\r\n\r\n/);
    expect(raw).toMatch(/^HTTP\/1\.1 101 /);
  });
});

describe("Host", () => {
  it("survives a Connection header that names it, on HTTP and on WebSocket handshakes", async () => {
    const { port, seen } = await recordingProxy();
    await rawExchange(port, "GET /a HTTP/1.1\r\nHost: app.example\r\nConnection: Host, X-Drop\r\nX-Drop: 1\r\n\r\n", /\}$/);
    await rawExchange(port, "GET /b HTTP/1.1\r\nHost: app.example\r\nConnection: close, host\r\n\r\n");
    expect(seen.map((s) => s.headers.host)).toEqual(["app.example", "app.example"]);
    expect(seen[0]?.headers["x-drop"]).toBeUndefined();
    expect(seen.every((s) => s.rawHeaders.filter((name) => name.toLowerCase() === "host").length === 1)).toBe(true);

    const upstream = await startUpstream((_req, res) => res.end());
    const handshakes: http.IncomingHttpHeaders[] = [];
    const wss = new WebSocketServer({ server: upstream.server });
    wss.on("connection", (_socket, req) => handshakes.push(req.headers));
    onCleanup(() => new Promise<void>((resolve) => wss.close(() => resolve())));
    const ws = await startProxy();
    ws.proxy.setBackends("a", [upstream.backend("web")]);
    ws.proxy.setActive("a");
    const raw = await rawExchange(ws.port, "GET /ws HTTP/1.1\r\nHost: chat.example\r\nUpgrade: websocket\r\nConnection: Upgrade, Host\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", /\r\n\r\n/);
    expect(raw).toMatch(/^HTTP\/1\.1 101 /);
    expect(handshakes[0]?.host).toBe("chat.example");
  });

  it("is added for an HTTP/1.0 request without one: the address the client connected to", async () => {
    const { port, seen } = await recordingProxy();
    const raw = await rawExchange(port, "GET /old HTTP/1.0\r\n\r\n");
    expect(raw).toMatch(/^HTTP\/1\.1 200 /);
    expect(seen[0]?.headers.host).toBe(`127.0.0.1:${port}`);
    expect(seen[0]?.headers["x-forwarded-host"]).toBe(`127.0.0.1:${port}`);
  });

  it("answers 400 to several Host lines or an invalid Host, without reaching the app", async () => {
    const { port, seen } = await recordingProxy();
    const cases = ["Host: a.example\r\nHost: b.example", "Host: a b", "Host: a/b", "Host: ", "Host: a.example:80x", "Host: [::1", "Host: a@b"];
    for (const host of cases) {
      const raw = await rawExchange(port, `GET / HTTP/1.1\r\n${host}\r\n\r\n`);
      expect(raw, host).toMatch(/^HTTP\/1\.1 400 /);
      expect(raw, host).toMatch(/\r\nConnection: close\r\n/i);
    }
    for (const host of ["a.example", "a.example:8080", "[::1]:8080", "127.0.0.1", "xn--bcher-kva.example"]) {
      expect(await rawExchange(port, `GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`), host).toMatch(/^HTTP\/1\.1 200 /);
    }
    expect(seen).toHaveLength(5);
  });
});

describe("absolute-form request targets", () => {
  it("go upstream in origin form, with Host taken from the URI", async () => {
    const { port, seen } = await recordingProxy();
    const targets: Array<[string, string, string]> = [
      ["http://shop.example:8080/cart?id=7", "/cart?id=7", "shop.example:8080"],
      ["HTTP://Shop.Example", "/", "Shop.Example"],
      ["https://shop.example?q=1", "/?q=1", "shop.example"],
    ];
    for (const [target] of targets) {
      expect(await rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: ignored.example\r\nConnection: close\r\n\r\n`), target).toMatch(/^HTTP\/1\.1 200 /);
    }
    expect(seen.map((s) => [s.url, s.headers.host, s.headers["x-forwarded-host"]])).toEqual(targets.map(([, path, host]) => [path, host, host]));
    expect(seen.every((s) => s.rawHeaders.filter((name) => name.toLowerCase() === "host").length === 1)).toBe(true);
  });

  it("answers 400 to a scheme other than http(s), a userinfo part or a bad authority", async () => {
    const { port, seen } = await recordingProxy();
    for (const target of ["ftp://files.example/x", "http://user:secret@shop.example/", "http:///nohost", "http://a b/", "*"]) {
      const raw = await rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n`);
      expect(raw, target).toMatch(/^HTTP\/1\.1 400 /);
    }
    expect(seen).toHaveLength(0);
  });

  it("rewrite a WebSocket handshake the same way", async () => {
    const upstream = await startUpstream((_req, res) => res.end());
    const handshakes: Array<{ url: string; host: string | undefined }> = [];
    const wss = new WebSocketServer({ server: upstream.server });
    wss.on("connection", (_socket, req) => handshakes.push({ url: req.url ?? "", host: req.headers.host }));
    onCleanup(() => new Promise<void>((resolve) => wss.close(() => resolve())));
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [upstream.backend("web")]);
    proxy.setActive("a");
    const raw = await rawExchange(
      port,
      "GET http://chat.example/room?id=3 HTTP/1.1\r\nHost: other\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      /\r\n\r\n/,
    );
    expect(raw).toMatch(/^HTTP\/1\.1 101 /);
    expect(handshakes).toEqual([{ url: "/room?id=3", host: "chat.example" }]);
  });
});

describe("transfer codings", () => {
  it("answer 501 to any coding but chunked, and 400 to Transfer-Encoding on HTTP/1.0, without reaching the app", async () => {
    const { port, seen } = await recordingProxy();
    const chunkedBody = "5\r\nhello\r\n0\r\n\r\n";
    const cases: Array<[string, string, RegExp]> = [
      ["gzip, chunked", "HTTP/1.1", /^HTTP\/1\.1 501 /],
      ["deflate,chunked", "HTTP/1.1", /^HTTP\/1\.1 501 /],
      ["gzip\r\nTransfer-Encoding: chunked", "HTTP/1.1", /^HTTP\/1\.1 501 /],
      ["chunked", "HTTP/1.0", /^HTTP\/1\.1 400 /],
    ];
    for (const [codings, version, expected] of cases) {
      const raw = await rawExchange(port, `POST /upload ${version}\r\nHost: h\r\nTransfer-Encoding: ${codings}\r\n\r\n${chunkedBody}`);
      expect(raw, codings).toMatch(expected);
      expect(raw, codings).toMatch(/\r\nConnection: close\r\n/i);
    }
    expect(seen).toHaveLength(0);
    const ok = await rawExchange(port, `POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n${chunkedBody}`);
    expect(ok).toMatch(/^HTTP\/1\.1 200 /);
    expect(seen[0]?.body).toBe("hello");
  });
});
