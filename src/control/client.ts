// The CLI's side of the control socket: JSON requests and the NDJSON wait stream. Every request,
// stream and probe first checks that the socket is the daemon's (socket-trust.ts): owned by root,
// this user or control.owner, in directories no other user can write. Otherwise nothing is sent.
import http from "node:http";
import { RollbridgeError, type ErrorCode } from "../errors.js";
import { API_PREFIX } from "./protocol.js";
import { socketAnswers } from "./socket.js";
import { endpointOf, noDaemon, permissionDenied, verifyControlSocket, type ControlTarget } from "./socket-trust.js";

export { endpointOf, socketHeldBy, verifyControlSocket, type ControlEndpoint, type ControlTarget } from "./socket-trust.js";

/**
 * Applied to every parsed answer, error body and stream line before the caller sees it. The
 * CLI sets it once, for its human output (escaping control characters in what the daemon
 * sends); --json output keeps the values as received.
 */
let received: (value: unknown) => unknown = (value) => value;

export function filterReceived(filter: (value: unknown) => unknown): void {
  received = filter;
}

function isConnectError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ECONNREFUSED" || code === "ENOTSOCK" || code === "EACCES";
}

/** Is a trusted daemon socket answering at the target? (Connects only after verifying it; sends nothing.) */
export async function probe(target: ControlTarget, timeoutMs = 1000): Promise<boolean> {
  try {
    await verifyControlSocket(target);
  } catch (error) {
    if (error instanceof RollbridgeError && error.code === "DAEMON_NOT_RUNNING") return false;
    throw error;
  }
  return socketAnswers(endpointOf(target).path, timeoutMs);
}

/** One JSON request to the daemon at `target`, after checking the socket is the daemon's. */
export async function request<T>(target: ControlTarget, method: string, route: string, body?: unknown, timeoutMs = 30_000): Promise<T> {
  await verifyControlSocket(target);
  return send<T>(endpointOf(target).path, method, route, body, timeoutMs);
}

function send<T>(socketPath: string, method: string, route: string, body: unknown, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ socketPath, method, path: API_PREFIX + route, headers: payload ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let parsed: unknown;
        try {
          parsed = text ? JSON.parse(text) : {};
        } catch {
          return reject(new RollbridgeError("CONTROL_REQUEST_FAILED", `daemon answered ${res.statusCode} with a non-JSON body`));
        }
        parsed = received(parsed);
        if ((res.statusCode ?? 500) >= 400) return reject(toError(parsed, res.statusCode ?? 500));
        resolve(parsed as T);
      });
      res.on("error", reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new RollbridgeError("TIMEOUT", `daemon did not answer ${method} ${route} within ${timeoutMs} ms`)));
    req.on("error", (error) => {
      if (isConnectError(error)) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "EACCES") return reject(permissionDenied(socketPath, error));
        return reject(noDaemon(socketPath, error));
      }
      reject(error);
    });
    req.end(payload);
  });
}

/**
 * Reads an NDJSON stream line by line until it ends (after checking the socket is the daemon's).
 * A last line `{error: {code, message, fix}}` (the daemon cut the stream, e.g. because this
 * reader fell behind) rejects with that error.
 */
export async function stream(target: ControlTarget, route: string, onLine: (value: unknown) => void): Promise<void> {
  await verifyControlSocket(target);
  const socketPath = endpointOf(target).path;
  return new Promise<void>((resolve, reject) => {
    const req = http.request({ socketPath, method: "GET", path: API_PREFIX + route }, (res) => {
      if ((res.statusCode ?? 500) >= 400) {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          try {
            reject(toError(received(JSON.parse(Buffer.concat(chunks).toString("utf8"))), res.statusCode ?? 500));
          } catch {
            reject(new RollbridgeError("CONTROL_REQUEST_FAILED", `daemon answered ${res.statusCode}`));
          }
        });
        return;
      }
      let buffer = "";
      let cut: RollbridgeError | null = null;
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        buffer += chunk;
        let nl: number;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          if (!line.trim()) continue;
          const value = received(JSON.parse(line));
          if (isErrorLine(value)) cut = toError(value, 200);
          else onLine(value);
        }
      });
      res.on("end", () => (cut ? reject(cut) : resolve()));
      res.on("error", reject);
    });
    req.on("error", (error) => (isConnectError(error) ? reject(noDaemon(socketPath, error)) : reject(error)));
    req.end();
  });
}

function isErrorLine(value: unknown): boolean {
  if (typeof value !== "object" || value === null || Object.keys(value).length !== 1) return false;
  const error = (value as { error?: unknown }).error;
  return typeof error === "object" && error !== null && typeof (error as { code?: unknown }).code === "string" && typeof (error as { message?: unknown }).message === "string";
}

function toError(body: unknown, status: number): RollbridgeError {
  const err = (body as { error?: { code?: string; message?: string; fix?: string; details?: unknown } }).error;
  const code = (err?.code ?? "CONTROL_REQUEST_FAILED") as ErrorCode;
  const options: { fix?: string; details?: unknown } = {};
  if (err?.fix) options.fix = err.fix;
  if (err?.details !== undefined) options.details = err.details;
  return new RollbridgeError(code, err?.message ?? `daemon answered ${status}`, options);
}
