// The CLI's side of the control socket: JSON requests and the NDJSON wait stream.
import http from "node:http";
import { RollbridgeError, type ErrorCode } from "../errors.js";
import { API_PREFIX } from "./protocol.js";

function noDaemon(socketPath: string, cause: unknown): RollbridgeError {
  return new RollbridgeError("DAEMON_NOT_RUNNING", `no daemon answers on ${socketPath}`, {
    cause,
    fix: "start one with `rollbridge daemon` (foreground) or `rollbridge ensure-daemon`, or check control.path",
  });
}

function isConnectError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ECONNREFUSED" || code === "ENOTSOCK" || code === "EACCES";
}

export function request<T>(socketPath: string, method: string, route: string, body?: unknown, timeoutMs = 30_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      { socketPath, method, path: API_PREFIX + route, headers: payload ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } : {} },
      (res) => {
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
          if ((res.statusCode ?? 500) >= 400) return reject(toError(parsed, res.statusCode ?? 500));
          resolve(parsed as T);
        });
        res.on("error", reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new RollbridgeError("TIMEOUT", `daemon did not answer ${method} ${route} within ${timeoutMs} ms`)));
    req.on("error", (error) => {
      if (isConnectError(error)) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "EACCES") return reject(new RollbridgeError("DAEMON_NOT_RUNNING", `permission denied on control socket ${socketPath}`, { cause: error, fix: "run as a user in the socket's group (control.group / control.mode)" }));
        return reject(noDaemon(socketPath, error));
      }
      reject(error);
    });
    req.end(payload);
  });
}

/** Reads an NDJSON stream line by line until it ends. */
export function stream(socketPath: string, route: string, onLine: (value: unknown) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const req = http.request({ socketPath, method: "GET", path: API_PREFIX + route }, (res) => {
      if ((res.statusCode ?? 500) >= 400) {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          try {
            reject(toError(JSON.parse(Buffer.concat(chunks).toString("utf8")), res.statusCode ?? 500));
          } catch {
            reject(new RollbridgeError("CONTROL_REQUEST_FAILED", `daemon answered ${res.statusCode}`));
          }
        });
        return;
      }
      let buffer = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        buffer += chunk;
        let nl: number;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          if (line.trim()) onLine(JSON.parse(line));
        }
      });
      res.on("end", () => resolve());
      res.on("error", reject);
    });
    req.on("error", (error) => (isConnectError(error) ? reject(noDaemon(socketPath, error)) : reject(error)));
    req.end();
  });
}

function toError(body: unknown, status: number): RollbridgeError {
  const err = (body as { error?: { code?: string; message?: string; fix?: string; details?: unknown } }).error;
  const code = (err?.code ?? "CONTROL_REQUEST_FAILED") as ErrorCode;
  const options: { fix?: string; details?: unknown } = {};
  if (err?.fix) options.fix = err.fix;
  if (err?.details !== undefined) options.details = err.details;
  return new RollbridgeError(code, err?.message ?? `daemon answered ${status}`, options);
}
