// A stand-in for systemd socket activation with Restart=always (systemd is not PID 1 here),
// shared by the tests (test/helpers/socket-holder.ts) and the benchmarks (bench/daemon-crash.mjs):
// a listening socket on 127.0.0.1, held by a shell loop that never accepts on it and starts the
// daemon with it as fd 3 (LISTEN_FDS=1, LISTEN_FDNAMES=proxy, LISTEN_PID = the daemon's own pid,
// set by `sh -c 'LISTEN_PID=$$ exec …'`), again 100 ms after each exit (the RestartSec of
// examples/rollbridge.service). While no daemon runs, connections wait in the socket's backlog.
import { spawn } from "node:child_process";
import net from "node:net";
import { isAlive } from "./proc.mjs";

const LOOP = `while :; do sh -c 'echo "socket-holder: started $$" >&2; LISTEN_PID=$$ exec "$@"' daemon "$@"; sleep 0.1; done`;

/**
 * Listens on 127.0.0.1 (a free port) and resolves with the holder: {port, starts, spawn, started,
 * stop} (see socket-holder.d.mts). The loop's stdout and stderr are pipes shared by every daemon
 * it starts; a line `socket-holder: started <pid>` on stderr marks each start.
 */
export async function holdSocket() {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port: 0, host: "127.0.0.1", backlog: 511 }, () => resolve());
  });
  const port = server.address().port;
  const starts = [];
  let loop = null;

  return {
    port,
    starts,
    spawn(command, args, options = {}) {
      const fd = server._handle.fd;
      const env = { ...(options.env ?? process.env), LISTEN_FDS: "1", LISTEN_FDNAMES: "proxy" };
      loop = spawn("sh", ["-c", LOOP, "socket-holder", command, ...args], { cwd: options.cwd, env, stdio: ["ignore", "pipe", "pipe", fd] });
      // From here on only the loop (and the daemon it starts) holds the socket: this process never accepts on it.
      server.close();
      let pending = "";
      loop.stderr.on("data", (chunk) => {
        pending += String(chunk);
        const lines = pending.split("\n");
        pending = lines.pop() ?? "";
        for (const line of lines) {
          const m = /^socket-holder: started (\d+)$/.exec(line);
          if (m) starts.push(Number(m[1]));
        }
      });
      return loop;
    },
    async started(n, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (starts.length < n) {
        if (Date.now() > deadline) throw new Error(`the socket holder did not start daemon number ${n} (started: ${starts.join(", ") || "none"})`);
        await sleep(20);
      }
      return starts[n - 1];
    },
    async stop() {
      if (server.listening) server.close();
      if (loop?.pid === undefined) return;
      try {
        process.kill(loop.pid, "SIGKILL");
      } catch {
        // already gone
      }
      const pid = starts.at(-1);
      if (pid === undefined || !isAlive(pid)) return;
      process.kill(pid, "SIGTERM");
      const deadline = Date.now() + 15_000;
      while (isAlive(pid)) {
        if (Date.now() > deadline) {
          process.kill(pid, "SIGKILL");
          break;
        }
        await sleep(50);
      }
    },
  };
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
