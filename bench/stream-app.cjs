// The app behind the streaming benchmark (bench/streams.mjs): `GET /download?bytes=N` answers N
// bytes (Content-Length, written in 64 KiB chunks with backpressure), `PUT /upload` reads the
// body to its end and answers the byte count; every other path answers 200 "ok" (health).
// Listens on 127.0.0.1:$PORT, $ROLLBRIDGE_PORT, or any free port; prints "READY <port>".
const http = require("node:http");

const chunk = Buffer.alloc(64 * 1024, 0x61);

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://app");
  if (url.pathname === "/download") {
    const total = Number(url.searchParams.get("bytes") ?? 0);
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": total });
    let left = total;
    const pump = () => {
      while (left > 0) {
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= piece.length;
        if (!res.write(piece)) return void res.once("drain", pump);
      }
      res.end();
    };
    pump();
    return;
  }
  if (url.pathname === "/upload") {
    let bytes = 0;
    req.on("data", (c) => (bytes += c.length));
    req.on("end", () => {
      const body = JSON.stringify({ bytes });
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
    return;
  }
  res.writeHead(200, { "content-type": "text/plain", "content-length": 3 });
  res.end("ok\n");
});
server.listen(Number(process.env.PORT ?? process.env.ROLLBRIDGE_PORT ?? 0), "127.0.0.1", () => console.log(`READY ${server.address().port}`));

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 5000).unref();
  });
}
