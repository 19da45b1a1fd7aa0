// HTTP+JSON over the control unix socket (so `curl --unix-socket` works). The only control
// surface: there is no TCP control port.
import http from "node:http";
import { RollbridgeError, errorMessage, isRollbridgeError, type ErrorCode } from "../errors.js";
import { API_PREFIX } from "./protocol.js";

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, url: URL, body: unknown) => Promise<unknown> | unknown;

export interface Route {
  method: "GET" | "POST" | "PUT";
  path: string;
  handler: Handler;
}

// Above the desired-file cap (1 MiB of YAML can take more as JSON), so that cap's error is the one seen.
const MAX_BODY = 4 * 1024 * 1024;

/** A control request that ended in an error answer (4xx/5xx): the daemon records it as an event. */
export interface FailedRequest {
  method: string;
  path: string;
  status: number;
  code: string;
  message: string;
}

export interface ControlServerOptions {
  onFailure?: (failure: FailedRequest) => void;
}

export function createControlServer(routes: Route[], options: ControlServerOptions = {}): http.Server {
  const server = http.createServer((req, res) => {
    void handle(routes, req, res, options);
  });
  server.on("clientError", (_err, socket) => socket.destroy());
  return server;
}

async function handle(routes: Route[], req: http.IncomingMessage, res: http.ServerResponse, options: ControlServerOptions): Promise<void> {
  const url = new URL(req.url ?? "/", "http://rollbridge");
  const route = routes.find((r) => r.method === req.method && API_PREFIX + r.path === url.pathname);
  try {
    if (!route) {
      const known = routes.some((r) => API_PREFIX + r.path === url.pathname);
      throw new RollbridgeError("USAGE", known ? `method ${req.method} not allowed on ${url.pathname}` : `no such endpoint ${url.pathname}`);
    }
    const body = req.method === "GET" ? undefined : await readJson(req);
    const result = await route.handler(req, res, url, body);
    if (res.headersSent || res.writableEnded) return;
    sendJson(res, 200, result ?? { ok: true });
  } catch (error) {
    if (res.headersSent) {
      res.end();
      return;
    }
    const code: ErrorCode = isRollbridgeError(error) ? error.code : "CONTROL_REQUEST_FAILED";
    const payload: { code: string; message: string; fix?: string; details?: unknown } = { code, message: errorMessage(error) };
    if (isRollbridgeError(error)) {
      if (error.fix) payload.fix = error.fix;
      if (error.details !== undefined) payload.details = error.details;
    }
    const status = statusFor(code);
    sendJson(res, status, { error: payload });
    try {
      options.onFailure?.({ method: req.method ?? "?", path: url.pathname, status, code, message: payload.message });
    } catch {
      // recording the failure must not break the answer
    }
  }
}

export function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function statusFor(code: ErrorCode): number {
  switch (code) {
    case "USAGE":
    case "DESIRED_INVALID":
    case "CONFIG_INVALID":
      return 400;
    case "UNKNOWN_RELEASE":
    case "UNKNOWN_PROCESS":
      return 404;
    case "NO_PREVIOUS_RELEASE":
    case "RELEASE_ALREADY_ACTIVE":
    case "NO_ROLLOUT":
      return 409;
    case "NOT_SUPPORTED":
      return 501;
    case "TIMEOUT":
      return 504;
    default:
      return 500;
  }
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new RollbridgeError("USAGE", `request body over ${MAX_BODY} bytes (4 MiB)`, { fix: "send a smaller request; a desired document may be at most 1 MiB" });
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch (cause) {
    throw new RollbridgeError("USAGE", "request body is not valid JSON", { cause });
  }
}
