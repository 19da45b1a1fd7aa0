// The proxy's view of the world: releases (by key) with backends, and which release is active.
// Nothing here knows about processes or the reconcile loop; the executor pushes state in.

import type { AffinityOptions } from "./affinity.js";
import type { JudgeOptions, WindowCounts } from "./response-window.js";

export interface Backend {
  /** Stable id of the backing process instance, e.g. "web" or "web#1". */
  id: string;
  host: string;
  port: number;
  /** Only ready backends receive requests. */
  ready: boolean;
}

export interface ReleaseConnections {
  /** HTTP requests currently being forwarded to this release's backends. */
  inflight: number;
  /** Open upgraded (WebSocket) connections to this release's backends. */
  websockets: number;
  /** When a pinned client (affinity) last reached it while it was not the active release (epoch ms); absent: never. */
  lastPinnedAt?: number;
}

export interface ProxyTimeouts {
  /** http.Server headersTimeout */
  headersTimeoutMs: number;
  /** http.Server requestTimeout (0 = none) */
  requestTimeoutMs: number;
  /** http.Server keepAliveTimeout */
  keepAliveTimeoutMs: number;
  /** Upstream: max wait for response headers once a request is sent (undici headersTimeout, 0 = none). Default 300000. */
  upstreamHeadersTimeoutMs?: number;
  /** Upstream: max idle time between response body chunks (undici bodyTimeout, 0 = none). Default 300000. */
  upstreamBodyTimeoutMs?: number;
  /** Client: longest silence while a request body is being read, then 408 (0 = none). Default 60000. */
  bodyTimeoutMs?: number;
  /** Upstream: time to answer a WebSocket handshake, then 502 (0 = none). Default 30000. */
  upgradeTimeoutMs?: number;
}

export interface ProxySocketOptions {
  /** Absolute path of the unix socket. */
  path: string;
  /** Permission bits (write = may connect). */
  mode: number;
  /** Numeric group of the socket. */
  gid?: number | undefined;
}

export interface ProxyOptions {
  host: string;
  port: number;
  /** false: no TCP listener (then `socket` is the only one). Default true. */
  tcp?: boolean;
  /** A unix-socket listener next to (or instead of) TCP; its peers are trusted. */
  socket?: ProxySocketOptions | undefined;
  /** Peers whose X-Forwarded-* are kept (CIDRs or addresses). Default: loopback. */
  trustedProxies?: readonly string[];
  /** How long a request may wait for a ready backend of the active release before 502. */
  holdTimeoutMs: number;
  timeouts?: Partial<ProxyTimeouts>;
  /** The close code WebSockets get when closeRelease cuts them: 1001 (going away, the default) or 1012 (service restart). */
  drainCloseCode?: DrainCloseCode;
  /** Session affinity: how a client of a draining release keeps reaching it. Default none. */
  affinity?: AffinityOptions;
  /** How long closeRelease waits for the peers of what it cut to finish closing before it destroys their sockets. Default 2000. */
  closeWaitMs?: number;
  /** Called for proxy-level errors worth logging (never for ordinary client aborts). */
  onError?: (message: string, data: Record<string, unknown>) => void;
  /**
   * Called once per HTTP response when its status is known (the upstream's headers, or the
   * proxy's own 502/503/400), with the release it was routed to (null: none was active).
   * For metrics: it must be cheap, it runs on the hot path.
   */
  onResponse?: (releaseKey: string | null, status: number) => void;
  /**
   * Called when a judged release (see judge()) is over its error budget: at least minRequests
   * responses in its window and more than maxErrorRate of them failed. At most every 200 ms
   * while it lasts; the owner decides what to do (a rollback).
   */
  onBreach?: (releaseKey: string) => void;
}

/** How a canary step sends clients to one side: a cookie, a hash of the client address, or not at all. */
export type CanaryStickiness = "cookie" | "ip" | "none";

/** The WebSocket close codes a drain deadline may send (RFC 6455 7.4.1, IANA registry). */
export type DrainCloseCode = 1001 | 1012;

/** Where the proxy listens once listen() resolved. */
export interface ProxyListeners {
  /** The TCP address (port 0 and host "" when tcp is false). */
  host: string;
  port: number;
  /** The unix socket's path (symlinks of its directory resolved), or null. */
  socketPath: string | null;
  /** Problems worth telling the operator that do not stop the proxy (e.g. a directory nginx cannot traverse). */
  warnings: string[];
}

/** An already listening socket to serve on instead of binding one: a descriptor inherited through socket activation. */
export interface ListenHandle {
  fd: number;
}

/** Listeners that already exist (systemd socket activation): each one given is used instead of binding. */
export interface ProxyListenHandles {
  tcp?: ListenHandle | null;
  socket?: ListenHandle | null;
}

export interface ProxyServer {
  /**
   * Binds host:port and the unix socket, or serves on the handles given for them. Rejects with an
   * Error whose code is EADDRINUSE etc., or a RollbridgeError for the socket.
   */
  listen(handles?: ProxyListenHandles): Promise<ProxyListeners>;
  /** Sets (replaces) the backends of a release, and its display id (what the release cookie names). Creating a release is implicit. */
  setBackends(releaseKey: string, backends: Backend[], releaseId?: string): void;
  /** The one pointer swap: new requests and upgrades go to this release (null: 503 No active release). */
  setActive(releaseKey: string | null): void;
  activeRelease(): string | null;
  /** Allows or forbids pinned clients (affinity, sticky canaries) to reach a release; becoming active allows it. */
  setPinnable(releaseKey: string, pinnable: boolean): void;
  /**
   * A canary step: `weight`% of new requests and upgrades go to this release, the rest to the
   * active one (null: no canary, everything to the active release).
   */
  setCanary(canary: { releaseKey: string; weight: number; sticky: CanaryStickiness } | null): void;
  /** Starts (afresh) or stops counting a release's responses over a sliding window; breaches go to onBreach. */
  judge(releaseKey: string, options: JudgeOptions | null): void;
  /** A judged release's responses in its window (undefined when it is not judged). */
  responses(releaseKey: string): WindowCounts | undefined;
  /** `rollbridge pause` (true): new requests and upgrades wait (up to holdTimeoutMs, then 503); false lets them go in order. */
  setPaused(paused: boolean): void;
  /** Whether `rollbridge pause` holds requests (not the daemon's own hold at start). */
  paused(): boolean;
  /** The daemon's hold at start (true until it adopted what an earlier daemon left): requests wait as under a pause, which it neither reports nor ends. */
  setStartHold(hold: boolean): void;
  /** Counts per release key (zeros for an unknown key). */
  connections(releaseKey: string): ReleaseConnections;
  /** In-flight requests plus WebSockets on one backend (0 when unknown): a replaced process drains on this. */
  backendOutstanding(releaseKey: string, backendId: string, port: number): number;
  /**
   * Forgets the release and ends what it still has, as cleanly as each protocol allows: open
   * WebSockets get a close frame each way (drainCloseCode), streaming responses their last chunk
   * (or their FIN), requests still waiting for the app 504; resolves once those connections
   * closed, or closeWaitMs later with the rest destroyed. Then its upstream pools are closed.
   */
  closeRelease(releaseKey: string): Promise<void>;
  /** closeRelease for every release at once: a retiring daemon's last step before close, so nothing it still tunnels ends in a bare reset. */
  closeEveryRelease(): Promise<void>;
  /** The descriptors the listeners accept on (null: none, or not listening): what a handover passes on. */
  listenerFds(): { tcp: number | null; socket: number | null };
  /**
   * A handover's first step on the old daemon: stops accepting (the new daemon accepts on the same
   * sockets), keeps every open connection, and answers each further request with
   * `Connection: close` so keep-alive clients reconnect to the new daemon. The unix socket's path
   * stays (it is the new daemon's).
   */
  stopAccepting(): void;
  /** Client connections still open on the listeners (keep-alive, in flight, WebSockets). */
  openConnections(): Promise<number>;
  /** Stops listening and closes everything. */
  close(): Promise<void>;
}
