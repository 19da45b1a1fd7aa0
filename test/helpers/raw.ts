// Raw-socket clients for hostile-traffic tests (bytes no well-behaved HTTP client would send,
// resets at chosen moments) and probes of what a process holds open (sockets, fds).
import { readdirSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { expect } from "vitest";
import { get } from "./load.js";
import type { TestDaemon } from "./daemon.js";

/** A WebSocket handshake request for `path`, as raw bytes. */
export function upgradeRequest(path: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` + `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
}

/** Sends `bytes` on a fresh connection and resolves with everything received until the server closes it (or the time is up). */
export function rawExchange(port: number, bytes: string | Buffer, timeoutMs = 5000): Promise<{ text: string; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (closedByServer: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ text: Buffer.concat(chunks).toString("latin1"), closedByServer });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on("data", (chunk) => chunks.push(chunk));
    socket.on("end", () => finish(true));
    socket.on("close", () => finish(true));
    socket.on("error", () => finish(true));
    socket.write(bytes);
  });
}

/** Opens a connection, sends `bytes`, waits until `when` says so (or `when` ms have passed), then resets it (RST, not FIN). */
export function resetAfter(port: number, bytes: string, when: ((received: string) => boolean) | number, timeoutMs = 5000): Promise<string> {
  if (typeof when === "number") {
    const at = Date.now() + when;
    return resetAfter(port, bytes, () => Date.now() >= at, timeoutMs);
  }
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let received = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`reset condition not reached; received ${JSON.stringify(received.slice(0, 200))}`));
    }, timeoutMs);
    let connected = false;
    let done = false;
    const check = () => {
      if (!connected || done || !when(received)) return;
      done = true;
      clearTimeout(timer);
      socket.resetAndDestroy();
      resolve(received);
    };
    socket.on("error", () => undefined);
    socket.on("data", (chunk) => {
      received += chunk.toString("latin1");
      check();
    });
    const poll = setInterval(check, 10);
    socket.on("close", () => clearInterval(poll));
    socket.on("connect", () => {
      connected = true;
      socket.write(bytes);
      check();
    });
  });
}

/** What the fixture app reports about itself, asked directly (not through the proxy); our own probe socket is not counted. */
export async function appSockets(appPort: number): Promise<{ connections: number; streaming: number }> {
  const res = await get(appPort, "/connections");
  const body = JSON.parse(res.body) as { connections: number; streaming: number };
  return { connections: body.connections - 1, streaming: body.streaming };
}

/** Open file descriptors of a process (Linux /proc). */
export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The daemon process is alive and its proxy still answers 200 from the active release. */
export async function expectDaemonServes(daemon: TestDaemon, release?: string): Promise<void> {
  expect(daemon.child.exitCode, "daemon exited").toBeNull();
  expect(daemon.child.signalCode, "daemon killed").toBeNull();
  const res = await get(daemon.proxyPort, "/after-hostile");
  expect(res.status).toBe(200);
  if (release !== undefined) expect(JSON.parse(res.body).release).toBe(release);
}

/** A GET through a fresh connection, resolving with its latency in ms. */
export function timedGet(port: number, path = "/"): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path, agent: false, timeout: 10_000 }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

/** One control API call over the daemon's unix socket (faster than spawning the CLI for status polls). */
export function control(socketPath: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
    const req = http.request({ socketPath, method, path: `/v1${path}`, headers: text === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(text) }, timeout: 10_000 }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (data += chunk));
      res.on("end", () => {
        try {
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(data) });
        } catch {
          resolve({ status: res.statusCode ?? 0, json: data });
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error("control request timed out")));
    req.on("error", reject);
    req.end(text);
  });
}

/** status over the control socket. */
export async function quickStatus(socketPath: string): Promise<any> {
  const { status, json } = await control(socketPath, "GET", "/status");
  if (status !== 200) throw new Error(`status answered ${status}: ${JSON.stringify(json)}`);
  return json;
}

/** The daemon's JSON event lines seen so far on its stdout. */
export function stdoutEvents(lines: string[]): { type: string; at: string; message: string; releaseId?: string; data?: Record<string, unknown> }[] {
  return lines.flatMap((line) => {
    try {
      return [JSON.parse(line)];
    } catch {
      return [];
    }
  });
}

/** PUT /v1/desired with `document`, then polls status until that release is active and converged (no CLI start-up cost). */
export async function applyOverSocket(socketPath: string, document: Record<string, unknown>, releaseId: string, timeoutMs = 20_000): Promise<any> {
  const put = await control(socketPath, "PUT", "/desired", { document });
  if (put.status !== 200) throw new Error(`PUT /desired answered ${put.status}: ${JSON.stringify(put.json)}`);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const s = await quickStatus(socketPath);
    if (s.converged && s.activeRelease?.id === releaseId) return s;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`${releaseId} not active and converged within ${timeoutMs} ms`);
}
