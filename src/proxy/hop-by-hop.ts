// Hop-by-hop headers (RFC 9110 7.6.1) never cross the proxy: the header classification shared by
// both directions, and the response side. The request side (with X-Forwarded-*) is in
// request-headers.ts.

import type { IncomingHttpHeaders } from "node:http";

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

export const KEEP = 0;
export const DROP = 1;
export const CONNECTION = 2;
export const TRANSFER_ENCODING = 3;
export const CONTENT_LENGTH = 4;
export const HOST = 5;
export const X_FORWARDED_FOR = 6;
export const X_FORWARDED_PROTO = 7;
export const X_FORWARDED_HOST = 8;
export const UPGRADE = 9; // dropped everywhere except in a WebSocket handshake
/** Forwarded, X-Real-IP and the other X-Forwarded-*: who the client is, believed only from a trusted peer. */
export const CLIENT_IDENTITY = 10;

// Dispatches on the first letter and the length before lower-casing, so ordinary headers
// (Accept, User-Agent, Content-Type, ...) cost two comparisons and no allocation.
export function classify(name: string): number {
  const len = name.length;
  switch (name.charCodeAt(0) | 0x20) {
    case 0x63: // c
      if (len === 10 && is(name, "connection")) return CONNECTION;
      if (len === 14 && is(name, "content-length")) return CONTENT_LENGTH;
      return KEEP;
    case 0x65: // e
      return len === 6 && is(name, "expect") ? DROP : KEEP;
    case 0x66: // f
      return len === 9 && is(name, "forwarded") ? CLIENT_IDENTITY : KEEP;
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
      if (len === 9) return is(name, "x-real-ip") ? CLIENT_IDENTITY : KEEP;
      // any other X-Forwarded-* (Port, Prefix, Server, ...); the third letter rules out most X- headers cheaply
      return len > 12 && (name.charCodeAt(2) | 0x20) === 0x66 && is(name.slice(0, 12), "x-forwarded-") ? CLIENT_IDENTITY : KEEP;
    default:
      return KEEP;
  }
}

// (V8's toLowerCase of a short one-byte string beats a hand-written case-folding loop.)
function is(name: string, lower: string): boolean {
  return name === lower || name.toLowerCase() === lower;
}

/**
 * Adds the header names a Connection value lists to `into`. `close` and `keep-alive` name no
 * header, and `host` is never treated as hop-by-hop: a client must not be able to strip it.
 */
export function collectConnectionTokens(value: string, into: string[] | null): string[] | null {
  // the common values name no header: answer without splitting
  if (value.length === 10 ? is(value, "keep-alive") : value.length === 5 && is(value, "close")) return into;
  let list = into;
  for (const part of value.split(",")) {
    const token = part.trim().toLowerCase();
    // close/keep-alive are connection options, not header names; nothing to remove for them.
    if (token === "" || token === "close" || token === "keep-alive" || token === "host") continue;
    (list ??= []).push(token);
  }
  return list;
}

/** `flat` without the headers `named` lists (lower-case names). */
export function withoutNamed(flat: string[], named: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i] as string;
    if (!named.includes(name.toLowerCase())) out.push(name, flat[i + 1] as string);
  }
  return out;
}
