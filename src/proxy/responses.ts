// The proxy's own answers (503 no active release, 502 bad gateway, 400 bad request, 408 request
// body timeout, 501 unsupported transfer coding, 504 no answer before the release's drain
// deadline), for a ServerResponse and as raw bytes for sockets that left the HTTP parser
// (upgrades, client errors).

import type { ServerResponse } from "node:http";
import type { Duplex } from "node:stream";

export type ProxyStatus = 400 | 408 | 501 | 502 | 503 | 504;

const BODIES: Record<ProxyStatus, string> = {
  400: "Bad request",
  408: "Request timeout",
  501: "Not implemented",
  502: "Bad gateway",
  503: "No active release",
  504: "Gateway timeout",
};

// A refused or timed-out request may leave unread body bytes behind: its connection is closed
// (504: the connection was cut at its release's drain deadline).
const HEADERS: Record<ProxyStatus, string[]> = {
  400: [...headersFor(400), "Connection", "close"],
  408: [...headersFor(408), "Connection", "close"],
  501: [...headersFor(501), "Connection", "close"],
  502: headersFor(502),
  503: headersFor(503),
  504: [...headersFor(504), "Connection", "close"],
};

/** Answers with one of the proxy's own statuses, or destroys the response if headers are out. */
export function sendStatus(res: ServerResponse, status: ProxyStatus): void {
  if (res.destroyed) return;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, HEADERS[status]);
  res.end(BODIES[status]);
}

const REASONS: Record<ProxyStatus | 431, string> = {
  400: "Bad Request",
  408: "Request Timeout",
  431: "Request Header Fields Too Large",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** Writes a complete `Connection: close` response to a raw socket, then closes it. */
export function sendRawStatus(socket: Duplex, status: ProxyStatus | 431): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  // Node's own answers to these (header timeout, oversized headers) carry no body either.
  const body = status === 408 || status === 431 ? "" : BODIES[status];
  socket.end(`HTTP/1.1 ${status} ${REASONS[status]}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`, () => socket.destroy());
}

function headersFor(status: ProxyStatus): string[] {
  return ["Content-Type", "text/plain", "Content-Length", String(Buffer.byteLength(BODIES[status]))];
}
