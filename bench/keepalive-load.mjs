// Keep-alive load for the daemon crash and upgrade benchmarks: `connections` loops, each one
// request at a time on its own keep-alive connection (127.0.0.1). A refused connect is counted
// apart from a failed request (one that was sent and then reset, hung up or timed out) and from
// a 5xx answer; every 2xx answer is timestamped (sent, answered) so the first success after an
// event can be found.
import http from "node:http";
import { sleep } from "./lib.mjs";

/** Starts the load; `stop()` ends it and resolves with {ok, refused, failed, status5xx}. */
export function startKeepAliveLoad(port, { connections, path = "/", timeoutMs = 10_000 }) {
  const counts = { ok: 0, refused: 0, failed: 0, status5xx: 0 };
  const successes = [];
  // Each failed request: when it was sent and failed, and whether it went on a connection it had
  // just opened (a reset there is not a request that was in flight at a kill).
  const failures = [];
  let inFlight = 0;
  let running = true;
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const one = () =>
    new Promise((resolve) => {
      inFlight += 1;
      const sentAt = Date.now();
      const done = (outcome) => {
        inFlight -= 1;
        if (outcome === "ok") successes.push({ sentAt, at: Date.now() });
        if (outcome === "failed") failures.push({ sentAt, at: Date.now(), newConnection: !req.reusedSocket });
        counts[outcome] += 1;
        resolve(outcome);
      };
      const req = http.get({ host: "127.0.0.1", port, path, agent, timeout: timeoutMs }, (res) => {
        res.resume();
        res.on("end", () => done(res.statusCode >= 200 && res.statusCode < 300 ? "ok" : res.statusCode >= 500 ? "status5xx" : "failed"));
        res.on("error", () => done("failed"));
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (error) => done(error.code === "ECONNREFUSED" ? "refused" : "failed"));
    });
  const loops = Array.from({ length: connections }, async () => {
    while (running) {
      // A refused connect is retried at once in a tight loop otherwise: pace it a little.
      if ((await one()) === "refused") await sleep(5);
    }
  });
  return {
    /** Requests sent and not yet answered. */
    inFlight: () => inFlight,
    /** Counts so far. */
    counts: () => ({ ...counts }),
    /** The failed requests so far: [{sentAt, at, newConnection}]. */
    failures: () => [...failures],
    /** When the first request sent after `at` was answered 2xx (answers a dying daemon still wrote do not count), or null after `timeoutMs`. */
    async firstSuccessAfter(at, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const found = successes.find((s) => s.sentAt > at);
        if (found !== undefined) return found.at;
        await sleep(5);
      }
      return null;
    },
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return { ...counts };
    },
  };
}
