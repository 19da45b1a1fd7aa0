// WebSocket forwarding over http-proxy-3's ws(): one library instance for all upgrades; this
// file routes each upgrade at arrival and sets the forwarded headers itself; each upgrade is a
// WsTunnel (ws-tunnel.ts), tracked against its release until it closes.

import type { ClientRequest, IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { createRequire } from "node:module";
import type { Duplex } from "node:stream";
import type * as HttpProxy3 from "http-proxy-3";
import type { Pool } from "undici";
import type { Affinity } from "./affinity.js";
import { buildUpgradeHeaders } from "./request-headers.js";
import { originForm } from "./request-target.js";
import { sendRawStatus } from "./responses.js";
import type { RouteTable } from "./route-table.js";
import type { TrustedPeers } from "./trusted-peers.js";
import { WsTunnel, tunnelOpened, type TunnelContext } from "./ws-tunnel.js";

export interface WsForwarderOptions {
  table: RouteTable<Pool>;
  /** Chooses each upgrade's release (the active one, or a draining one its client is pinned to). */
  affinity: Affinity<Pool>;
  trust: TrustedPeers;
  holdTimeoutMs: number;
  /** Time the upstream has to answer the handshake (0: none). */
  upgradeTimeoutMs: number;
  onError: (message: string, data: Record<string, unknown>) => void;
}

export interface WsForwarder {
  /** The server's `upgrade` handler for WebSocket handshakes (GET + Upgrade: websocket). */
  forward(req: IncomingMessage, socket: Duplex, head: Buffer): void;
}

/** Returns true for a WebSocket handshake; other upgrades (h2c, ...) are plain HTTP to us. */
export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  return req.method === "GET" && typeof upgrade === "string" && upgrade.toLowerCase() === "websocket";
}

// Loaded at the first WebSocket handshake, not at start: a daemon that never proxies one does
// not carry the library (with its debug and follow-redirects dependencies) in its memory.
// Synchronous (it is CommonJS), so the first handshake is routed in the same tick as the others.
const requireCjs = createRequire(import.meta.url);
type ProxyLibrary = HttpProxy3.ProxyServer<typeof IncomingMessage, typeof ServerResponse, Error>;

export function createWsForwarder(options: WsForwarderOptions): WsForwarder {
  const tunnels = new WeakMap<IncomingMessage, WsTunnel>();
  let library: ProxyLibrary | null = null;
  const proxy = (): ProxyLibrary => {
    if (library !== null) return library;
    const { createProxyServer } = requireCjs("http-proxy-3") as typeof HttpProxy3;
    const created = createProxyServer({ ws: true, xfwd: false, prependPath: false, toProxy: true });
    // Client-socket errors are re-emitted here by the library; the tunnel's own handlers clean up.
    created.on("error", () => undefined);
    created.on("proxyReqWs", (proxyReq: ClientRequest, req: IncomingMessage) => {
      tunnels.get(req)?.attachUpstream(proxyReq);
    });
    created.on("open", tunnelOpened);
    library = created;
    return created;
  };

  const context: TunnelContext = {
    ...options,
    start(tunnel, req, socket, head, backend) {
      tunnels.set(req, tunnel);
      proxy().ws(req, socket as Socket, head, { target: backend.origin }, (err: Error) => tunnel.onUpstreamError(err));
    },
  };

  return {
    forward(req, socket, head) {
      // First line: a socket error must never reach the process as an unhandled 'error'.
      socket.on("error", ignore);
      const headers = upstreamHeaders(req, options.trust.trusts(req.socket));
      if (headers === null) {
        sendRawStatus(socket, 400);
        return;
      }
      const table = options.table;
      const release = table.paused ? null : (table.canary?.choose(req) ?? options.affinity.choose(req));
      if (release === null && !table.paused) {
        sendRawStatus(socket, 503);
        return;
      }
      req.headers = headers;
      const tunnel = new WsTunnel(req, socket, head, context);
      if (release === null) {
        tunnel.hold();
        return;
      }
      const backend = options.table.pick(release, null);
      if (backend !== null) tunnel.start(release, backend);
      else tunnel.hold();
    },
  };
}

// The handshake's upstream headers, with an absolute-form target rewritten to origin-form (its
// Host from the URI); null when it must be refused with 400.
function upstreamHeaders(req: IncomingMessage, trusted: boolean): IncomingHttpHeaders | null {
  const url = req.url ?? "/";
  if (url.charCodeAt(0) === 0x2f) return buildUpgradeHeaders(req, trusted, null);
  const target = originForm(url);
  if (target === null) return null;
  req.url = target.path;
  return buildUpgradeHeaders(req, trusted, target.host);
}

function ignore(): void {}
