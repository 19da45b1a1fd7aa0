// The web process (`proxied`): answers /ping for the health check, / with the release that
// served the request, and POST /jobs by queueing a job on the broker.
import http from "node:http";

const port = Number(process.env.ROLLBRIDGE_PORT);
const release = process.env.ROLLBRIDGE_RELEASE_ID ?? "dev";
const broker = process.env.BROKER_URL ?? "http://127.0.0.1:7400";

const server = http.createServer(async (req, res) => {
  if (req.url === "/ping") {
    res.writeHead(200, { "content-type": "text/plain" });
    return res.end("pong");
  }
  if (req.method === "POST" && req.url === "/jobs") {
    try {
      const answer = await fetch(`${broker}/jobs`, { method: "POST", body: JSON.stringify({ from: release }) });
      res.writeHead(answer.status, { "content-type": "application/json" });
      return res.end(await answer.text());
    } catch (error) {
      res.writeHead(503, { "content-type": "application/json" });
      return res.end(JSON.stringify({ error: `broker unreachable: ${error.message}` }));
    }
  }
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ release, pid: process.pid }));
});

server.listen(port, "127.0.0.1", () => console.log(`web ${release} listening on ${port}`));
process.on("SIGTERM", () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
