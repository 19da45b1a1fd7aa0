// Requests that ask for a protocol upgrade other than WebSocket (h2c, ...) are plain HTTP to us:
// a server may ignore Upgrade (RFC 9110 7.8). Node hands them to the `upgrade` handler with the
// raw socket and their body unparsed, so the request head is rebuilt without Upgrade, put back in
// front of what the socket still holds (the body, pipelined requests), and the socket goes through
// the HTTP parser again as a fresh connection: body, keep-alive and pipelining then work as for any
// request, on every Node version. (Node 22.21+/24.9+ has shouldUpgradeCallback for this, but there
// a request pipelined behind the refused upgrade is never parsed: the connection just hangs.)

import type http from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";

type HttpSocket = Socket & { _httpMessage?: http.ServerResponse | null };

/** Serves a non-WebSocket upgrade that reached the `upgrade` handler as a plain request. */
export function reparseAsPlainRequest(server: http.Server, req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
  const raw = req.rawHeaders;
  // The head passed Node's parser once: names and values are latin1 strings without CR/LF.
  let text = `${req.method ?? "GET"} ${req.url ?? "/"} HTTP/${req.httpVersion}\r\n`;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 7 && name.toLowerCase() === "upgrade") continue;
    text += `${name}: ${raw[i + 1] as string}\r\n`;
  }
  text += "\r\n";
  const bytes = Buffer.from(text, "latin1");
  socket.unshift(head.length > 0 ? Buffer.concat([bytes, head]) : bytes);
  reinjectWhenIdle(server, socket as HttpSocket);
}

// Responses to requests pipelined before this one still belong to the old parser: the socket
// starts over only once the last of them is out, in order.
function reinjectWhenIdle(server: http.Server, socket: HttpSocket): void {
  const pending = socket._httpMessage;
  if (pending) {
    let done = false;
    const next = () => {
      if (done) return;
      done = true;
      if (!socket.destroyed) reinjectWhenIdle(server, socket);
    };
    pending.once("finish", next);
    pending.once("close", next);
    return;
  }
  // The old parser's keep-alive timer must not cut a request of the new one.
  socket.setTimeout(server.timeout);
  server.emit("connection", socket);
}
