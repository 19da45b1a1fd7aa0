// Timeouts at the proxy: a request body that stalls for bodyTimeoutMs gets 408 and its upstream
// request is aborted (a slow but steady body, a slow upstream and backpressure are not stalls);
// an upstream that takes a WebSocket handshake and never answers gets the client a 502 after
// upgradeTimeoutMs and stops counting against its release.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import type http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { closeAll, onCleanup, rawExchange, request, sleep, startProxy, startUpstream, waitFor } from "./helpers.js";

afterEach(closeAll);

// generous: the test client shares its process (and a busy CPU) with the proxy
const BODY_TIMEOUT_MS = 800;

/** An upstream that reads the whole body, then answers with its length (after `?ms=N`); it records aborted requests. */
async function bodyUpstream() {
  const events: string[] = [];
  const upstream = await startUpstream((req, res) => {
    let length = 0;
    const delay = Number(new URL(req.url ?? "/", "http://x").searchParams.get("ms") ?? 0);
    const wait = Number(new URL(req.url ?? "/", "http://x").searchParams.get("waitMs") ?? 0);
    const read = () => {
      req.on("data", (chunk: Buffer) => (length += chunk.length));
      req.on("end", () => setTimeout(() => res.end(`got ${length}`), delay));
    };
    req.on("close", () => {
      if (!req.complete) events.push(`aborted ${req.url}`);
    });
    if (wait > 0) setTimeout(read, wait);
    else read();
  });
  return { upstream, events };
}

async function proxyWithBodyTimeout(extra: { bodyTimeoutMs?: number } = {}) {
  const { upstream, events } = await bodyUpstream();
  const started = await startProxy({ timeouts: { bodyTimeoutMs: BODY_TIMEOUT_MS, ...extra } });
  started.proxy.setBackends("a", [upstream.backend("web")]);
  started.proxy.setActive("a");
  return { ...started, events };
}

// Connects to the proxy (port in argv), prints its own port, sends a 15-byte body in three parts
// (at once, after 600 ms, after 1300 ms) and prints the answer.
const STARVED_CLIENT = `
const s = require("net").connect(Number(process.argv[1]), "127.0.0.1", () => {
  console.log("port " + s.localPort);
  s.write("POST /starved HTTP/1.1\\r\\nHost: h\\r\\nContent-Length: 15\\r\\nConnection: close\\r\\n\\r\\n12345");
  setTimeout(() => s.write("67890"), 600);
  setTimeout(() => s.write("abcde"), 1300);
});
let answer = "";
s.on("data", (chunk) => (answer += chunk));
s.on("close", () => console.log(answer));
s.on("error", (error) => console.log(error.message));
setTimeout(() => s.destroy(), 15000).unref();
`;

/** Bytes the kernel holds unread on the proxy's side of one loopback connection (/proc/net/tcp rx_queue). */
function unreadBytes(proxyPort: number, clientPort: number): number {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, "0");
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields[1]?.endsWith(`:${hex(proxyPort)}`) && fields[2]?.endsWith(`:${hex(clientPort)}`)) return Number.parseInt(fields[4]?.split(":")[1] ?? "0", 16);
  }
  return 0;
}

/** Sends the head and `first` body bytes, then nothing; resolves with the answer and when it came. */
function stallBody(port: number, path: string, first: string, contentLength: number): Promise<{ text: string; ms: number }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    let text = "";
    const started = Date.now();
    socket.on("data", (chunk) => (text += chunk.toString("latin1")));
    socket.on("close", () => resolve({ text, ms: Date.now() - started }));
    socket.on("error", () => undefined);
    // bounded: without a body timeout nothing would ever close this connection
    setTimeout(() => socket.destroy(), BODY_TIMEOUT_MS + 8000).unref();
    socket.write(`POST ${path} HTTP/1.1\r\nHost: h\r\nContent-Length: ${contentLength}\r\n\r\n${first}`);
  });
}

describe("request body timeout", () => {
  it("answers 408 to a body that stalls and aborts the request upstream", async () => {
    const { port, proxy, events } = await proxyWithBodyTimeout();
    const { text, ms } = await stallBody(port, "/upload", "x".repeat(100), 1000);
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(text).toMatch(/\r\nConnection: close\r\n/i);
    expect(ms).toBeGreaterThanOrEqual(BODY_TIMEOUT_MS - 50);
    expect(ms).toBeLessThan(BODY_TIMEOUT_MS + 3000);
    await waitFor(() => events.includes("aborted /upload"));
    expect(proxy.connections("a").inflight).toBe(0);
  });

  it("lets a slow but steady body through, and a slow answer after the body", async () => {
    const { port } = await proxyWithBodyTimeout();
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1");
      let text = "";
      socket.on("data", (chunk) => (text += chunk.toString()));
      socket.on("close", () => resolve(text));
      socket.on("error", reject);
      // 8 bytes, one every BODY_TIMEOUT_MS/4: twice the timeout in all, never silent for long
      socket.write(`POST /steady?ms=${BODY_TIMEOUT_MS * 2} HTTP/1.1\r\nHost: h\r\nContent-Length: 8\r\nConnection: close\r\n\r\n`);
      let sent = 0;
      const timer = setInterval(() => {
        socket.write("y");
        if (++sent === 8) clearInterval(timer);
      }, BODY_TIMEOUT_MS / 4);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toMatch(/got 8$/);
  });

  it("does not count the time the upstream keeps the body waiting", async () => {
    const { port } = await proxyWithBodyTimeout();
    // 16 MB the app starts reading only after 3x the timeout: backpressure, not a stalled client
    const reply = await request(port, { method: "POST", path: `/late?waitMs=${BODY_TIMEOUT_MS * 3}`, body: Buffer.alloc(16 * 1024 * 1024, 1) });
    expect(reply.status).toBe(200);
    expect(reply.body).toBe(`got ${16 * 1024 * 1024}`);
  });

  it("does not take bytes that arrived while the proxy was starved of CPU for silence", async () => {
    const { port } = await proxyWithBodyTimeout();
    // The client is another process, so it keeps sending while this one (the proxy) is busy.
    const client = spawn(process.execPath, ["-e", STARVED_CLIENT, String(port)], { stdio: ["ignore", "pipe", "inherit"] });
    onCleanup(() => void client.kill("SIGKILL"));
    let output = "";
    client.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    await waitFor(() => /^port \d+\n/.test(output), 10_000);
    const clientPort = Number(/^port (\d+)/.exec(output)?.[1]);
    await sleep(100);
    // Busy (as a starved daemon is) until the timeout has passed since the proxy last read a byte
    // and the kernel holds bytes the client sent meanwhile: when this turn ends, the next one runs
    // the due timer before it reads them.
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        const from = Date.now();
        while (Date.now() - from < BODY_TIMEOUT_MS + 100 || unreadBytes(port, clientPort) === 0) if (Date.now() - from > 10_000) break;
        resolve();
      }),
    );
    await new Promise((resolve) => client.once("exit", resolve));
    expect(output).toMatch(/HTTP\/1\.1 200 [^]*got 15/);
  });

  it("keeps the connection usable after a body, beyond the body timeout", async () => {
    const { port } = await proxyWithBodyTimeout();
    const replies = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1");
      let text = "";
      socket.on("data", (chunk) => {
        text += chunk.toString();
        if (text.includes("got 2") && !text.includes("got 3")) {
          // idle for longer than bodyTimeoutMs (but not keepAliveTimeoutMs), then another request
          setTimeout(() => socket.write("POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"), BODY_TIMEOUT_MS * 2);
        }
      });
      socket.on("close", () => resolve(text));
      socket.on("error", reject);
      socket.write("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab");
    });
    expect(replies.match(/HTTP\/1\.1 200 /g)).toHaveLength(2);
  });

  it("closes a connection whose body stalls after the app already answered, and keeps running", async () => {
    const upstream = await startUpstream((_req, res) => res.end("early"));
    const { proxy, port } = await startProxy({ timeouts: { bodyTimeoutMs: BODY_TIMEOUT_MS, keepAliveTimeoutMs: 300 } });
    proxy.setBackends("a", [upstream.backend("web")]);
    proxy.setActive("a");
    const { text, ms } = await stallBody(port, "/early", "x".repeat(10), 100);
    expect(text).toMatch(/^HTTP\/1\.1 200 [^]*early$/);
    expect(ms).toBeLessThan(BODY_TIMEOUT_MS + 3000);
    // the proxy survived the timer firing on a request whose socket was already detached
    expect((await request(port)).body).toBe("early");
  });

  it("is off with bodyTimeoutMs: 0", async () => {
    const { port } = await proxyWithBodyTimeout({ bodyTimeoutMs: 0 });
    const text = await new Promise<string>((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      let received = "";
      socket.on("data", (chunk) => (received += chunk.toString()));
      socket.on("error", () => undefined);
      socket.write("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nConnection: close\r\n\r\na");
      setTimeout(() => socket.write("b"), BODY_TIMEOUT_MS * 2);
      socket.on("close", () => resolve(received));
    });
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
  });
});

describe("WebSocket handshake timeout", () => {
  /** An upstream that accepts TCP connections, reads what comes and never answers a byte. */
  async function silentUpstream(): Promise<{ port: number; open: () => number }> {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => undefined);
      socket.resume();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    onCleanup(() => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    });
    return { port: (server.address() as AddressInfo).port, open: () => sockets.size };
  }

  it("answers 502 when the app takes the handshake and never answers, and stops counting it", async () => {
    const silent = await silentUpstream();
    const errors: string[] = [];
    const { proxy, port } = await startProxy({ timeouts: { upgradeTimeoutMs: 500 }, onError: (message) => errors.push(message) });
    proxy.setBackends("a", [{ id: "web", host: "127.0.0.1", port: silent.port, ready: true }]);
    proxy.setActive("a");
    const started = Date.now();
    const pending = rawExchange(port, "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    await waitFor(() => silent.open() === 1);
    expect(proxy.connections("a").websockets).toBe(1);
    const answer = await pending;
    const ms = Date.now() - started;
    expect(answer).toMatch(/^HTTP\/1\.1 502 /);
    expect(ms).toBeGreaterThanOrEqual(450);
    expect(ms).toBeLessThan(3500);
    expect(proxy.connections("a").websockets).toBe(0);
    expect(errors).toContain("websocket upstream did not answer the handshake in time");
    await waitFor(() => silent.open() === 0);
  });

  it("never cuts a WebSocket that was answered in time", async () => {
    const upstream = await startUpstream((_req, res: http.ServerResponse) => res.end());
    const wss = new WebSocketServer({ server: upstream.server });
    wss.on("connection", (socket) => socket.on("message", (data) => socket.send(String(data))));
    onCleanup(() => new Promise<void>((resolve) => wss.close(() => resolve())));
    const { proxy, port } = await startProxy({ timeouts: { upgradeTimeoutMs: 200 } });
    proxy.setBackends("a", [upstream.backend("web")]);
    proxy.setActive("a");
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    onCleanup(() => ws.terminate());
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    await sleep(600);
    const echoed = new Promise((resolve) => ws.once("message", (data) => resolve(String(data))));
    ws.send("still here");
    expect(await echoed).toBe("still here");
    expect(proxy.connections("a").websockets).toBe(1);
  });
});
