// The broker (a `service`): one in-memory job queue for every release, on a fixed port, so it
// keeps running across deploys. POST /jobs adds a job, POST /jobs/next takes one (204 when
// empty), GET /stats counts them, GET /ping answers "pong".
import http from "node:http";

const port = Number(process.env.ROLLBRIDGE_PORT ?? 7400);
const queue = [];
const stats = { enqueued: 0, taken: 0 };

const server = http.createServer((req, res) => {
  const send = (status, body) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(body === undefined ? undefined : JSON.stringify(body));
  };
  if (req.method === "POST" && req.url === "/jobs") {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      queue.push({ id: ++stats.enqueued, payload: body || null, at: new Date().toISOString() });
      send(201, { id: stats.enqueued, queued: queue.length });
    });
    return;
  }
  if (req.method === "POST" && req.url === "/jobs/next") {
    const job = queue.shift();
    if (!job) return send(204);
    stats.taken++;
    return send(200, job);
  }
  if (req.url === "/stats") return send(200, { ...stats, queued: queue.length });
  if (req.url === "/ping") return send(200, "pong");
  send(404, { error: "not found" });
});

server.listen(port, "127.0.0.1", () => console.log(`broker listening on ${port}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
