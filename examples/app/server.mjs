// A tiny web app to deploy with Rollbridge: no dependencies, answers /ping for health
// checks, says which release served each request, and shuts down gracefully on SIGTERM.
import http from "node:http";

const port = Number(process.env.ROLLBRIDGE_PORT ?? process.env.PORT ?? 3000);
const release = process.env.ROLLBRIDGE_RELEASE_ID ?? "dev";
const bootDelayMs = Number(process.env.BOOT_DELAY_MS ?? 300);

const server = http.createServer((req, res) => {
  if (req.url === "/ping") {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("pong");
    return;
  }
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ release, revision: process.env.ROLLBRIDGE_REVISION, pid: process.pid, path: req.url }));
});

// Pretend to boot (load code, warm caches) before listening, like a real app.
setTimeout(() => {
  server.listen(port, "127.0.0.1", () => console.log(`release ${release} listening on ${port}`));
}, bootDelayMs);

process.on("SIGTERM", () => {
  console.log(`release ${release} shutting down`);
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 5000).unref();
});
