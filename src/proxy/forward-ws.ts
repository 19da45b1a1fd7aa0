// WebSocket forwarding over http-proxy-3's ws(): one library instance for all upgrades; this
// file routes each upgrade at arrival, sets the forwarded headers itself, answers 502 when the
// upstream fails before the handshake or does not answer it within upgradeTimeoutMs, and tracks
// every tunnel against its release.

import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { createProxyServer } from "http-proxy-3";
import type { Pool } from "undici";
import { stripUpgradeResponseHeaders } from "./hop-by-hop.js";
import { buildUpgradeHeaders } from "./request-headers.js";
import { originForm } from "./request-target.js";
import { sendRawStatus } from "./responses.js";
import type { BackendSlot, ReleaseSlot, RouteTable, Tracked, Waiter } from "./route-table.js";
import type { TrustedPeers } from "./trusted-peers.js";

export interface WsForwarderOptions {
  table: RouteTable<Pool>;
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

export function createWsForwarder(options: WsForwarderOptions): WsForwarder {
  const tunnels = new WeakMap<IncomingMessage, WsTunnel>();
  const proxy = createProxyServer({ ws: true, xfwd: false, prependPath: false, toProxy: true });

  // Client-socket errors are re-emitted here by the library; the tunnel's own handlers clean up.
  proxy.on("error", () => undefined);
  proxy.on("proxyReqWs", (proxyReq: ClientRequest, req: IncomingMessage) => {
    tunnels.get(req)?.attachUpstream(proxyReq);
  });

  const context: TunnelContext = {
    ...options,
    start(tunnel, req, socket, head, backend) {
      tunnels.set(req, tunnel);
      proxy.ws(req, socket as Socket, head, { target: backend.origin }, (err: Error) => tunnel.onUpstreamError(err));
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
      const release = options.table.active;
      if (release === null) {
        sendRawStatus(socket, 503);
        return;
      }
      req.headers = headers;
      const tunnel = new WsTunnel(req, socket, head, context);
      const backend = options.table.pick(release, null);
      if (backend !== null) tunnel.start(release, backend);
      else tunnel.hold();
    },
  };
}

interface TunnelContext extends WsForwarderOptions {
  start(tunnel: WsTunnel, req: IncomingMessage, socket: Duplex, head: Buffer, backend: BackendSlot<Pool>): void;
}

type TunnelState = "new" | "held" | "connecting" | "open" | "done";

class WsTunnel implements Waiter, Tracked {
  private state: TunnelState = "new";
  private release: ReleaseSlot<Pool> | null = null;
  private backend: BackendSlot<Pool> | null = null;
  private proxyReq: ClientRequest | null = null;
  private upstream: Socket | null = null;
  /** Bytes went to the client (a 101 or a non-upgrade response): no 502 may follow. */
  private responded = false;
  private deadline = 0;
  private timer: NodeJS.Timeout | null = null;
  private upgradeTimer: NodeJS.Timeout | null = null;
  prevTracked: Tracked | null = null;
  nextTracked: Tracked | null = null;

  constructor(
    private readonly req: IncomingMessage,
    private readonly socket: Duplex,
    private readonly head: Buffer,
    private readonly context: TunnelContext,
  ) {
    socket.once("close", this.onClientClose);
  }

  start(release: ReleaseSlot<Pool>, backend: BackendSlot<Pool>): void {
    this.state = "connecting";
    this.release = release;
    this.backend = backend;
    backend.outstanding++;
    release.websockets.add(this);
    const timeoutMs = this.context.upgradeTimeoutMs;
    if (timeoutMs > 0) this.upgradeTimer = setTimeout(this.onUpgradeTimeout, timeoutMs);
    this.context.start(this, this.req, this.socket, this.head, backend);
  }

  hold(): void {
    const now = Date.now();
    if (this.deadline === 0) this.deadline = now + this.context.holdTimeoutMs;
    const remaining = this.deadline - now;
    if (remaining <= 0) {
      this.giveUp();
      return;
    }
    this.state = "held";
    this.context.table.hold(this);
    this.timer = setTimeout(this.onHoldTimeout, remaining);
  }

  tryRoute(): boolean {
    if (this.state !== "held") return true;
    const table = this.context.table;
    const release = table.active;
    if (release === null) return false;
    const backend = table.pick(release, null);
    if (backend === null) return false;
    this.clearTimer();
    this.start(release, backend);
    return true;
  }

  /** closeRelease/close: ends both sockets now. */
  destroy(): void {
    if (this.state === "held") {
      this.context.table.unhold(this);
      this.clearTimer();
    }
    this.finish(true);
    this.socket.destroy();
  }

  attachUpstream(proxyReq: ClientRequest): void {
    this.proxyReq = proxyReq;
    if (this.state === "done") {
      proxyReq.destroy();
      return;
    }
    proxyReq.on("socket", (socket: Socket) => socket.on("error", ignore));
    // Prepended so they run before the library writes the handshake or response to the client.
    proxyReq.prependListener("upgrade", (proxyRes: IncomingMessage, proxySocket: Socket) => {
      proxySocket.on("error", ignore);
      this.responded = true;
      this.clearUpgradeTimer();
      this.upstream = proxySocket;
      stripUpgradeResponseHeaders(proxyRes.headers);
      if (this.state === "done") proxySocket.destroy();
      else this.state = "open";
    });
    proxyReq.prependListener("response", (proxyRes: IncomingMessage) => {
      this.responded = true;
      this.clearUpgradeTimer();
      // The library closes the client only at the answer's 'end': an app that goes away in the
      // middle of it (FIN before the last body byte) would leave the client waiting, and the
      // tunnel counted against its release, forever.
      proxyRes.once("close", () => {
        if (!proxyRes.complete) this.socket.destroy();
      });
    });
  }

  onUpstreamError(err: Error): void {
    // The library calls socket.destroySoon() right after this, which flushes our answer first.
    if (this.state !== "done" && !this.responded) {
      this.responded = true;
      const socket = this.socket;
      if (socket.writable) {
        socket.write(
          "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad gateway",
        );
      }
      this.context.onError("websocket upstream failed before the handshake", {
        error: err.message,
        code: (err as { code?: unknown }).code,
        backend: this.backend?.id,
        url: this.req.url,
      });
    }
  }

  private readonly onClientClose = (): void => {
    if (this.state === "held") {
      this.context.table.unhold(this);
      this.clearTimer();
    }
    this.finish(false);
  };

  private readonly onHoldTimeout = (): void => {
    this.timer = null;
    if (this.state !== "held") return;
    this.context.table.unhold(this);
    this.giveUp();
  };

  // The upstream took the connection but never answered the handshake: 502, and the tunnel
  // stops counting, so it cannot hold its release's drain.
  private readonly onUpgradeTimeout = (): void => {
    this.upgradeTimer = null;
    if (this.state !== "connecting" || this.responded) return;
    this.responded = true;
    this.context.onError("websocket upstream did not answer the handshake in time", {
      timeoutMs: this.context.upgradeTimeoutMs,
      backend: this.backend?.id,
      url: this.req.url,
    });
    sendRawStatus(this.socket, 502);
    this.finish(true);
  };

  private giveUp(): void {
    this.state = "done";
    sendRawStatus(this.socket, this.context.table.active === null ? 503 : 502);
  }

  // Stops counting the tunnel and releases the upstream side (pending handshake or socket);
  // after a client close the upstream gets what was already piped to it before it closes.
  private finish(hard: boolean): void {
    this.state = "done";
    this.clearUpgradeTimer();
    const backend = this.backend;
    if (backend !== null) {
      this.backend = null;
      backend.outstanding--;
      this.release?.websockets.delete(this);
      this.release = null;
    }
    if (this.upstream !== null) {
      if (hard) this.upstream.destroy();
      else this.upstream.destroySoon();
    } else this.proxyReq?.destroy();
  }

  private clearUpgradeTimer(): void {
    if (this.upgradeTimer !== null) {
      clearTimeout(this.upgradeTimer);
      this.upgradeTimer = null;
    }
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }
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
