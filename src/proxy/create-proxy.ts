// The proxy adapter: an http.Server whose requests go to the active release's backends over
// undici pools and whose WebSocket upgrades go through http-proxy-3. The only module of ours
// that knows these libraries (with its helpers forward-http.ts and forward-ws.ts).

import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { Pool } from "undici";
import { createHttpForwarder } from "./forward-http.js";
import { createWsForwarder, isWebSocketUpgrade } from "./forward-ws.js";
import { sendRawStatus } from "./responses.js";
import { RouteTable } from "./route-table.js";
import type { ProxyOptions, ProxyServer, ProxyTimeouts } from "./types.js";

export const DEFAULT_TIMEOUTS: Required<ProxyTimeouts> = {
  headersTimeoutMs: 60_000,
  requestTimeoutMs: 0,
  keepAliveTimeoutMs: 5_000,
  upstreamHeadersTimeoutMs: 300_000,
  upstreamBodyTimeoutMs: 300_000,
};

/** Creates the traffic proxy; nothing listens until listen() is called. */
export function createProxy(options: ProxyOptions): ProxyServer {
  const timeouts = resolveTimeouts(options.timeouts);
  const onError = options.onError ?? noop;
  const table = new RouteTable<Pool>(
    (origin) =>
      new Pool(origin, {
        headersTimeout: timeouts.upstreamHeadersTimeoutMs,
        bodyTimeout: timeouts.upstreamBodyTimeoutMs,
      }),
  );
  const forwardHttp = createHttpForwarder({ table, holdTimeoutMs: options.holdTimeoutMs, onError, onResponse: options.onResponse });
  const ws = createWsForwarder({ table, holdTimeoutMs: options.holdTimeoutMs, onError });

  const server = http.createServer(
    {
      headersTimeout: timeouts.headersTimeoutMs,
      requestTimeout: timeouts.requestTimeoutMs,
      keepAliveTimeout: timeouts.keepAliveTimeoutMs,
      // Node enforces headersTimeout/requestTimeout only when this sweep runs (default every
      // 30 s), so a half-sent request could hold its socket 30 s past the limit.
      connectionsCheckingInterval: checkingIntervalMs(timeouts),
      noDelay: true,
    },
    forwardHttp,
  );
  server.keepAliveTimeout = timeouts.keepAliveTimeoutMs;

  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", noop);
    if (isWebSocketUpgrade(req)) ws.forward(req, socket, head);
    else forwardIgnoringUpgrade(req, socket, head, forwardHttp);
  });

  // Same answers as Node's default (431 for oversized headers, 408 on timeout, else 400), but
  // a socket error can never escape as an unhandled 'error'.
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    socket.on("error", noop);
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
    if (err.code === "ECONNRESET" || !socket.writable || (inFlight && inFlight.headersSent)) {
      socket.destroy();
      return;
    }
    sendRawStatus(socket, err.code === "HPE_HEADER_OVERFLOW" ? 431 : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400);
  });

  let listening = false;
  server.on("error", (err) => {
    if (listening) onError("proxy server error", { error: err.message });
  });

  let closing: Promise<void> | null = null;

  return {
    listen() {
      return new Promise((resolve, reject) => {
        const onListenError = (err: Error) => reject(err);
        server.once("error", onListenError);
        server.listen(options.port, options.host, () => {
          server.off("error", onListenError);
          listening = true;
          const address = server.address() as AddressInfo;
          resolve({ host: address.address, port: address.port });
        });
      });
    },
    setBackends(releaseKey, backends) {
      table.setBackends(releaseKey, backends);
    },
    setActive(releaseKey) {
      table.setActive(releaseKey);
    },
    activeRelease() {
      return table.active?.key ?? null;
    },
    connections(releaseKey) {
      return table.connections(releaseKey);
    },
    backendOutstanding(releaseKey, backendId, port) {
      return table.backendOutstanding(releaseKey, backendId, port);
    },
    closeRelease(releaseKey) {
      return table.closeRelease(releaseKey);
    },
    close() {
      closing ??= (async () => {
        const stopped = listening
          ? new Promise<void>((resolve) => server.close(() => resolve()))
          : Promise.resolve();
        listening = false;
        server.closeAllConnections();
        await table.closeAll();
        await stopped;
      })();
      return closing;
    },
  };
}

function resolveTimeouts(given: Partial<ProxyTimeouts> | undefined): Required<ProxyTimeouts> {
  return {
    headersTimeoutMs: given?.headersTimeoutMs ?? DEFAULT_TIMEOUTS.headersTimeoutMs,
    requestTimeoutMs: given?.requestTimeoutMs ?? DEFAULT_TIMEOUTS.requestTimeoutMs,
    keepAliveTimeoutMs: given?.keepAliveTimeoutMs ?? DEFAULT_TIMEOUTS.keepAliveTimeoutMs,
    upstreamHeadersTimeoutMs: given?.upstreamHeadersTimeoutMs ?? DEFAULT_TIMEOUTS.upstreamHeadersTimeoutMs,
    upstreamBodyTimeoutMs: given?.upstreamBodyTimeoutMs ?? DEFAULT_TIMEOUTS.upstreamBodyTimeoutMs,
  };
}

// Half the shortest client timeout, at most 1 s: a slow client is cut within 1.5x its limit.
function checkingIntervalMs(timeouts: Required<ProxyTimeouts>): number {
  const limits = [timeouts.headersTimeoutMs, timeouts.requestTimeoutMs].filter((ms) => ms > 0);
  return Math.max(10, Math.round(Math.min(1000, ...limits.map((ms) => ms / 2))));
}

// A non-WebSocket upgrade (h2c, ...) may be ignored by the server (RFC 9110 7.8): answer it as
// plain HTTP on a one-shot response. Node has already handed over the socket and will not parse
// a body, so only bodiless requests can be served this way.
function forwardIgnoringUpgrade(
  req: http.IncomingMessage,
  socket: Duplex,
  head: Buffer,
  forwardHttp: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): void {
  const hasBody = req.headers["transfer-encoding"] !== undefined || (req.headers["content-length"] ?? "0") !== "0";
  if (hasBody || head.length > 0) {
    sendRawStatus(socket, 400);
    return;
  }
  const res = new http.ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as Socket);
  res.on("finish", () => {
    res.detachSocket(socket as Socket);
    socket.end(() => socket.destroy());
  });
  forwardHttp(req, res);
}

function noop(): void {}
