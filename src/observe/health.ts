// HTTP readiness probing: one GET per probe on a fresh connection, so a probe
// says whether the process accepts new connections, not whether an old one lives.
import http from "node:http";
import type { Socket } from "node:net";

export interface HealthProbeResult {
  ok: boolean;
  status?: number;
  error?: string;
  /** True when the connection was refused: nothing listens on the port yet, so no request reached the app. */
  refused?: boolean;
  ms: number;
}

/**
 * One GET host:port/path; ok on 2xx. Never rejects: failures and timeouts come back as results.
 * A connection to itself counts as refused (see isSelfConnected). `localPort` is the port to
 * connect from (the kernel picks one when it is unset; the tests use it to force a self-connect).
 */
export function probeHttp(host: string, port: number, path: string, timeoutMs: number, signal?: AbortSignal, localPort?: number): Promise<HealthProbeResult> {
  const startedAt = performance.now();
  const elapsed = (): number => Math.round(performance.now() - startedAt);
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: Omit<HealthProbeResult, "ms">): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      request.destroy();
      resolve({ ...result, ms: elapsed() });
    };
    const onAbort = (): void => finish({ ok: false, error: "aborted" });
    const request = http.request({
      host,
      port,
      path,
      method: "GET",
      agent: false,
      headers: { Connection: "close", "User-Agent": "rollbridge-health" },
      ...(localPort === undefined ? {} : { localPort }),
    });
    request.on("socket", (socket) =>
      socket.once("connect", () => {
        if (isSelfConnected(socket)) finish(SELF_CONNECTED);
      }),
    );
    const timer = setTimeout(() => finish({ ok: false, error: `timed out after ${timeoutMs}ms` }), Math.max(0, timeoutMs));
    request.on("response", (response) => {
      const status = response.statusCode ?? 0;
      const result = { ok: status >= 200 && status < 300, status };
      // Read and discard the body so the answer is complete before it counts.
      response.on("data", () => undefined);
      response.on("end", () => finish(result));
      response.on("error", () => finish(result));
      response.on("aborted", () => finish(result));
    });
    request.on("error", (error: NodeJS.ErrnoException) => finish({ ok: false, error: error.message || error.code || "request failed", ...(error.code === "ECONNREFUSED" ? { refused: true } : {}) }));
    if (signal?.aborted) {
      onAbort();
      return;
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    request.end();
  });
}

const SELF_CONNECTED = { ok: false, refused: true, error: "connected to itself: nothing listens on the port yet" } as const;

/**
 * True when `socket` is connected to itself. With nobody listening on a port of the kernel's
 * ephemeral range, a connect to it can get that very port as its local port and connect to
 * itself (TCP simultaneous open). Until that socket closes it holds the port, and the app's
 * listen on it fails with EADDRINUSE; the probe would also read its own request as the answer.
 * So the probe closes it at once, as a refused one.
 */
function isSelfConnected(socket: Socket): boolean {
  return socket.localPort === socket.remotePort && socket.localAddress === socket.remoteAddress;
}

export interface HealthCheckOptions {
  host: string;
  port: number;
  path: string;
  intervalMs: number;
  timeoutMs: number;
  startDelayMs: number;
}

export type HealthCheckState = "pending" | "ready" | "failed" | "cancelled";

/**
 * For the first FAST_PROBE_WINDOW_MS of probing, a probe every FAST_PROBE_MS (or intervalMs
 * when shorter): an app that boots in 300 ms is seen within a few ms of listening rather than
 * up to a whole intervalMs later, which would be most of a deploy's overhead. While the port
 * still refuses connections (nothing listens yet, no request reaches the app) the next probe
 * comes after REFUSED_PROBE_MS, so the first request goes out as soon as the port accepts;
 * once it accepts, an app that answers non-2xx while it warms up gets one request every
 * FAST_PROBE_MS, not more. Probes never overlap (each waits for the previous one).
 */
export const FAST_PROBE_MS = 20;
export const FAST_PROBE_WINDOW_MS = 1000;
export const REFUSED_PROBE_MS = 4;

/**
 * Readiness gate for one starting process: after startDelayMs, probes every FAST_PROBE_MS
 * for a second (every REFUSED_PROBE_MS while the port refuses connections), then every
 * intervalMs, until the first 2xx (ready) or until timeoutMs has passed (failed).
 */
export class HealthCheck {
  readonly options: HealthCheckOptions;

  #state: HealthCheckState = "pending";
  #reason: string | undefined;
  #readyAt: number | undefined;
  #lastResult: HealthProbeResult | undefined;
  #started = false;
  #probes = 0;
  #timer: NodeJS.Timeout | undefined;
  #deadline = 0;
  readonly #abort = new AbortController();
  readonly #listeners: (() => void)[] = [];

  constructor(options: HealthCheckOptions) {
    this.options = options;
  }

  get state(): HealthCheckState {
    return this.#state;
  }

  get reason(): string | undefined {
    return this.#reason;
  }

  /** Epoch ms of the first 2xx answer. */
  get readyAt(): number | undefined {
    return this.#readyAt;
  }

  get lastResult(): HealthProbeResult | undefined {
    return this.#lastResult;
  }

  /** Probes sent so far. */
  get probes(): number {
    return this.#probes;
  }

  /** Epoch ms when probing began (after startDelayMs); undefined before that. */
  get probingSince(): number | undefined {
    return this.#deadline === 0 ? undefined : this.#deadline - Math.max(0, this.options.timeoutMs);
  }

  get url(): string {
    const { host, port, path } = this.options;
    const hostPart = host.includes(":") ? `[${host}]` : host;
    return `http://${hostPart}:${port}${path.startsWith("/") ? path : `/${path}`}`;
  }

  /** Fired once, on ready or failed. */
  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  start(): void {
    if (this.#started || this.#state !== "pending") return;
    this.#started = true;
    this.#timer = setTimeout(
      () => {
        this.#deadline = Date.now() + Math.max(0, this.options.timeoutMs);
        void this.#probeLoop();
      },
      Math.max(0, this.options.startDelayMs),
    );
  }

  /** Stops probing and aborts a probe in flight; a check already decided keeps its state. */
  cancel(): void {
    clearTimeout(this.#timer);
    this.#abort.abort();
    if (this.#state === "pending") this.#state = "cancelled";
  }

  async #probeLoop(): Promise<void> {
    const { host, port, path, intervalMs } = this.options;
    const fastUntil = Date.now() + FAST_PROBE_WINDOW_MS;
    while (this.#state === "pending") {
      const probeStartedAt = Date.now();
      const remaining = this.#deadline - probeStartedAt;
      if (remaining <= 0) {
        this.#fail();
        return;
      }
      const probeTimeout = Math.min(intervalMs * 4, 2000, remaining);
      this.#probes += 1;
      const result = await probeHttp(host, port, path, probeTimeout, this.#abort.signal);
      if (this.#state !== "pending") return;
      this.#lastResult = result;
      if (result.ok) {
        this.#readyAt = Date.now();
        this.#settle("ready");
        return;
      }
      const fast = probeStartedAt < fastUntil;
      const period = fast && result.refused === true ? Math.min(intervalMs, REFUSED_PROBE_MS) : fast ? Math.min(intervalMs, FAST_PROBE_MS) : intervalMs;
      // The next probe starts a period after this one started (at once if it took longer), never past the deadline.
      const wait = Math.min(Math.max(0, probeStartedAt + period - Date.now()), Math.max(0, this.#deadline - Date.now()));
      await new Promise<void>((resolve) => {
        this.#timer = setTimeout(resolve, wait);
      });
    }
  }

  #fail(): void {
    const last = this.#lastResult;
    const lastText = last === undefined ? "no answer" : last.status !== undefined ? `HTTP ${last.status}` : (last.error ?? "no answer");
    this.#reason = `health check GET ${this.url} did not return 2xx within ${this.options.timeoutMs}ms (last: ${lastText})`;
    this.#settle("failed");
  }

  #settle(state: "ready" | "failed"): void {
    this.#state = state;
    for (const listener of this.#listeners.splice(0)) {
      try {
        listener();
      } catch (error) {
        process.emitWarning(`rollbridge: a health listener threw: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }
}
