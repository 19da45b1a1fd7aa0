// The app of bench/long-lived.mjs: a Socket.IO chat-like server (polling and WebSocket
// transports) and a raw WebSocket echo on /raw, on 127.0.0.1:$PORT, that uses the drain notice
// the way docs/long-lived-connections.md recommends (run with proxy.affinity {query: sid}).
//
//   GET /ping                health
//   event "ping" n (ack)     acks with {n, release}
//   /raw                     a plain WebSocket echo; it ignores the drain (its clients are closed
//                            by the proxy at drainTimeoutMs: the close codes the bench counts)
//
// On the IPC {event: "draining"} notice (DRAIN_MODE):
//   disconnect   io.disconnectSockets(true) at once: clients reconnect to the new release
//   announce     emit "server-draining"; the client finishes its acks and reconnects itself;
//                whoever is still connected after ANNOUNCE_GRACE_MS (2000) is disconnected
//   none         nothing (the sessions stay until the proxy closes them at the deadline)
import http from "node:http";
import { Server } from "socket.io";
import { WebSocketServer } from "ws";

const env = process.env;
const release = env.ROLLBRIDGE_RELEASE_ID ?? "";
const mode = env.DRAIN_MODE ?? "disconnect";
const server = http.createServer((req, res) => {
  if (req.url === "/ping") {
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end("pong");
    return;
  }
  if (!req.url.startsWith("/socket.io/")) {
    res.writeHead(404);
    res.end();
  }
});
// destroyUpgrade: false, so /raw upgrades are left to the ws server below.
const io = new Server(server, { serveClient: false, destroyUpgrade: false });
io.on("connection", (socket) => {
  socket.on("ping", (n, ack) => typeof ack === "function" && ack({ n, release }));
});
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
wss.on("connection", (ws) => ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary })));
server.on("upgrade", (req, socket, head) => {
  if (req.url.split("?")[0] === "/raw") wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
});

process.on("message", (message) => {
  if (message === null || typeof message !== "object" || message.event !== "draining") return;
  if (mode === "disconnect") io.disconnectSockets(true);
  if (mode === "announce") {
    io.emit("server-draining");
    setTimeout(() => io.disconnectSockets(true), Number(env.ANNOUNCE_GRACE_MS ?? 2000)).unref();
  }
});
process.on("SIGTERM", () => {
  io.close();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});

server.listen(Number(env.PORT ?? 0), "127.0.0.1", () => console.log(`listening on ${server.address().port}`));
