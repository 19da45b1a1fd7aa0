// Which release a request belongs to. Without affinity: the active one. With affinity, a client
// that an older release served keeps reaching it while that release drains — named by a cookie
// the proxy sets (`rb_release=<release id>`), or remembered per session id (a query parameter or
// a header) in a bounded LRU. A pin is only a hint: an unknown id, or a release that is gone,
// stopping or not ready, routes to the active release, and a release that was never switched to
// (a starting one) can never be pinned.

import type { IncomingMessage } from "node:http";
import type { ReleaseSlot, RouteTable, UpstreamPool } from "./route-table.js";
import type { TrustedPeers } from "./trusted-peers.js";

/** The cookie that names the release that served a client (affinity, sticky canaries). */
export const DEFAULT_RELEASE_COOKIE = "rb_release";

/** How many session ids query/header affinity remembers by default. */
export const DEFAULT_MAX_SESSIONS = 10_000;

/** Session ids longer than this are not remembered (they only route to the active release). */
const MAX_SESSION_ID_LENGTH = 256;

/** How the proxy recognises a client across a switch. */
export type AffinityOptions = { mode: "none" } | { mode: "cookie"; cookie: string } | { mode: "query"; name: string; maxSessions: number } | { mode: "header"; name: string; maxSessions: number };

/** The release cookie: reading the id a client carries, writing the one that served it. */
export class ReleaseCookie {
  constructor(readonly name: string = DEFAULT_RELEASE_COOKIE) {}

  /** The release id the request's Cookie header names, or null (absent, empty, undecodable). */
  read(req: IncomingMessage): string | null {
    return readCookie(req.headers.cookie, this.name);
  }

  /** A Set-Cookie value naming `releaseId`: a session cookie for the whole site, never readable by scripts. */
  header(releaseId: string, secure: boolean): string {
    return `${this.name}=${encodeURIComponent(releaseId)}; Path=/; HttpOnly; SameSite=Lax${secure ? "; Secure" : ""}`;
  }

  /**
   * The Set-Cookie value a response from `release` must carry, or null when the client already
   * names it. Secure when the client reached the front proxy over https (a trusted peer's
   * X-Forwarded-Proto).
   */
  forResponse(req: IncomingMessage, release: { id: string }, trust: TrustedPeers): string | null {
    if (this.read(req) === release.id) return null;
    return this.header(release.id, forwardedHttps(req, trust));
  }
}

/** Chooses a request's release; `cookie` is non-null when responses must name their release. */
export class Affinity<P extends UpstreamPool> {
  readonly cookie: ReleaseCookie | null;
  private readonly sessions: SessionMemory | null;
  private readonly query: string | null;
  private readonly header: string | null;

  constructor(
    options: AffinityOptions,
    private readonly table: RouteTable<P>,
  ) {
    this.cookie = options.mode === "cookie" ? new ReleaseCookie(options.cookie) : null;
    this.sessions = options.mode === "query" || options.mode === "header" ? new SessionMemory(options.maxSessions) : null;
    this.query = options.mode === "query" ? options.name : null;
    this.header = options.mode === "header" ? options.name.toLowerCase() : null;
  }

  /** The release this request belongs to: its pinned release while that one still serves, else the active one (null: none). */
  choose(req: IncomingMessage): ReleaseSlot<P> | null {
    const active = this.table.active;
    if (this.cookie !== null) {
      const id = this.cookie.read(req);
      return id === null ? active : this.routed(this.table.pinned(id), active);
    }
    const sessions = this.sessions;
    if (sessions === null) return active;
    const sid = this.query !== null ? queryValue(req.url ?? "/", this.query) : headerValue(req, this.header as string);
    if (sid === null || sid.length > MAX_SESSION_ID_LENGTH) return active;
    const key = sessions.get(sid);
    if (key !== undefined) {
      const pinned = this.table.pinnedByKey(key);
      if (pinned !== null) return this.routed(pinned, active);
    }
    // First seen (or its release is gone): it belongs to the release serving it now.
    if (active !== null) sessions.set(sid, active.key);
    return active;
  }

  // A pinned request to a release that is not the active one keeps that release's drain going
  // (its clients poll in bursts, with moments where nothing is in flight).
  private routed(pinned: ReleaseSlot<P> | null, active: ReleaseSlot<P> | null): ReleaseSlot<P> | null {
    if (pinned === null) return active;
    if (pinned !== active) pinned.lastPinnedAt = Date.now();
    return pinned;
  }
}

/**
 * A bounded LRU of session id → release key. A Map keeps insertion order: a hit is moved to the
 * end, and past `max` the oldest entry goes.
 */
export class SessionMemory {
  private readonly map = new Map<string, string>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.map.size;
  }

  get(sid: string): string | undefined {
    const key = this.map.get(sid);
    if (key !== undefined) {
      this.map.delete(sid);
      this.map.set(sid, key);
    }
    return key;
  }

  set(sid: string, key: string): void {
    this.map.delete(sid);
    this.map.set(sid, key);
    if (this.map.size > this.max) {
      const oldest = this.map.keys().next();
      if (oldest.done !== true) this.map.delete(oldest.value);
    }
  }
}

/** The value of cookie `name` in a Cookie header (the first one when repeated), decoded; null when absent or empty. */
export function readCookie(header: string | undefined, name: string): string | null {
  if (header === undefined || header.length === 0) return null;
  let at = 0;
  while (at < header.length) {
    const end = nextSeparator(header, at);
    const eq = header.indexOf("=", at);
    if (eq !== -1 && eq < end && header.slice(at, eq).trim() === name) {
      let value = header.slice(eq + 1, end).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      if (value.length === 0) return null;
      try {
        return decodeURIComponent(value);
      } catch {
        return null;
      }
    }
    at = end + 1;
  }
  return null;
}

/** The value of query parameter `name` in a request target, decoded; null when absent or empty. */
export function queryValue(url: string, name: string): string | null {
  const q = url.indexOf("?");
  if (q === -1) return null;
  const hash = url.indexOf("#", q);
  const query = url.slice(q + 1, hash === -1 ? undefined : hash);
  for (const pair of query.split("&")) {
    const eq = pair.indexOf("=");
    const key = eq === -1 ? pair : pair.slice(0, eq);
    if (safeDecode(key) !== name) continue;
    const value = eq === -1 ? "" : safeDecode(pair.slice(eq + 1).replace(/\+/g, " "));
    return value === null || value.length === 0 ? null : value;
  }
  return null;
}

function headerValue(req: IncomingMessage, name: string): string | null {
  const value = req.headers[name];
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined || first.length === 0 ? null : first;
}

function forwardedHttps(req: IncomingMessage, trust: TrustedPeers): boolean {
  const proto = req.headers["x-forwarded-proto"];
  const first = (Array.isArray(proto) ? proto[0] : proto)?.split(",")[0]?.trim().toLowerCase();
  return first === "https" && trust.trusts(req.socket);
}

function nextSeparator(header: string, from: number): number {
  const semi = header.indexOf(";", from);
  return semi === -1 ? header.length : semi;
}

function safeDecode(text: string): string | null {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}
