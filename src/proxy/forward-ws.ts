// WebSocket forwarding over http-proxy-3's ws(): one library instance for all upgrades; this
// file routes each upgrade at arrival, sets the forwarded headers itself, answers 502 when the
// upstream fails before the handshake, and tracks every tunnel against its release.

import type { ClientRequest, IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { createProxyServer } from "http-proxy-3";
import type { Pool } from "undici";
import { buildUpgradeHeaders, stripUpgradeResponseHeaders } from "./hop-by-hop.js";
import { sendRawStatus } from "./responses.js";
import type { BackendSlot, ReleaseSlot, RouteTable, Tracked, Waiter } from "./route-table.js";

export interface WsForwarderOptions {
  table: RouteTable<Pool>;
  holdTimeoutMs: number;
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
      const release = options.table.active;
      if (release === null) {
        sendRawStatus(socket, 503);
        return;
      }
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
    const req = this.req;
    req.headers = buildUpgradeHeaders(req.headers, req.socket.remoteAddress);
    this.context.start(this, req, this.socket, this.head, backend);
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
      this.upstream = proxySocket;
      stripUpgradeResponseHeaders(proxyRes.headers);
      if (this.state === "done") proxySocket.destroy();
      else this.state = "open";
    });
    proxyReq.prependListener("response", (proxyRes: IncomingMessage) => {
      this.responded = true;
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

  private giveUp(): void {
    this.state = "done";
    sendRawStatus(this.socket, this.context.table.active === null ? 503 : 502);
  }

  // Stops counting the tunnel and releases the upstream side (pending handshake or socket);
  // after a client close the upstream gets what was already piped to it before it closes.
  private finish(hard: boolean): void {
    this.state = "done";
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

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }
}

function ignore(): void {}
