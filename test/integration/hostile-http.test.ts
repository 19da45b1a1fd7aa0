// Hostile HTTP traffic through a real daemon: malformed requests, oversized headers, trailers,
// client aborts mid-response, and 300 slowloris clients. After every case the daemon is alive
// and still serves its release.
import http from "node:http";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { get } from "../helpers/load.js";
import { appSockets, expectDaemonServes, quickStatus, rawExchange, timedGet } from "../helpers/raw.js";

const HEADERS_TIMEOUT_MS = 1500;
const REQUEST_TIMEOUT_MS = 2500;
const KEEP_ALIVE_TIMEOUT_MS = 1000;

let daemon: TestDaemon;
let appPort: number;

beforeAll(async () => {
  daemon = await startDaemon({
    proxy: { headersTimeoutMs: HEADERS_TIMEOUT_MS, requestTimeoutMs: REQUEST_TIMEOUT_MS, keepAliveTimeoutMs: KEEP_ALIVE_TIMEOUT_MS },
  });
  await daemon.applyRelease("v1");
  appPort = (await daemon.status()).processes[0].port;
});

afterAll(async () => {
  await daemon?.stop();
});

describe("hostile HTTP through the daemon", () => {
  it("answers malformed requests with 4xx and keeps serving", async () => {
    const cases: [string, string][] = [
      ["garbage request line", "GARBAGE\r\n\r\n"],
      ["NUL in the target", "GET /\0 HTTP/1.1\r\nHost: x\r\n\r\n"],
      ["unknown HTTP version", "GET / HTTP/9.9\r\nHost: x\r\n\r\n"],
      ["header without a colon", "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"],
      ["control byte in a header value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n"],
      ["two Content-Lengths", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"],
      ["Content-Length with chunked", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"],
      ["TLS handshake on the plain port", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"],
      ["a 20 kB request line", `GET /${"a".repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`],
    ];
    for (const [name, bytes] of cases) {
      const { text } = await rawExchange(daemon.proxyPort, bytes);
      expect(text, name).toMatch(/^HTTP\/1\.1 4\d\d /);
    }
    // A chunked body that turns bad after the request went upstream: the exchange is torn down.
    const badChunk = await rawExchange(daemon.proxyPort, "POST /slow?ms=200 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n");
    expect(badChunk.closedByServer).toBe(true);
    expect(badChunk.text).not.toMatch(/^HTTP\/1\.1 [25]/);
    await expectDaemonServes(daemon, "v1");
    await until(async () => (await quickStatus(daemon.socket)).releases[0].connections.inflight === 0, 5000, "no request left in flight");
  });

  it("answers a 100 kB header with 431", async () => {
    const { text } = await rawExchange(daemon.proxyPort, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"b".repeat(100_000)}\r\n\r\n`);
    expect(text).toMatch(/^HTTP\/1\.1 431 /);
    await expectDaemonServes(daemon, "v1");
  });

  it("forwards requests announcing trailers and answers responses carrying them", async () => {
    const request = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\nTE: trailers\r\nConnection: close\r\n\r\n" + "5\r\nhello\r\n0\r\nX-Sum: 5\r\n\r\n";
    const posted = await rawExchange(daemon.proxyPort, request);
    expect(posted.text).toMatch(/^HTTP\/1\.1 200 /);
    const echoed = JSON.parse(posted.text.slice(posted.text.indexOf("\r\n\r\n") + 4)) as { headers: Record<string, string> };
    // hop-by-hop: neither the announcement nor TE reaches the app
    expect(echoed.headers.trailer).toBeUndefined();
    expect(echoed.headers.te).toBeUndefined();

    const res = await get(daemon.proxyPort, "/trailers");
    expect(res.status).toBe(200);
    expect(res.body).toBe("ok");
    // Trailers are not relayed, so the response must not announce any.
    expect(res.headers.trailer).toBeUndefined();
    await expectDaemonServes(daemon, "v1");
  });

  it("answers Expect: 100-continue, pipelined requests and an h2c upgrade, and hides the app's 103", async () => {
    // 100 Continue comes before any body byte is sent (the body never is: see what arrives in 1 s).
    const expecting = await rawExchange(daemon.proxyPort, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n", 1000);
    expect(expecting.text).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\n$/);
    const continued = await rawExchange(daemon.proxyPort, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\nConnection: close\r\n\r\nhi");
    expect(continued.text).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
    expect(JSON.parse(continued.text.slice(continued.text.lastIndexOf("\r\n\r\n") + 4)).headers.expect).toBeUndefined();

    const pipelined = await rawExchange(daemon.proxyPort, ["/a", "/b", "/c"].map((p, i) => `GET ${p} HTTP/1.1\r\nHost: x\r\n${i === 2 ? "Connection: close\r\n" : ""}\r\n`).join(""));
    expect([...pipelined.text.matchAll(/"path":"(\/[abc])"/g)].map((m) => m[1])).toEqual(["/a", "/b", "/c"]);

    const h2c = await rawExchange(daemon.proxyPort, "GET /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n");
    expect(h2c.text).toMatch(/^HTTP\/1\.1 200 /);
    const echoed = JSON.parse(h2c.text.slice(h2c.text.indexOf("\r\n\r\n") + 4)) as { headers: Record<string, string> };
    expect(echoed.headers.upgrade).toBeUndefined();
    expect(echoed.headers["http2-settings"]).toBeUndefined();

    // Informational answers are not relayed: the client sees the final 200 only.
    const hinted = await rawExchange(daemon.proxyPort, "GET /early-hints HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(hinted.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(hinted.text.endsWith("ok")).toBe(true);
    await expectDaemonServes(daemon, "v1");
  });

  it("destroys the upstream request when a client aborts mid-response", async () => {
    await until(async () => (await appSockets(appPort)).streaming === 0, 5000, "no stream yet");
    const before = (await appSockets(appPort)).connections;
    const aborted = await Promise.all(
      Array.from(
        { length: 20 },
        () =>
          new Promise<number>((resolve, reject) => {
            const req = http.get({ host: "127.0.0.1", port: daemon.proxyPort, path: "/stream?ms=50", agent: false }, (res) => {
              res.once("data", () => {
                req.destroy();
                resolve(res.statusCode ?? 0);
              });
            });
            req.on("error", (error) => (req.destroyed ? undefined : reject(error)));
          }),
      ),
    );
    expect(aborted.every((status) => status === 200)).toBe(true);
    // and 10 more that give up before the response starts
    await Promise.all(
      Array.from(
        { length: 10 },
        () =>
          new Promise<void>((resolve) => {
            const req = http.get({ host: "127.0.0.1", port: daemon.proxyPort, path: "/slow?ms=3000", agent: false });
            req.on("error", () => resolve());
            setTimeout(() => req.destroy(), 200);
          }),
      ),
    );
    // Without the upstream abort the app would stream to nobody, forever.
    await until(async () => (await appSockets(appPort)).streaming === 0, 3000, "every upstream stream ended");
    // undici may keep one fresh idle connection per pool (nodejs/undici#5845); nothing more stays open.
    await until(async () => (await appSockets(appPort)).connections <= Math.max(before, 1) + 1, 8000, "upstream sockets closed");
    expect((await quickStatus(daemon.socket)).releases[0].connections.inflight).toBe(0);
    await expectDaemonServes(daemon, "v1");
  });

  it("keeps answering promptly while 300 slow clients hold half-sent requests, then cuts them at the timeouts", async () => {
    // A long response is not a slow request: requestTimeoutMs must not cut it.
    const longResponse = countStreamedLines(daemon.proxyPort, REQUEST_TIMEOUT_MS + 1000);
    const opened = Date.now();
    const slow = Array.from({ length: 300 }, (_, i) => holdSlow(daemon.proxyPort, i % 3 === 0 ? "body" : "headers"));
    await Promise.all(slow.map((s) => s.connected));
    expect(slow.filter((s) => s.closedAt !== null)).toHaveLength(0);

    const latencies: number[] = [];
    for (let round = 0; round < 5; round++) {
      const results = await Promise.all(Array.from({ length: 10 }, () => timedGet(daemon.proxyPort)));
      for (const r of results) {
        expect(r.status).toBe(200);
        latencies.push(r.ms);
      }
    }
    expect(Math.max(...latencies)).toBeLessThan(1000);

    // Node sweeps expired requests every min(timeout/2, 1 s): every slow client is cut within ~1.5x its limit.
    await until(() => slow.every((s) => s.closedAt !== null), REQUEST_TIMEOUT_MS * 1.5 + 3000, "every slow client cut");
    const headerCut = slow.filter((s) => s.kind === "headers").map((s) => (s.closedAt as number) - opened);
    const bodyCut = slow.filter((s) => s.kind === "body").map((s) => (s.closedAt as number) - opened);
    expect(Math.min(...headerCut)).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 100);
    expect(Math.max(...headerCut)).toBeLessThan(HEADERS_TIMEOUT_MS * 1.5 + 1500);
    expect(Math.min(...bodyCut)).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 100);
    expect(Math.max(...bodyCut)).toBeLessThan(REQUEST_TIMEOUT_MS * 1.5 + 1500);
    expect(slow.filter((s) => s.kind === "headers").every((s) => /^HTTP\/1\.1 408 /.test(s.received))).toBe(true);

    // The half-sent bodies had gone upstream: those requests are destroyed there too.
    await until(async () => (await quickStatus(daemon.socket)).releases[0].connections.inflight === 0, 5000, "no request left in flight");
    await until(async () => (await appSockets(appPort)).connections <= 2, 8000, "upstream sockets of the cut requests closed");
    expect(await longResponse).toBeGreaterThan((REQUEST_TIMEOUT_MS + 1000) / 100 - 8);
    await expectDaemonServes(daemon, "v1");
  });

  it("closes an idle keep-alive connection after keepAliveTimeoutMs", async () => {
    const socket = net.connect(daemon.proxyPort, "127.0.0.1");
    socket.on("error", () => undefined);
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    await new Promise((resolve) => socket.once("data", resolve));
    const answeredAt = Date.now();
    await new Promise((resolve) => socket.once("close", resolve));
    const idle = Date.now() - answeredAt;
    expect(idle).toBeGreaterThanOrEqual(KEEP_ALIVE_TIMEOUT_MS - 100);
    expect(idle).toBeLessThan(KEEP_ALIVE_TIMEOUT_MS + 1500);
  });
});

// Reads /stream (a line every 100 ms) through the proxy for `ms`, then hangs up; resolves with the line count.
function countStreamedLines(port: number, ms: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/stream?ms=100", agent: false }, (res) => {
      let count = 0;
      res.on("data", (chunk: Buffer) => (count += chunk.toString().split("\n").length - 1));
      res.on("close", () => resolve(count));
      setTimeout(() => req.destroy(), ms);
    });
    req.on("error", (error) => (req.destroyed ? undefined : reject(error)));
  });
}

interface SlowClient {
  kind: "headers" | "body";
  connected: Promise<void>;
  closedAt: number | null;
  received: string;
}

// A slowloris client: headers without their final blank line, or complete headers and a tenth of the body.
function holdSlow(port: number, kind: "headers" | "body"): SlowClient {
  const client: SlowClient = { kind, connected: Promise.resolve(), closedAt: null, received: "" };
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => undefined);
  socket.on("data", (chunk) => (client.received += chunk.toString("latin1")));
  socket.on("close", () => (client.closedAt = Date.now()));
  client.connected = new Promise((resolve) =>
    socket.once("connect", () => {
      if (kind === "headers") socket.write("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n");
      else socket.write(`POST /slow?ms=60000 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n${"x".repeat(100)}`);
      resolve();
    }),
  );
  return client;
}
