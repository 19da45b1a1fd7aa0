// The tiny app the proxy, memory and PM2 benchmarks put behind each proxy: every path answers
// 200 "Hello, world!\n" (so `/` and a health path both work). CommonJS, so PM2's cluster mode
// can require it as it is. Listens on 127.0.0.1:$PORT, $ROLLBRIDGE_PORT, or any free port;
// prints "READY <port>". SIGTERM/SIGINT: stop accepting, finish what is in flight, exit 0
// (after at most 5 s), the graceful stop PM2's docs and ours ask of an app.
const http = require("node:http");

const body = Buffer.from("Hello, world!\n");
const server = http.createServer((_req, res) => {
  res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
  res.end(body);
});
server.listen(Number(process.env.PORT ?? process.env.ROLLBRIDGE_PORT ?? 0), "127.0.0.1", () => console.log(`READY ${server.address().port}`));

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 5000).unref();
  });
}
