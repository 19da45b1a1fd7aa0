// One forwarded HTTP request: the undici dispatch handler (the direct, allocation-free callback
// API) and the route table's entry for it at once. Bodies stream both ways with backpressure;
// nothing is buffered. A request body that stalls for bodyTimeoutMs gets 408 and is aborted
// upstream.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Dispatcher, Pool } from "undici";
import type { CutOptions } from "./closing.js";
import type { HttpForwarderOptions } from "./forward-http.js";
import { buildResponseHeaders } from "./hop-by-hop.js";
import { buildRequestHeaders, type RequestFacts } from "./request-headers.js";
import { originForm } from "./request-target.js";
import { sendStatus } from "./responses.js";
import type { BackendSlot, ReleaseSlot, Tracked, Waiter } from "./route-table.js";
import { countStreamed } from "./young-gc.js";

// Only these are replayed on another backend, and only when no request body was sent.
const RETRYABLE_METHODS = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);
// Errors meaning the upstream never produced a response byte: refused, reset or closed early.
const RETRYABLE_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ECONNABORTED", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL", "UND_ERR_SOCKET", "UND_ERR_CONNECT_TIMEOUT", "UND_ERR_DESTROYED"]);
// The pool was closed before the request was written (its backend was just removed): safe to
// send elsewhere whatever the method.
const NEVER_SENT_CODE = "UND_ERR_CLOSED";
const INVALID_REQUEST_CODES = new Set(["UND_ERR_INVALID_ARG", "UND_ERR_NOT_SUPPORTED"]);
const NO_HEADERS: string[] = [];

type ExchangeState = "new" | "held" | "dispatched" | "streaming" | "done";

const kExchange = Symbol("rollbridge.exchange");
type ExchangeResponse = ServerResponse & { [kExchange]?: HttpExchange };
type ExchangeRequest = IncomingMessage & { [kExchange]?: HttpExchange };

// Shared listeners (`this` is the response or request) instead of closures per request.
function onResponseClose(this: ExchangeResponse): void {
  this[kExchange]?.onClientClose();
}

function onResponseDrain(this: ExchangeResponse): void {
  this[kExchange]?.onClientDrain();
}

// Node passes the socket: req.socket may already be detached once the answer went out.
function onBodyTimeout(this: ExchangeRequest, socket: Socket): void {
  this[kExchange]?.onBodyTimeout(socket);
}

function onBodyEnd(this: ExchangeRequest): void {
  this[kExchange]?.onBodyEnd();
}

function onBodyTimeoutConfirmed(exchange: HttpExchange, socket: Socket, bytesRead: number): void {
  exchange.onBodyTimeoutConfirmed(socket, bytesRead);
}

function onHoldTimeout(exchange: HttpExchange): void {
  exchange.onHoldTimeout();
}

/** A request on its way upstream; `reject` is non-zero when the proxy must answer it itself. */
export class HttpExchange implements Dispatcher.DispatchHandler, Waiter, Tracked, RequestFacts {
  private state: ExchangeState = "new";
  private release: ReleaseSlot<Pool> | null = null;
  private backend: BackendSlot<Pool> | null = null;
  private abortUpstream: ((err?: Error) => void) | null = null;
  private resumeUpstream: (() => void) | null = null;
  private tried: BackendSlot<Pool>[] | null = null;
  private deadline = 0;
  private timer: NodeJS.Timeout | null = null;
  private drainListened = false;
  private bodyTimerArmed = false;
  /** When the request first went to a release whose response times are judged (0: not timed). */
  private sentAt = 0;
  /** origin-form target sent upstream (an absolute-form one is rewritten). */
  private readonly path: string;
  private readonly headers: string[];
  hasBody = false;
  reject: 0 | 400 | 501 = 0;
  prevTracked: Tracked | null = null;
  nextTracked: Tracked | null = null;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly options: HttpForwarderOptions,
    trusted: boolean,
  ) {
    const url = req.url ?? "/";
    if (url.charCodeAt(0) === 0x2f) {
      this.path = url;
      this.headers = buildRequestHeaders(req, trusted, null, this);
    } else {
      // absolute-form (a client that takes us for a forward proxy): origin-form with Host from the URI
      const target = originForm(url);
      this.path = target?.path ?? url;
      this.headers = target === null ? NO_HEADERS : buildRequestHeaders(req, trusted, target.host, this);
      if (target === null) this.reject = 400;
    }
    (res as ExchangeResponse)[kExchange] = this;
    res.on("close", onResponseClose);
  }

  /** Sends the request to `backend`; counts it against the release until it ends. */
  dispatch(release: ReleaseSlot<Pool>, backend: BackendSlot<Pool>): void {
    this.state = "dispatched";
    this.release = release;
    this.backend = backend;
    backend.outstanding++;
    release.inflight.add(this);
    if (this.sentAt === 0 && release.judge !== null && release.judge.timed) this.sentAt = Date.now();
    const req = this.req;
    if (this.hasBody && !this.bodyTimerArmed && this.options.bodyTimeoutMs > 0 && !req.complete) this.armBodyTimer();
    // Errors, including invalid arguments, arrive through onError (possibly synchronously).
    backend.pool.dispatch({ path: this.path, method: req.method ?? "GET", headers: this.headers, body: this.hasBody ? req : null }, this);
  }

  /** Waits (without reading the body) for a ready backend until the hold deadline. */
  hold(): void {
    const now = Date.now();
    if (this.deadline === 0) this.deadline = now + this.options.holdTimeoutMs;
    const remaining = this.deadline - now;
    if (remaining <= 0) {
      this.giveUp();
      return;
    }
    this.state = "held";
    this.options.table.hold(this);
    this.timer = setTimeout(onHoldTimeout, remaining, this);
  }

  tryRoute(): boolean {
    if (this.state !== "held") return true;
    const route = this.options.table.heldRoute(this.req);
    if (route === null) return false;
    this.clearTimer();
    this.dispatch(route.release, route.backend);
    return true;
  }

  destroy(): void {
    const state = this.state;
    if (state === "done") return;
    this.state = "done";
    if (state === "held") this.leaveHold();
    this.abort();
    this.detach();
    this.res.destroy();
  }

  /**
   * The drain deadline. A response under way ends as its framing allows: a chunked one with its
   * last chunk, and its connection is closed (for a Content-Length or close-delimited body the
   * FIN is the end, short or not); a request the app has not answered yet gets 504.
   */
  cut(options: CutOptions): void {
    const state = this.state;
    switch (state) {
      case "streaming": {
        this.state = "done";
        this.resumeUpstream = null;
        this.abort();
        this.detach();
        const res = this.res;
        const socket = res.socket;
        if (socket === null) {
          res.destroy();
          return;
        }
        options.closer.track(socket);
        res.end();
        socket.end();
        return;
      }
      case "dispatched": {
        const releaseKey = this.release?.key ?? null;
        this.state = "done";
        this.abort();
        this.detach();
        const socket = this.res.socket;
        if (socket !== null) options.closer.track(socket);
        this.options.onResponse?.(releaseKey, 504);
        sendStatus(this.res, 504);
        return;
      }
      case "new":
      case "held":
      case "done":
        this.destroy();
        return;
      default: {
        const _exhaustive: never = state;
        return _exhaustive;
      }
    }
  }

  // --- undici dispatch handler ---

  onConnect(abort: (err?: Error) => void): void {
    if (this.state === "done") abort();
    else this.abortUpstream = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // informational (103 ...): not relayed
    this.state = "streaming";
    this.resumeUpstream = resume;
    const release = this.release;
    this.options.onResponse?.(release?.key ?? null, statusCode);
    if (release !== null && release.judge !== null) release.judge.record(statusCode >= 500, this.sentAt);
    const headers = buildResponseHeaders(rawHeaders);
    // The release cookie: with proxy.affinity cookie, and during a sticky-cookie canary.
    const cookie = this.options.affinity.cookie ?? this.options.table.canary?.cookie ?? null;
    if (cookie !== null && release !== null) {
      const value = cookie.forResponse(this.req, release, this.options.trust);
      if (value !== null) headers.push("set-cookie", value);
    }
    if (statusText) this.res.writeHead(statusCode, statusText, headers);
    else this.res.writeHead(statusCode, headers);
    return true;
  }

  onData(chunk: Buffer): boolean {
    countStreamed(chunk.length);
    const res = this.res;
    if (res.write(chunk)) return true;
    // One listener per response, added at its first pause (not a once-wrapper per pause).
    if (!this.drainListened) {
      this.drainListened = true;
      res.on("drain", onResponseDrain);
    }
    return false;
  }

  /** A piece of the request body went upstream (undici passes the chunk; its types say a size). */
  onBodySent(chunk: { length: number } | number): void {
    countStreamed(typeof chunk === "number" ? chunk : chunk.length);
  }

  onComplete(): void {
    this.state = "done";
    this.abortUpstream = null;
    this.detach();
    this.res.end();
  }

  onError(err: Error): void {
    const state = this.state;
    const failed = this.backend;
    const release = this.release;
    const releaseKey = release?.key ?? null;
    this.abortUpstream = null;
    this.detach();
    if (state === "done") return;
    const res = this.res;
    if (res.headersSent) {
      this.state = "done";
      this.report("upstream failed mid-response", err, failed);
      res.destroy();
      return;
    }
    const code = (err as { code?: unknown }).code;
    if (typeof code === "string" && INVALID_REQUEST_CODES.has(code)) {
      this.state = "done";
      this.options.onResponse?.(releaseKey, 400);
      sendStatus(res, 400);
      return;
    }
    if (failed !== null && this.isRetryable(code)) {
      (this.tried ??= []).push(failed);
      this.route();
      return;
    }
    this.state = "done";
    this.report("upstream request failed", err, failed);
    this.options.onResponse?.(releaseKey, 502);
    if (release !== null && release.judge !== null) release.judge.record(true, this.sentAt);
    sendStatus(res, 502);
  }

  // --- internals ---

  /** The client's socket took what was written: resume the body (undici ignores it when not paused). */
  onClientDrain(): void {
    if (this.state === "streaming") this.resumeUpstream?.();
  }

  onClientClose(): void {
    const state = this.state;
    if (state === "done") return;
    this.state = "done";
    if (state === "held") {
      this.leaveHold();
      return;
    }
    this.abort();
    this.detach();
  }

  onHoldTimeout(): void {
    this.timer = null;
    if (this.state !== "held") return;
    this.options.table.unhold(this);
    this.giveUp();
  }

  /**
   * The client's socket saw no byte for bodyTimeoutMs while its body was incomplete. Only a pause
   * while we were reading counts: when the upstream (or a hold) stopped us reading, the timer is
   * armed again. After the answer went out, a stalled body only holds the connection: it is cut.
   */
  onBodyTimeout(socket: Socket): void {
    const req = this.req;
    if (req.complete) return;
    const state = this.state;
    if (state === "done") {
      socket.destroy();
      return;
    }
    if (req.readableFlowing !== true || state === "held") {
      socket.setTimeout(this.options.bodyTimeoutMs);
      return;
    }
    // Timers run before I/O in an event-loop turn: after the daemon was starved of CPU, bytes may
    // be waiting to be read. Decide after this turn's reads, on whether any arrived.
    setImmediate(onBodyTimeoutConfirmed, this, socket, socket.bytesRead);
  }

  onBodyTimeoutConfirmed(socket: Socket, bytesRead: number): void {
    const req = this.req;
    if (req.complete || this.state === "done" || socket.destroyed) return;
    if (socket.bytesRead !== bytesRead || req.readableFlowing !== true || this.state === "held") {
      socket.setTimeout(this.options.bodyTimeoutMs);
      return;
    }
    this.state = "done";
    this.abort();
    this.detach();
    this.options.onResponse?.(this.release?.key ?? null, 408);
    sendStatus(this.res, 408);
  }

  /** The body arrived whole: the socket's idle timer goes back to the server's (none while a response is due). */
  onBodyEnd(): void {
    if (!this.res.writableFinished) this.req.socket?.setTimeout(0);
  }

  private armBodyTimer(): void {
    this.bodyTimerArmed = true;
    const req = this.req as ExchangeRequest;
    req[kExchange] = this;
    // IncomingMessage emits 'timeout' only while the request is incomplete: exactly the body phase.
    req.on("timeout", onBodyTimeout);
    req.once("end", onBodyEnd);
    req.socket.setTimeout(this.options.bodyTimeoutMs);
  }

  private route(): void {
    const table = this.options.table;
    const release = table.active;
    const backend = release === null ? null : table.pick(release, this.tried);
    if (release !== null && backend !== null) this.dispatch(release, backend);
    else this.hold();
  }

  private giveUp(): void {
    this.state = "done";
    const table = this.options.table;
    const active = table.active;
    // Held by `pause` past the hold timeout: 503, the service is unavailable on purpose.
    const status = active === null || table.paused ? 503 : 502;
    this.options.onResponse?.(active?.key ?? null, status);
    sendStatus(this.res, status);
  }

  private isRetryable(code: unknown): boolean {
    if (code === NEVER_SENT_CODE) return true;
    return !this.hasBody && typeof code === "string" && RETRYABLE_CODES.has(code) && RETRYABLE_METHODS.has(this.req.method ?? "");
  }

  private abort(): void {
    const abort = this.abortUpstream;
    this.abortUpstream = null;
    if (abort !== null) abort();
  }

  private detach(): void {
    const backend = this.backend;
    if (backend === null) return;
    this.backend = null;
    backend.outstanding--;
    this.release?.inflight.delete(this);
    this.release = null;
  }

  /** Leaves the table's held requests, and stops the hold timer. */
  private leaveHold(): void {
    this.options.table.unhold(this);
    this.clearTimer();
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private report(message: string, err: Error, backend: BackendSlot<Pool> | null): void {
    this.options.onError(message, {
      error: err.message,
      code: (err as { code?: unknown }).code,
      backend: backend?.id,
      method: this.req.method,
      url: this.req.url,
    });
  }
}
