// Header rewriting for both directions: hop-by-hop headers (RFC 9110 7.6.1) never cross the
// proxy, and X-Forwarded-* are set here rather than by a library (http-proxy's xfwd appends
// the wrong values and skips X-Forwarded-Host on WebSockets).

import type { IncomingHttpHeaders } from "node:http";

/** Receives the facts about the request body learned while filtering the headers. */
export interface RequestBodyInfo {
  hasBody: boolean;
}

/**
 * Builds the upstream request headers from Node's flat `rawHeaders`: hop-by-hop headers, every
 * header named by `Connection`, and `Expect` (Node already answered 100-continue) are dropped;
 * Host passes unchanged; X-Forwarded-For/-Proto/-Host are appended. Returns a flat name/value list.
 */
export function buildRequestHeaders(raw: string[], clientAddress: string | undefined, info: RequestBodyInfo): string[] {
  const out: string[] = [];
  let named: string[] | null = null;
  let xff: string | undefined;
  let proto: string | undefined;
  let fwdHost: string | undefined;
  let host: string | undefined;
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
        break;
      case CONNECTION:
        named = collectConnectionTokens(value, named);
        break;
      case TRANSFER_ENCODING:
        hasBody = true;
        break;
      case CONTENT_LENGTH:
        if (value !== "0") hasBody = true;
        out.push(name, value);
        break;
      case HOST:
        if (host === undefined) host = value;
        out.push(name, value);
        break;
      case X_FORWARDED_FOR:
        xff = xff === undefined ? value : `${xff}, ${value}`;
        break;
      case X_FORWARDED_PROTO:
        if (proto === undefined) proto = value;
        break;
      case X_FORWARDED_HOST:
        if (fwdHost === undefined) fwdHost = value;
        break;
    }
  }
  info.hasBody = hasBody;
  const result = named === null ? out : withoutNamed(out, named);
  pushForwarded(result, xff, proto, fwdHost ?? host, clientAddress);
  return result;
}

/**
 * Builds the client response headers from undici's raw (Buffer) headers: latin1 keeps the bytes
 * exactly as received; hop-by-hop headers and those named by `Connection` are dropped. Node adds
 * its own Connection/Keep-Alive and chooses the framing (Content-Length or chunked).
 */
export function buildResponseHeaders(raw: Buffer[]): string[] {
  const out: string[] = [];
  let named: string[] | null = null;
  const n = raw.length;
  for (let i = 0; i < n; i += 2) {
    const name = (raw[i] as Buffer).toString("latin1");
    switch (classify(name)) {
      case DROP:
      case TRANSFER_ENCODING:
      case UPGRADE:
        break;
      case CONNECTION:
        named = collectConnectionTokens((raw[i + 1] as Buffer).toString("latin1"), named);
        break;
      default:
        out.push(name, (raw[i + 1] as Buffer).toString("latin1"));
    }
  }
  return named === null ? out : withoutNamed(out, named);
}

/**
 * Builds the headers of a WebSocket upgrade request (Node's lower-cased object): like
 * buildRequestHeaders, but `Connection: Upgrade` and `Upgrade` are kept for the handshake.
 */
export function buildUpgradeHeaders(headers: IncomingHttpHeaders, clientAddress: string | undefined): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  let named: string[] | null = null;
  let xff: string | undefined;
  let proto: string | undefined;
  let fwdHost: string | undefined;
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value === undefined) continue;
    switch (classify(name)) {
      case KEEP:
      case HOST:
      case CONTENT_LENGTH:
      case UPGRADE:
        out[name] = value;
        break;
      case CONNECTION:
        named = collectConnectionTokens(String(value), named);
        break;
      case X_FORWARDED_FOR:
        xff = Array.isArray(value) ? value.join(", ") : value;
        break;
      case X_FORWARDED_PROTO:
        proto = firstValue(value);
        break;
      case X_FORWARDED_HOST:
        fwdHost = firstValue(value);
        break;
      default:
        break;
    }
  }
  if (named !== null) for (const token of named) if (token !== "upgrade") delete out[token];
  out.connection = "Upgrade";
  out["x-forwarded-for"] = xff === undefined ? (clientAddress ?? "") : clientAddress === undefined ? xff : `${xff}, ${clientAddress}`;
  out["x-forwarded-proto"] = proto ?? "http";
  const host = fwdHost ?? firstValue(headers.host);
  if (host !== undefined) out["x-forwarded-host"] = host;
  return out;
}

/** Removes hop-by-hop headers from an upstream 101 response in place, keeping Connection/Upgrade. */
export function stripUpgradeResponseHeaders(headers: IncomingHttpHeaders): void {
  let named: string[] | null = null;
  for (const name of Object.keys(headers)) {
    switch (classify(name)) {
      case DROP:
      case TRANSFER_ENCODING:
        delete headers[name];
        break;
      case CONNECTION:
        named = collectConnectionTokens(String(headers[name]), named);
        break;
      default:
        break;
    }
  }
  if (named !== null) for (const token of named) if (token !== "upgrade" && token !== "connection") delete headers[token];
}

const KEEP = 0;
const DROP = 1;
const CONNECTION = 2;
const TRANSFER_ENCODING = 3;
const CONTENT_LENGTH = 4;
const HOST = 5;
const X_FORWARDED_FOR = 6;
const X_FORWARDED_PROTO = 7;
const X_FORWARDED_HOST = 8;
const UPGRADE = 9; // dropped everywhere except in a WebSocket handshake

// Dispatches on the first letter and the length before lower-casing, so ordinary headers
// (Accept, User-Agent, Content-Type, ...) cost two comparisons and no allocation.
function classify(name: string): number {
  const len = name.length;
  switch (name.charCodeAt(0) | 0x20) {
    case 0x63: // c
      if (len === 10 && is(name, "connection")) return CONNECTION;
      if (len === 14 && is(name, "content-length")) return CONTENT_LENGTH;
      return KEEP;
    case 0x65: // e
      return len === 6 && is(name, "expect") ? DROP : KEEP;
    case 0x68: // h
      return len === 4 && is(name, "host") ? HOST : KEEP;
    case 0x6b: // k
      return len === 10 && is(name, "keep-alive") ? DROP : KEEP;
    case 0x70: // p
      return len > 6 && is(name.slice(0, 6), "proxy-") ? DROP : KEEP;
    case 0x74: // t
      if (len === 2 && is(name, "te")) return DROP;
      if (len === 7 && is(name, "trailer")) return DROP;
      if (len === 17 && is(name, "transfer-encoding")) return TRANSFER_ENCODING;
      return KEEP;
    case 0x75: // u
      return len === 7 && is(name, "upgrade") ? UPGRADE : KEEP;
    case 0x78: // x
      if (len === 15 && is(name, "x-forwarded-for")) return X_FORWARDED_FOR;
      if (len === 16 && is(name, "x-forwarded-host")) return X_FORWARDED_HOST;
      if (len === 17 && is(name, "x-forwarded-proto")) return X_FORWARDED_PROTO;
      return KEEP;
    default:
      return KEEP;
  }
}

function is(name: string, lower: string): boolean {
  return name === lower || name.toLowerCase() === lower;
}

function collectConnectionTokens(value: string, into: string[] | null): string[] | null {
  // the common values name no header: answer without splitting
  if (value.length === 10 ? is(value, "keep-alive") : value.length === 5 && is(value, "close")) return into;
  let list = into;
  for (const part of value.split(",")) {
    const token = part.trim().toLowerCase();
    // close/keep-alive are connection options, not header names; nothing to remove for them.
    if (token === "" || token === "close" || token === "keep-alive") continue;
    (list ??= []).push(token);
  }
  return list;
}

function withoutNamed(flat: string[], named: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i] as string;
    if (!named.includes(name.toLowerCase())) out.push(name, flat[i + 1] as string);
  }
  return out;
}

function pushForwarded(
  out: string[],
  xff: string | undefined,
  proto: string | undefined,
  host: string | undefined,
  clientAddress: string | undefined,
): void {
  const forwardedFor = xff === undefined ? clientAddress : clientAddress === undefined ? xff : `${xff}, ${clientAddress}`;
  if (forwardedFor !== undefined) out.push("x-forwarded-for", forwardedFor);
  out.push("x-forwarded-proto", proto ?? "http");
  if (host !== undefined) out.push("x-forwarded-host", host);
}

function firstValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
