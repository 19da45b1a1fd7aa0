// Real sockets on 127.0.0.1, port 0: upstream servers, the proxy, and a raw HTTP client.
// Everything started through these helpers is closed by closeAll() (call it in afterEach).

import http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { createProxy } from "../../src/proxy/create-proxy.js";
import type { Backend, ProxyOptions, ProxyServer } from "../../src/proxy/types.js";

const cleanups: Array<() => Promise<void> | void> = [];

export async function closeAll(): Promise<void> {
  const list = cleanups.splice(0).reverse();
  for (const cleanup of list) await cleanup();
}

export interface Upstream {
  server: http.Server;
  port: number;
  backend(id: string, ready?: boolean): Backend;
  /** Open TCP connections to this upstream right now. */
  connections(): Promise<number>;
}

export async function startUpstream(handler: http.RequestListener): Promise<Upstream> {
  const server = http.createServer(handler);
  await listen(server);
  cleanups.push(() => closeServer(server));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    backend: (id, ready = true) => ({ id, host: "127.0.0.1", port, ready }),
    connections: () => new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n)))),
  };
}

/** A port with nothing listening on it (bound, then released). */
export async function deadPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface StartedProxy {
  proxy: ProxyServer;
  port: number;
}

export async function startProxy(options: Partial<ProxyOptions> = {}): Promise<StartedProxy> {
  const proxy = createProxy({ host: "127.0.0.1", port: 0, holdTimeoutMs: 1000, ...options });
  const { port } = await proxy.listen();
  cleanups.push(() => proxy.close());
  return { proxy, port };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

export interface RequestOptions {
  method?: string;
  path?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: string | Buffer;
  agent?: http.Agent | false;
}

/** One request on a fresh connection; resolves with the whole response. */
export function request(port: number, options: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: options.method ?? "GET",
        path: options.path ?? "/",
        headers: options.headers,
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString() }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

/** Sends raw bytes on a fresh connection and collects everything until the server closes it or `until` matches. */
export function rawExchange(port: number, data: string, until?: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let received = "";
    socket.on("data", (chunk) => {
      received += chunk.toString("latin1");
      if (until?.test(received)) {
        socket.destroy();
        resolve(received);
      }
    });
    socket.on("error", (err) => (received ? resolve(received) : reject(err)));
    socket.on("close", () => resolve(received));
    socket.write(data);
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(10);
  }
}

/** Registers extra cleanup (e.g. a ws server). */
export function onCleanup(cleanup: () => Promise<void> | void): void {
  cleanups.push(cleanup);
}

function listen(server: http.Server): Promise<void> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
