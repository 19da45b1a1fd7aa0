// The baseline: the barest useful undici proxy (one keep-alive Pool, Pool.stream, no header work
// beyond what undici requires). Usage: node bench/bare-undici-proxy.mjs <upstreamPort> [listenPort]
import http from "node:http";
import { Pool } from "undici";

const pool = new Pool(`http://127.0.0.1:${process.argv[2]}`);
const server = http.createServer((req, res) => {
  const { connection, "keep-alive": _k, "transfer-encoding": te, ...headers } = req.headers;
  const body = te !== undefined || (headers["content-length"] ?? "0") !== "0" ? req : null;
  pool.stream(
    { path: req.url, method: req.method, headers, body },
    ({ statusCode, headers }) => {
      res.writeHead(statusCode, headers);
      return res;
    },
    (err) => {
      if (err) res.destroy();
    },
  );
});
server.listen(Number(process.argv[3] ?? 0), "127.0.0.1", () => console.log(`READY ${server.address().port}`));
