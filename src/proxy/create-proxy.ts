// The proxy adapter: http.Servers (TCP, and optionally a unix socket) whose requests go to the
// active release's backends over undici pools and whose WebSocket upgrades go through
// http-proxy-3. The only module of ours that knows these libraries (with its helpers
// forward-http.ts, http-exchange.ts and forward-ws.ts).

import { linkSync, renameSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import net, { type AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { Pool as UndiciPool } from "undici";
import { Affinity, ReleaseCookie } from "./affinity.js";
import { CanarySplit } from "./canary.js";
import { SocketCloser } from "./closing.js";
import { createHttpForwarder } from "./forward-http.js";
import { createWsForwarder, isWebSocketUpgrade, type WsForwarder } from "./forward-ws.js";
import { reparseAsPlainRequest } from "./plain-upgrade.js";
import { sendRawStatus } from "./responses.js";
import { ResponseWindow } from "./response-window.js";
import { RouteTable } from "./route-table.js";
import { TrustedPeers, markUnixPeer } from "./trusted-peers.js";
import { RollbridgeError } from "../errors.js";
import type { ListenHandle, ProxyListenHandles, ProxyListeners, ProxyOptions, ProxyServer, ProxyTimeouts } from "./types.js";
import { listenUnix, type BoundUnixSocket } from "./unix-listener.js";

// Only the Pool class (and what it requires): undici's index also loads fetch, WebSocket,
// EventSource, the cache and mock agents, which the proxy never uses — 8.8 MB of the daemon's
// RSS and 3 MB of its heap, measured here (undici 7 has no exports map; it is the same class).
// The proxy calls dispatch(), close() and destroy() only: request()/stream()/pipeline() are
// put on the prototype by undici's index, so they are missing here unless it is loaded too.
const Pool = createRequire(import.meta.url)("undici/lib/dispatcher/pool.js") as typeof UndiciPool;
type Pool = UndiciPool;

export const DEFAULT_TIMEOUTS: Required<ProxyTimeouts> = {
  headersTimeoutMs: 60_000,
  requestTimeoutMs: 0,
  keepAliveTimeoutMs: 5_000,
  upstreamHeadersTimeoutMs: 300_000,
  upstreamBodyTimeoutMs: 300_000,
  bodyTimeoutMs: 60_000,
  upgradeTimeoutMs: 30_000,
};

export const DEFAULT_TRUSTED_PROXIES: readonly string[] = ["127.0.0.0/8", "::1/128"];

/** How long a cut connection's peer has to answer its close (a close frame, reading the last chunk). */
export const DEFAULT_CLOSE_WAIT_MS = 2000;

/**
 * The stream buffer limit of every socket the proxy reads and writes (client and upstream, both
 * directions). Node's default (16 KiB; undici's upstream sockets 64 KiB) is at most one socket
 * read (64 KiB), so each chunk of a large body filled a buffer and paused its source until the
 * next 'drain': a pause and a resume per chunk, on both hops. 256 KiB lets a few reads flow
 * between two drains and still bounds what a stalled side holds per connection (backpressure
 * stays: a full buffer pauses the other side).
 */
export const STREAM_HIGH_WATER_MARK = 256 * 1024;

/** Creates the traffic proxy; nothing listens until listen() is called. */
export function createProxy(options: ProxyOptions): ProxyServer {
  const timeouts = resolveTimeouts(options.timeouts);
  const onError = options.onError ?? noop;
  const closeCode = options.drainCloseCode ?? 1001;
  const closeWaitMs = options.closeWaitMs ?? DEFAULT_CLOSE_WAIT_MS;
  const trust = new TrustedPeers(options.trustedProxies ?? DEFAULT_TRUSTED_PROXIES);
  const table = new RouteTable<Pool>(
    (origin) =>
      new Pool(origin, {
        // net.connect passes it to the socket's streams; Node's types for connect options lack it.
        connect: { highWaterMark: STREAM_HIGH_WATER_MARK } as UndiciPool.Options["connect"],
        headersTimeout: timeouts.upstreamHeadersTimeoutMs,
        bodyTimeout: timeouts.upstreamBodyTimeoutMs,
      }),
  );
  const affinity = new Affinity(options.affinity ?? { mode: "none" }, table);
  const forwardHttp = createHttpForwarder({
    table,
    affinity,
    trust,
    holdTimeoutMs: options.holdTimeoutMs,
    bodyTimeoutMs: timeouts.bodyTimeoutMs,
    onError,
    onResponse: options.onResponse,
  });
  const ws = createWsForwarder({ table, affinity, trust, holdTimeoutMs: options.holdTimeoutMs, upgradeTimeoutMs: timeouts.upgradeTimeoutMs, onError });
  // After stopAccepting (a handover), every response asks its client to reconnect (to the new daemon).
  let keepAlive = true;
  const serveHttp = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (!keepAlive) res.shouldKeepAlive = false;
    forwardHttp(req, res);
  };
  const make = () => createServer(timeouts, serveHttp, ws, onError);
  const tcpServer = options.tcp === false ? null : make();
  const unixServer = options.socket === undefined ? null : make();
  // Prepended: the mark is on the socket before the HTTP parser reads a byte from it.
  unixServer?.prependListener("connection", markUnixPeer);

  let bound: BoundUnixSocket | null = null;
  let closing: Promise<void> | null = null;
  const servers = [tcpServer, unixServer].filter((server): server is http.Server => server !== null);

  return {
    async listen(handles = {}) {
      const listeners: ProxyListeners = { host: "", port: 0, socketPath: null, warnings: [] };
      refuseUnusable(handles, tcpServer !== null, unixServer !== null);
      if (tcpServer !== null) {
        const address = handles.tcp ? await listenOn(tcpServer, handles.tcp) : await listenTcp(tcpServer, options.port, options.host);
        if (typeof address === "string" || address === null) {
          throw new RollbridgeError("CONFIG_INVALID", "the inherited proxy socket is not a TCP socket", { fix: "pass the unix socket as proxy-socket (FileDescriptorName=proxy-socket), or a TCP ListenStream= as proxy" });
        }
        listeners.host = address.address;
        listeners.port = address.port;
        if (handles.tcp && (address.port !== options.port || address.address !== options.host)) {
          listeners.warnings.push(`the inherited proxy socket listens on ${address.address}:${address.port}, not on proxy.host:proxy.port ${options.host}:${options.port}; serving on the inherited one`);
        }
      }
      if (unixServer !== null && handles.socket) {
        const address = await listenOn(unixServer, handles.socket);
        listeners.socketPath = typeof address === "string" ? address : String(address);
      } else if (unixServer !== null && options.socket !== undefined) {
        try {
          bound = await listenUnix(unixServer, options.socket);
        } catch (error) {
          if (tcpServer?.listening) await new Promise<void>((resolve) => tcpServer.close(() => resolve()));
          throw error;
        }
        listeners.socketPath = bound.path;
        listeners.warnings.push(...bound.warnings);
      }
      return listeners;
    },
    setBackends(releaseKey, backends, releaseId) {
      table.setBackends(releaseKey, backends, releaseId);
    },
    setPinnable(releaseKey, pinnable) {
      table.setPinnable(releaseKey, pinnable);
    },
    setActive(releaseKey) {
      table.setActive(releaseKey);
    },
    activeRelease() {
      return table.active?.key ?? null;
    },
    setCanary(canary) {
      if (canary === null) {
        // A canary that did not become the active release is no longer reachable by its cookie.
        const ended = table.canary?.release;
        if (ended !== undefined && ended !== table.active) ended.pinnable = false;
        table.canary = null;
        return;
      }
      const slot = table.slot(canary.releaseKey);
      // A weight change keeps the split (its running sum and its sticky sides).
      if (table.canary?.release === slot && table.canary.sticky === canary.sticky) table.canary.weight = canary.weight;
      else table.canary = new CanarySplit(slot, canary.weight, canary.sticky, trust, table, affinity.cookie ?? new ReleaseCookie());
      // A pinned client (the release cookie) may reach the canary while it runs.
      slot.pinnable = true;
    },
    judge(releaseKey, judgeOptions) {
      const slot = table.slot(releaseKey);
      const onBreach = options.onBreach;
      slot.judge = judgeOptions === null ? null : new ResponseWindow(judgeOptions, () => onBreach?.(releaseKey));
    },
    responses(releaseKey) {
      return table.peek(releaseKey)?.judge?.counts();
    },
    setPaused(paused) {
      table.setPaused(paused);
    },
    setStartHold(hold) {
      table.setStartHold(hold);
    },
    paused() {
      return table.pausedByUser;
    },
    connections(releaseKey) {
      return table.connections(releaseKey);
    },
    backendOutstanding(releaseKey, backendId, port) {
      return table.backendOutstanding(releaseKey, backendId, port);
    },
    closeRelease(releaseKey) {
      return table.closeRelease(releaseKey, { closeCode, closer: new SocketCloser() }, closeWaitMs);
    },
    async closeEveryRelease() {
      await Promise.all(table.releaseKeys().map((key) => table.closeRelease(key, { closeCode, closer: new SocketCloser() }, closeWaitMs)));
    },
    listenerFds() {
      return { tcp: fdOf(tcpServer), socket: fdOf(unixServer) };
    },
    stopAccepting() {
      keepAlive = false;
      // net.Server's own close: http.Server.close would also cut idle keep-alive connections,
      // racing a request the client is sending on one right now.
      if (tcpServer?.listening) netClose(tcpServer);
      if (unixServer?.listening) {
        // Closing a unix listener bound by path unlinks the path, which the new daemon serves
        // on now: a hard link keeps the socket, renamed back over the path in the same tick.
        const socketPath = bound?.path;
        const keep = socketPath === undefined ? null : `${socketPath}.handover-${process.pid}`;
        if (socketPath !== undefined && keep !== null) {
          try {
            linkSync(socketPath, keep);
          } catch {
            // cannot keep it: the path goes with the close, as without a handover
          }
        }
        netClose(unixServer);
        if (socketPath !== undefined && keep !== null) {
          try {
            renameSync(keep, socketPath);
          } catch {
            // no link was made
          }
        }
        // The path is the new daemon's now: never unlinked by this one.
        bound = null;
      }
    },
    openConnections() {
      return Promise.all(servers.map((server) => new Promise<number>((resolve) => server.getConnections((error, count) => resolve(error ? 0 : count))))).then((counts) => counts.reduce((a, b) => a + b, 0));
    },
    close() {
      closing ??= (async () => {
        const stopped = servers.map((server) => (server.listening ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve()));
        for (const server of servers) server.closeAllConnections();
        await table.closeAll();
        await Promise.all(stopped);
        await bound?.unlink();
      })();
      return closing;
    },
  };
}

function createServer(timeouts: Required<ProxyTimeouts>, forwardHttp: (req: http.IncomingMessage, res: http.ServerResponse) => void, ws: WsForwarder, onError: (message: string, data: Record<string, unknown>) => void): http.Server {
  const server = http.createServer(
    {
      headersTimeout: timeouts.headersTimeoutMs,
      requestTimeout: timeouts.requestTimeoutMs,
      keepAliveTimeout: timeouts.keepAliveTimeoutMs,
      // Node enforces headersTimeout/requestTimeout only when this sweep runs (default every
      // 30 s), so a half-sent request could hold its socket 30 s past the limit.
      connectionsCheckingInterval: checkingIntervalMs(timeouts),
      noDelay: true,
      highWaterMark: STREAM_HIGH_WATER_MARK,
    },
    forwardHttp,
  );
  server.keepAliveTimeout = timeouts.keepAliveTimeoutMs;

  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", noop);
    if (isWebSocketUpgrade(req)) ws.forward(req, socket, head);
    else reparseAsPlainRequest(server, req, socket, head);
  });

  // Same answers as Node's default (431 for oversized headers, 408 on timeout, else 400), but
  // a socket error can never escape as an unhandled 'error'.
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    socket.on("error", noop);
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
    if (err.code === "ECONNRESET" || !socket.writable || (inFlight && inFlight.headersSent)) {
      socket.destroy();
      return;
    }
    sendRawStatus(socket, err.code === "HPE_HEADER_OVERFLOW" ? 431 : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400);
  });

  // Errors before listening are listen() failures, reported by listen() itself.
  server.on("error", (err) => {
    if (server.listening) onError("proxy server error", { error: err.message });
  });
  return server;
}

/** The descriptor a listening server accepts on, or null. */
function fdOf(server: http.Server | null): number | null {
  const handle = (server as { _handle?: { fd?: number } | null } | null)?._handle;
  return server?.listening && typeof handle?.fd === "number" && handle.fd >= 0 ? handle.fd : null;
}

/** Stops accepting without touching the open connections (see stopAccepting). */
function netClose(server: http.Server): void {
  net.Server.prototype.close.call(server);
}

// An inherited listener: Node adopts the descriptor (its type guessed from the fd) and accepts on it.
function listenOn(server: http.Server, handle: ListenHandle): Promise<AddressInfo | string | null> {
  return new Promise((resolve, reject) => {
    const onListenError = (err: Error) => reject(err);
    server.once("error", onListenError);
    server.listen(handle, () => {
      server.off("error", onListenError);
      resolve(server.address());
    });
  });
}

// A handed-in listener for a server this config does not have is a setup mistake, said before anything binds.
function refuseUnusable(handles: ProxyListenHandles, tcp: boolean, unix: boolean): void {
  if (handles.tcp && !tcp)
    throw new RollbridgeError("CONFIG_INVALID", "a proxy socket was passed (socket activation) but proxy.tcp is false", { fix: "set proxy.tcp: true, or pass the socket as proxy-socket (FileDescriptorName=proxy-socket)" });
  if (handles.socket && !unix)
    throw new RollbridgeError("CONFIG_INVALID", "a proxy-socket was passed (socket activation) but the config has no proxy.socket", { fix: "add proxy.socket to the config, or drop that ListenStream= from the socket unit" });
}

function listenTcp(server: http.Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onListenError = (err: Error) => reject(err);
    server.once("error", onListenError);
    server.listen(port, host, () => {
      server.off("error", onListenError);
      resolve(server.address() as AddressInfo);
    });
  });
}

function resolveTimeouts(given: Partial<ProxyTimeouts> | undefined): Required<ProxyTimeouts> {
  return {
    headersTimeoutMs: given?.headersTimeoutMs ?? DEFAULT_TIMEOUTS.headersTimeoutMs,
    requestTimeoutMs: given?.requestTimeoutMs ?? DEFAULT_TIMEOUTS.requestTimeoutMs,
    keepAliveTimeoutMs: given?.keepAliveTimeoutMs ?? DEFAULT_TIMEOUTS.keepAliveTimeoutMs,
    upstreamHeadersTimeoutMs: given?.upstreamHeadersTimeoutMs ?? DEFAULT_TIMEOUTS.upstreamHeadersTimeoutMs,
    upstreamBodyTimeoutMs: given?.upstreamBodyTimeoutMs ?? DEFAULT_TIMEOUTS.upstreamBodyTimeoutMs,
    bodyTimeoutMs: given?.bodyTimeoutMs ?? DEFAULT_TIMEOUTS.bodyTimeoutMs,
    upgradeTimeoutMs: given?.upgradeTimeoutMs ?? DEFAULT_TIMEOUTS.upgradeTimeoutMs,
  };
}

// Half the shortest client timeout, at most 1 s: a slow client is cut within 1.5x its limit.
function checkingIntervalMs(timeouts: Required<ProxyTimeouts>): number {
  const limits = [timeouts.headersTimeoutMs, timeouts.requestTimeoutMs].filter((ms) => ms > 0);
  return Math.max(10, Math.round(Math.min(1000, ...limits.map((ms) => ms / 2))));
}

function noop(): void {}
