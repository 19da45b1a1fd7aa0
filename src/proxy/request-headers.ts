// The headers a request carries upstream, HTTP and WebSocket: hop-by-hop headers and those named
// by Connection are dropped (never Host), the client's Host always goes along, and X-Forwarded-*
// come from the peer only when it is trusted — otherwise from what the proxy itself sees. A
// request this proxy must refuse (RFC 9112: several or invalid Hosts, an unknown transfer
// coding) is flagged here, during the one pass over the headers that forwarding needs anyway.

import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { CLIENT_IDENTITY, CONNECTION, CONTENT_LENGTH, DROP, HOST, KEEP, TRANSFER_ENCODING, UPGRADE, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, classify, collectConnectionTokens, withoutNamed } from "./hop-by-hop.js";
import { isValidHost, transferCodingStatus } from "./request-target.js";
import { isUnixPeer } from "./trusted-peers.js";

/** What filtering the headers learned about the request. */
export interface RequestFacts {
  hasBody: boolean;
  /** 0: forward it; otherwise the status the proxy answers itself (400 malformed, 501 unsupported transfer coding). */
  reject: 0 | 400 | 501;
}

/**
 * Builds the upstream request headers from Node's flat `rawHeaders` as a flat name/value list:
 * Host first (`uriHost` from an absolute-form target, else the client's, else the address the
 * client reached), `Expect` dropped (Node already answered 100-continue), X-Forwarded-For/-Proto/
 * -Host last. With `trusted` false, Forwarded, X-Real-IP and every X-Forwarded-* the peer sent
 * are dropped.
 */
export function buildRequestHeaders(req: IncomingMessage, trusted: boolean, uriHost: string | null, facts: RequestFacts): string[] {
  const raw = req.rawHeaders;
  // slot 0/1 is Host, filled in below
  const out: string[] = ["host", ""];
  let named: string[] | null = null;
  let xff: string | undefined;
  let proto: string | undefined;
  let fwdHost: string | undefined;
  let host: string | undefined;
  let hosts = 0;
  let codings: string | undefined;
  let hasBody = false;
  const n = raw.length;
  for (let i = 0; i < n; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    switch (classify(name)) {
      case KEEP:
        out.push(name, value);
        break;
      case DROP:
      case UPGRADE:
        break;
      case CONNECTION:
        named = collectConnectionTokens(value, named);
        break;
      case TRANSFER_ENCODING:
        codings = codings === undefined ? value : `${codings}, ${value}`;
        break;
      case CONTENT_LENGTH:
        if (value !== "0") hasBody = true;
        out.push(name, value);
        break;
      case HOST:
        hosts++;
        host = value;
        break;
      case X_FORWARDED_FOR:
        if (trusted) xff = xff === undefined ? value : `${xff}, ${value}`;
        break;
      case X_FORWARDED_PROTO:
        if (trusted && proto === undefined) proto = value;
        break;
      case X_FORWARDED_HOST:
        if (trusted && fwdHost === undefined) fwdHost = value;
        break;
      case CLIENT_IDENTITY:
        if (trusted) out.push(name, value);
        break;
    }
  }
  facts.hasBody = hasBody || codings !== undefined;
  // An absolute-form target overrides whatever Host says (RFC 9112 3.2.2).
  if (uriHost === null && (hosts > 1 || (host !== undefined && !validHost(req.socket, host)))) facts.reject = 400;
  else if (codings !== undefined) facts.reject = transferCodingStatus(codings, req.httpVersion);
  else facts.reject = 0;
  const effectiveHost = uriHost ?? host ?? reachedAddress(req.socket);
  out[1] = effectiveHost;
  const result = named === null ? out : withoutNamed(out, named);
  pushForwarded(result, xff, proto ?? "http", fwdHost ?? effectiveHost, peerAddress(req.socket));
  return result;
}

/**
 * Builds the headers of a WebSocket handshake from Node's (lower-cased, joined) header object,
 * by the same rules as buildRequestHeaders, except that `Connection: Upgrade` and `Upgrade`
 * are kept. Returns null when the handshake must be refused (400: several or an invalid Host).
 */
export function buildUpgradeHeaders(req: IncomingMessage, trusted: boolean, uriHost: string | null): IncomingHttpHeaders | null {
  const headers = req.headers;
  // Node keeps only the first of repeated Host lines in `headers`; the raw list shows them all.
  if (uriHost === null && (countHosts(req.rawHeaders) > 1 || (headers.host !== undefined && !validHost(req.socket, headers.host)))) return null;
  const effectiveHost = uriHost ?? headers.host ?? reachedAddress(req.socket);
  const out: IncomingHttpHeaders = { host: effectiveHost };
  let named: string[] | null = null;
  let xff: string | undefined;
  let proto: string | undefined;
  let fwdHost: string | undefined;
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value === undefined) continue;
    switch (classify(name)) {
      case KEEP:
      case CONTENT_LENGTH:
      case UPGRADE:
        out[name] = value;
        break;
      case CONNECTION:
        named = collectConnectionTokens(String(value), named);
        break;
      case X_FORWARDED_FOR:
        if (trusted) xff = Array.isArray(value) ? value.join(", ") : value;
        break;
      case X_FORWARDED_PROTO:
        if (trusted) proto = firstValue(value);
        break;
      case X_FORWARDED_HOST:
        if (trusted) fwdHost = firstValue(value);
        break;
      case CLIENT_IDENTITY:
        if (trusted) out[name] = value;
        break;
      default:
        break;
    }
  }
  if (named !== null) for (const token of named) if (token !== "upgrade") delete out[token];
  out.connection = "Upgrade";
  const peer = peerAddress(req.socket);
  const forwardedFor = xff === undefined ? peer : peer === undefined ? xff : `${xff}, ${peer}`;
  if (forwardedFor !== undefined) out["x-forwarded-for"] = forwardedFor;
  out["x-forwarded-proto"] = proto ?? "http";
  out["x-forwarded-host"] = fwdHost ?? effectiveHost;
  return out;
}

const kValidHost = Symbol("rollbridge.validHost");

// isValidHost, remembered per connection: keep-alive clients send the same Host again and again.
function validHost(socket: Socket & { [kValidHost]?: string }, host: string): boolean {
  if (socket[kValidHost] === host) return true;
  if (!isValidHost(host)) return false;
  socket[kValidHost] = host;
  return true;
}

// The peer's address for X-Forwarded-For; a unix-socket peer has none to add.
function peerAddress(socket: Socket): string | undefined {
  return isUnixPeer(socket) ? undefined : socket.remoteAddress;
}

// Host for a request without one (HTTP/1.0): the address the client connected to.
function reachedAddress(socket: Socket): string {
  const address = socket.localAddress;
  if (isUnixPeer(socket) || address === undefined) return "localhost";
  return `${address.includes(":") ? `[${address}]` : address}:${socket.localPort}`;
}

function pushForwarded(out: string[], xff: string | undefined, proto: string, host: string, peer: string | undefined): void {
  const forwardedFor = xff === undefined ? peer : peer === undefined ? xff : `${xff}, ${peer}`;
  if (forwardedFor !== undefined) out.push("x-forwarded-for", forwardedFor);
  out.push("x-forwarded-proto", proto, "x-forwarded-host", host);
}

function countHosts(raw: string[]): number {
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) if (classify(raw[i] as string) === HOST) count++;
  return count;
}

function firstValue(value: string | string[]): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
