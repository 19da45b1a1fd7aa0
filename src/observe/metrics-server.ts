// The metrics listener (config `metrics: {host, port}`): a plain HTTP server that answers
// `GET /metrics` with Prometheus text and 404 to everything else. Separate from the proxy and
// the control socket so a scraper can reach it without control rights.
import http from "node:http";
import { RollbridgeError } from "../errors.js";

export interface MetricsServer {
  address: { host: string; port: number };
  /** The descriptor it accepts on (a handover passes it on), or null. */
  fd(): number | null;
  close(): Promise<void>;
}

/**
 * Binds host:port, or serves on `inherited` (a socket-activation descriptor) instead; rejects
 * with CONFIG_INVALID naming the address when it cannot.
 */
export async function startMetricsServer(host: string, port: number, render: () => string, inherited?: { fd: number } | null): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const pathname = (req.url ?? "/").split("?")[0];
    if (pathname !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("Not found: metrics are at GET /metrics\n");
      return;
    }
    let body: string;
    try {
      body = render();
    } catch (error) {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(`metrics failed: ${(error as Error).message}\n`);
      return;
    }
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8", "content-length": Buffer.byteLength(body), "cache-control": "no-store" });
    res.end(req.method === "HEAD" ? undefined : body);
  });
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    const onError = (cause: NodeJS.ErrnoException) =>
      reject(
        new RollbridgeError("CONFIG_INVALID", `cannot listen for metrics on ${host}:${port}: ${cause.code ?? cause.message}`, {
          cause,
          fix: cause.code === "EADDRINUSE" ? "another process holds metrics.port: stop it or change metrics.port" : "check metrics.host and metrics.port",
        }),
      );
    server.once("error", onError);
    const listening = () => {
      server.off("error", onError);
      resolve();
    };
    if (inherited) server.listen(inherited, listening);
    else server.listen(port, host, listening);
  });
  return {
    address: { host, port },
    fd: () => {
      const handle = (server as { _handle?: { fd?: number } | null })._handle;
      return server.listening && typeof handle?.fd === "number" && handle.fd >= 0 ? handle.fd : null;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
