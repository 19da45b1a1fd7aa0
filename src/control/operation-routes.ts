// Control routes for day-to-day operations: rollback, restart, and the NDJSON follow streams
// behind `logs --follow` and `events --follow`.
import type http from "node:http";
import { PROCESS_POLICIES } from "../config/constants.js";
import { RollbridgeError } from "../errors.js";
import type { DaemonApi } from "./daemon-api.js";
import { logQuery } from "./log-query.js";
import { ndjsonStream } from "./ndjson-stream.js";
import type { RestartRequest } from "./protocol.js";
import type { Route } from "./server.js";

export function operationRoutes(daemon: DaemonApi): Route[] {
  return [
    { method: "POST", path: "/rollback", handler: (_req, _res, _url, body) => daemon.rollback(rollbackRequest(body)) },
    { method: "POST", path: "/restart", handler: (_req, _res, _url, body) => daemon.restart(restartRequest(body)) },
    { method: "GET", path: "/logs/follow", handler: (_req, res, url) => followLogs(daemon, res, url) },
    { method: "GET", path: "/events/follow", handler: (_req, res, url) => followEvents(daemon, res, url) },
  ];
}

/** The release a `POST /rollback` names, if any. */
function rollbackRequest(body: unknown): string | undefined {
  const releaseId = (body ?? {}) as { releaseId?: unknown };
  if (releaseId.releaseId !== undefined && (typeof releaseId.releaseId !== "string" || releaseId.releaseId === "")) throw new RollbridgeError("USAGE", "releaseId must be a non-empty string");
  return releaseId.releaseId as string | undefined;
}

/** A `POST /restart` selection: empty strings select nothing (everything), an unknown policy is refused. */
function restartRequest(body: unknown): RestartRequest {
  const raw = (body ?? {}) as { process?: unknown; policy?: unknown };
  const request: RestartRequest = {};
  if (typeof raw.process === "string" && raw.process !== "") request.process = raw.process;
  if (typeof raw.policy === "string" && raw.policy !== "") request.policy = raw.policy;
  if (request.policy !== undefined && !(PROCESS_POLICIES as readonly string[]).includes(request.policy)) {
    throw new RollbridgeError("USAGE", `unknown policy "${request.policy}"`, { fix: `use one of: ${PROCESS_POLICIES.join(", ")}` });
  }
  return request;
}

/** The bounded NDJSON writer of a follow stream; `off` (set once subscribed) stops producing when it is cut. */
function startStream(res: http.ServerResponse, what: string, fix: string): { write: (value: unknown, backlog?: boolean) => void; onCut: (off: () => void) => void } {
  let off = () => {};
  const out = ndjsonStream(res, { what, fix, onCut: () => off() });
  return { write: (value, backlog) => void out.write(value, backlog), onCut: (fn) => (off = fn) };
}

/** Streams the retained lines the query selects, then every new one, until the client goes away. */
function followLogs(daemon: DaemonApi, res: http.ServerResponse, url: URL): Promise<void> {
  const query = logQuery(url);
  // Checks the process id (UNKNOWN_PROCESS) before the stream starts.
  const retained = daemon.logs(query);
  const { write, onCut } = startStream(res, "logs --follow", "rollbridge logs shows the recent lines; follow again when the reader keeps up (e.g. not paused in a pager)");
  if (url.searchParams.get("retained") !== "false") for (const line of retained) write({ ...line, retained: true }, true);
  const off = daemon.followLogs(query, (line) => write(line));
  onCut(off);
  return untilClosed(res, off);
}

/** Streams the last `limit` events, then every new one, until the client goes away. */
function followEvents(daemon: DaemonApi, res: http.ServerResponse, url: URL): Promise<void> {
  const raw = url.searchParams.get("limit");
  const limit = raw === null ? 100 : Number(raw);
  if (!Number.isInteger(limit) || limit < 0) throw new RollbridgeError("USAGE", `expected a non-negative integer limit, got "${raw}"`);
  const { write, onCut } = startStream(res, "events --follow", "rollbridge events shows the recent history; follow again when the reader keeps up (e.g. not paused in a pager)");
  if (limit > 0) for (const event of daemon.events.recent(limit)) write(event, true);
  const off = daemon.events.subscribe((event) => write(event));
  onCut(off);
  return untilClosed(res, off);
}

function untilClosed(res: http.ServerResponse, cleanup: () => void): Promise<void> {
  return new Promise((resolve) => {
    res.on("close", () => {
      cleanup();
      resolve();
    });
  });
}
