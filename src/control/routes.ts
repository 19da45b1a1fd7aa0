// The control API's endpoints: each reads its request, asks the daemon (DaemonApi), and
// answers in the wire types of protocol.ts.
import type http from "node:http";
import type { DesiredDocument } from "../config/desired-schema.js";
import { RollbridgeError } from "../errors.js";
import type { DaemonApi, RolloutQuery } from "./daemon-api.js";
import { logQuery } from "./log-query.js";
import { ndjsonStream } from "./ndjson-stream.js";
import { operationRoutes } from "./operation-routes.js";
import { MAX_TIMEOUT_MS, type ApplyRequest, type LogsResponse, type ShutdownResponse, type WaitOutcome, type WaitProgress } from "./protocol.js";
import { rolloutRoutes } from "./rollout-routes.js";
import type { Route } from "./server.js";

/** How long the wait stream may stay silent while a rollout waits (the issue asks for ≤ 2 s). */
const PROGRESS_EVERY_MS = 1500;

export function controlRoutes(daemon: DaemonApi): Route[] {
  return [
    { method: "GET", path: "/status", handler: (_req, _res, url) => daemon.status({ all: url.searchParams.get("all") === "true" }) },
    {
      method: "GET",
      path: "/events",
      handler: (_req, _res, url) => ({ events: daemon.events.recent(positiveInt(url.searchParams.get("limit"), 1000)) }),
    },
    { method: "GET", path: "/logs", handler: (_req, _res, url): LogsResponse => ({ lines: daemon.logs(logQuery(url)) }) },
    { method: "PUT", path: "/desired", handler: (_req, _res, _url, body) => apply(daemon, body as ApplyRequest) },
    { method: "POST", path: "/diff", handler: (_req, _res, _url, body) => diff(daemon, body as { document?: DesiredDocument; input?: unknown } | undefined) },
    { method: "GET", path: "/wait", handler: (req, res, url) => wait(daemon, req, res, url) },
    {
      method: "POST",
      path: "/reconcile",
      handler: () => daemon.reconcile(),
    },
    ...operationRoutes(daemon),
    ...rolloutRoutes(daemon),
    { method: "POST", path: "/upgrade", handler: () => daemon.upgrade("upgrade command") },
    {
      method: "POST",
      path: "/shutdown",
      handler: (_req, res): ShutdownResponse => {
        res.on("finish", () => daemon.requestShutdown("shutdown command"));
        return { ok: true, pid: process.pid };
      },
    },
  ];
}

function positiveInt(value: string | null, fallback: number): number {
  if (value === null) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new RollbridgeError("USAGE", `expected a positive integer, got "${value}"`);
  return n;
}

async function apply(daemon: DaemonApi, body: ApplyRequest | undefined) {
  if (!body || typeof body !== "object" || !("document" in body || "input" in body)) throw new RollbridgeError("USAGE", "expected {document} or {input}");
  const document = "input" in body ? await daemon.documentFromInput(body.input) : body.document;
  return daemon.apply(document, { dryRun: body.dryRun === true });
}

async function diff(daemon: DaemonApi, body: { document?: DesiredDocument; input?: unknown } | undefined) {
  if (body && typeof body === "object" && "input" in body) return daemon.diff((await daemon.documentFromInput(body.input)) as DesiredDocument);
  return daemon.diff(body?.document);
}

/** Streams events (NDJSON) until the asked-for rollout converges, fails or times out. */
function wait(daemon: DaemonApi, req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
  const query: RolloutQuery = {
    generation: url.searchParams.get("generation"),
    stopped: url.searchParams.get("stopped") === "true",
    // --wait-drained: done only once every older release has drained and stopped too.
    drained: url.searchParams.get("drained") === "true",
    sinceSeq: Number(url.searchParams.get("since") ?? daemon.events.lastSeq()),
    startedAt: Date.now(),
  };
  const timeoutMs = waitTimeout(url.searchParams.get("timeoutMs"));
  // Cut when the CLI falls 1 MiB behind: the wait ends here, the rollout does not.
  let stop = () => {};
  const out = ndjsonStream(res, { what: "apply --wait", fix: "the rollout goes on without this wait: rollbridge status (or rollbridge events) shows how it ends", onCut: () => stop() });
  const write = (value: unknown) => void out.write(value);
  for (const event of daemon.events.recent()) if (event.seq > query.sinceSeq) out.write({ event }, true);

  return new Promise<void>((resolve) => {
    let done = false;
    // Outcomes that read the plan wait for a pass after this request (the write is adopted by then).
    let fresh = false;
    let lastLineAt = Date.now();
    const finish = (outcome: WaitOutcome) => {
      if (done) return;
      done = true;
      unsubscribe();
      offPass();
      clearInterval(ticker);
      if (timer) clearTimeout(timer);
      out.end({ outcome });
      resolve();
    };
    // Once the timeout fired, its answer is the one (an abandon's own pass must not answer "failed" first).
    let timedOut = false;
    const check = () => {
      if (timedOut) return;
      const outcome = daemon.rolloutOutcome(query, fresh);
      if (outcome) finish(outcome);
    };
    // Between events, at least every 2 s: what the rollout waits for (a pending health check, a drain).
    const progress = () => {
      if (done || Date.now() - lastLineAt < PROGRESS_EVERY_MS) return;
      const lines = daemon.rolloutProgress(query);
      if (lines.length === 0) return;
      lastLineAt = Date.now();
      for (const message of lines) write({ progress: { message } satisfies WaitProgress });
    };
    const unsubscribe = daemon.events.subscribe((event) => {
      lastLineAt = Date.now();
      write({ event });
    });
    const offPass = daemon.onPass(() => {
      fresh = true;
      check();
    });
    const ticker = setInterval(() => {
      check();
      progress();
    }, 250);
    const onTimeout = async () => {
      timedOut = true;
      finish(await daemon.rolloutTimedOut(query, timeoutMs, url.searchParams.get("abort") === "true"));
    };
    const timer = timeoutMs > 0 ? setTimeout(() => void onTimeout(), timeoutMs) : null;
    stop = () => {
      if (!done) {
        done = true;
        unsubscribe();
        offPass();
        clearInterval(ticker);
        if (timer) clearTimeout(timer);
        resolve();
      }
    };
    req.on("close", stop);
    daemon.trigger("wait");
  });
}

/** `timeoutMs` of a wait: 0 (none) up to MAX_TIMEOUT_MS; anything else is refused before the stream starts. */
function waitTimeout(raw: string | null): number {
  if (raw === null) return 0;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new RollbridgeError("USAGE", `timeoutMs "${raw}" is not a non-negative whole number of milliseconds`);
  if (n > MAX_TIMEOUT_MS) throw new RollbridgeError("USAGE", `timeoutMs ${raw} is over ${MAX_TIMEOUT_MS} ms (about 24.8 days), the longest a timer can wait`, { fix: "pass a shorter timeout, or none" });
  return n;
}
