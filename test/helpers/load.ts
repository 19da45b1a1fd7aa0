// Continuous keep-alive HTTP load against the proxy, counting every outcome.
import http from "node:http";

export interface LoadStats {
  sent: number;
  ok: number;
  failed: number;
  non2xx: number;
  statuses: Record<number, number>;
  errors: string[];
  byRelease: Record<string, number>;
  /** Failed requests by error code (ECONNREFUSED, ECONNRESET, …; the message when there is none). */
  codes: Record<string, number>;
}

export interface Load {
  stats: LoadStats;
  stop(): Promise<LoadStats>;
}

/**
 * `connections` loops, one request at a time each, to the proxy's port on 127.0.0.1 or to a unix
 * socket (a string: proxy.socket); on keep-alive connections unless `keepAlive: false` (then
 * every request connects afresh).
 */
export function startLoad(target: number | string, options: { connections?: number; path?: string; keepAlive?: boolean } = {}): Load {
  const connections = options.connections ?? 32;
  const agent = new http.Agent({ keepAlive: options.keepAlive ?? true, maxSockets: connections });
  const where = typeof target === "string" ? { socketPath: target } : { host: "127.0.0.1", port: target };
  const stats: LoadStats = { sent: 0, ok: 0, failed: 0, non2xx: 0, statuses: {}, errors: [], byRelease: {}, codes: {} };
  let running = true;
  const one = () =>
    new Promise<void>((resolve) => {
      stats.sent++;
      const req = http.get({ ...where, path: options.path ?? "/hello", agent, timeout: 20_000 }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => {
          const status = res.statusCode ?? 0;
          stats.statuses[status] = (stats.statuses[status] ?? 0) + 1;
          if (status >= 200 && status < 300) {
            stats.ok++;
            try {
              const release = (JSON.parse(body) as { release?: string }).release ?? "?";
              stats.byRelease[release] = (stats.byRelease[release] ?? 0) + 1;
            } catch {
              // not JSON: fine for counting
            }
          } else {
            stats.non2xx++;
            if (stats.errors.length < 20) stats.errors.push(`HTTP ${status}: ${body.slice(0, 100)}`);
          }
          resolve();
        });
        res.on("error", (e: NodeJS.ErrnoException) => {
          stats.failed++;
          stats.codes[e.code ?? e.message] = (stats.codes[e.code ?? e.message] ?? 0) + 1;
          if (stats.errors.length < 20) stats.errors.push(`response: ${e.message}`);
          resolve();
        });
      });
      req.on("timeout", () => req.destroy(new Error("request timeout")));
      req.on("error", (e: NodeJS.ErrnoException) => {
        stats.failed++;
        stats.codes[e.code ?? e.message] = (stats.codes[e.code ?? e.message] ?? 0) + 1;
        if (stats.errors.length < 20) stats.errors.push(`request: ${e.message}`);
        resolve();
      });
    });
  const workers = Array.from({ length: connections }, async () => {
    while (running) await one();
  });
  return {
    stats,
    async stop() {
      running = false;
      await Promise.all(workers);
      agent.destroy();
      return stats;
    },
  };
}

/** One GET on a fresh connection (status, body, headers); `timeoutMs` without an answer fails it. */
export function get(port: number, path = "/hello", { host = "127.0.0.1", timeoutMs = 20_000 } = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path, agent: false, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}
