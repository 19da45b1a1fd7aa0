// One WebSocket upgrade from arrival to close: held while the active release has no ready
// backend, counted against its release from the moment it is routed, 502 when the upstream fails
// before the handshake or does not answer it within upgradeTimeoutMs, and, once open, followed
// frame by frame (ws-close.ts) so that a drain deadline closes it with a close frame each way.

import type { ClientRequest, IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Pool } from "undici";
import type { CutOptions } from "./closing.js";
import type { WsForwarderOptions } from "./forward-ws.js";
import { stripUpgradeResponseHeaders } from "./hop-by-hop.js";
import { sendRawStatus } from "./responses.js";
import type { BackendSlot, ReleaseSlot, Tracked, Waiter } from "./route-table.js";
import { OpenTunnel } from "./ws-close.js";

/** What a tunnel needs from its forwarder: the options, and how to hand the upgrade to the library. */
export interface TunnelContext extends WsForwarderOptions {
  start(tunnel: WsTunnel, req: IncomingMessage, socket: Duplex, head: Buffer, backend: BackendSlot<Pool>): void;
}

type TunnelState = "new" | "held" | "connecting" | "open" | "done";

const kTunnel = Symbol("rollbridge.wsTunnel");
type TunnelSocket = Socket & { [kTunnel]?: WsTunnel };

/**
 * The library's 'open' event: it has just piped the two sockets (no byte flowed yet). The
 * tunnel starts following the frames now, after the library put the bytes that came with the
 * 101 back into the upstream socket: a 'data' listener added before that would take them alone.
 */
export function tunnelOpened(proxySocket: Socket): void {
  const tunnel = (proxySocket as TunnelSocket)[kTunnel];
  if (tunnel === undefined) return;
  delete (proxySocket as TunnelSocket)[kTunnel];
  tunnel.opened(proxySocket);
}

/** A WebSocket upgrade and, after the 101, the tunnel it became. */
export class WsTunnel implements Waiter, Tracked {
  private state: TunnelState = "new";
  private release: ReleaseSlot<Pool> | null = null;
  private backend: BackendSlot<Pool> | null = null;
  private proxyReq: ClientRequest | null = null;
  private upstream: Socket | null = null;
  private open: OpenTunnel | null = null;
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
    const route = this.context.table.heldRoute(this.req);
    if (route === null) return false;
    this.clearTimer();
    this.start(route.release, route.backend);
    return true;
  }

  /** close(): ends both sockets now. */
  destroy(): void {
    if (this.state === "held") this.leaveHold();
    this.finish(true);
    this.socket.destroy();
  }

  /**
   * The drain deadline: an open tunnel gets a close frame each way between two frames; a
   * handshake still waiting for its answer gets 502; an answer being relayed ends where it is.
   */
  cut(options: CutOptions): void {
    const socket = this.socket;
    switch (this.state) {
      case "open": {
        // Cut first: finish() then leaves both sockets to it.
        if (this.open !== null) this.open.cut(options);
        else socket.destroy();
        this.finish(false);
        return;
      }
      case "connecting":
        this.finish(true);
        options.closer.track(socket);
        if (!this.responded) {
          this.responded = true;
          sendRawStatus(socket, 502);
        } else socket.end();
        return;
      case "new":
      case "held":
      case "done":
        this.destroy();
        return;
      default: {
        const _exhaustive: never = this.state;
        return _exhaustive;
      }
    }
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
      const cookie = this.context.affinity.cookie ?? this.context.table.canary?.cookie ?? null;
      if (cookie !== null && this.release !== null) {
        const value = cookie.forResponse(this.req, this.release, this.context.trust);
        if (value !== null) proxyRes.headers["set-cookie"] = [...(proxyRes.headers["set-cookie"] ?? []), value];
      }
      if (this.state === "done") {
        proxySocket.destroy();
        return;
      }
      this.state = "open";
      (proxySocket as TunnelSocket)[kTunnel] = this;
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

  /** See tunnelOpened. */
  opened(proxySocket: Socket): void {
    if (this.state === "open" && this.upstream === proxySocket) this.open = new OpenTunnel(this.socket, proxySocket);
  }

  onUpstreamError(err: Error): void {
    // The library calls socket.destroySoon() right after this, which flushes our answer first.
    if (this.state !== "done" && !this.responded) {
      this.responded = true;
      const socket = this.socket;
      if (socket.writable) {
        socket.write("HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad gateway");
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
    if (this.state === "held") this.leaveHold();
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
    const table = this.context.table;
    sendRawStatus(this.socket, table.active === null || table.paused ? 503 : 502);
  }

  // Stops counting the tunnel and releases the upstream side (pending handshake or socket);
  // after a client close the upstream gets what was already piped to it before it closes. A cut
  // tunnel's sockets are left to the cut, which closes both after their closing handshakes.
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
      else if (this.open?.isCut !== true) this.upstream.destroySoon();
    } else this.proxyReq?.destroy();
  }

  private clearUpgradeTimer(): void {
    if (this.upgradeTimer !== null) {
      clearTimeout(this.upgradeTimer);
      this.upgradeTimer = null;
    }
  }

  /** Leaves the table's held upgrades, and stops the hold timer. */
  private leaveHold(): void {
    this.context.table.unhold(this);
    this.clearTimer();
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }
}

function ignore(): void {}
