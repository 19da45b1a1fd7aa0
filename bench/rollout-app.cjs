// The app of the rollout benchmark: bench/hello-app.cjs plus two things. Every answer names the
// release (the cwd's directory name) and the pid that served it, so the client can tell the
// sides apart; and when a file BROKEN is in the release directory at start, `/ping` still
// answers 200 (the health check passes) while every other path answers 500 — a release that is
// healthy and fails real requests. Listens on 127.0.0.1:$ROLLBRIDGE_PORT; SIGTERM: graceful stop.
const http = require("node:http");
const fs = require("node:fs");
const path = require("node:path");

const broken = fs.existsSync("BROKEN");
const ok = Buffer.from(`${path.basename(process.cwd())} ${process.pid}\n`);
const server = http.createServer((req, res) => {
  const status = broken && req.url !== "/ping" ? 500 : 200;
  res.writeHead(status, { "content-type": "text/plain", "content-length": ok.length });
  res.end(ok);
});
server.listen(Number(process.env.PORT ?? process.env.ROLLBRIDGE_PORT ?? 0), "127.0.0.1", () => console.log(`READY ${server.address().port}`));

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 5000).unref();
  });
}
