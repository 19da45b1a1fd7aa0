// A stand-in for systemd socket activation with Restart=always (systemd is not PID 1 here): a
// listening socket on 127.0.0.1, held by a shell loop that never accepts on it and starts the
// daemon with it as fd 3 (LISTEN_FDS=1, LISTEN_FDNAMES=proxy, LISTEN_PID = the daemon's own pid,
// set by `sh -c 'LISTEN_PID=$$ exec …'`), again 100 ms after each exit (systemd's RestartSec
// default). While no daemon runs, connections wait in the socket's backlog.
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import net from "node:net";
import { isAlive } from "./process.js";
import { sleep } from "./daemon.js";

export interface SocketHolder {
  /** The held socket's port (give it to the config as proxy.port). */
  port: number;
  /** The pid of every daemon started so far, in order (the last one is the current daemon). */
  starts: number[];
  /** Starts the restart loop with the held socket as fd 3 (usable as startDaemon's spawnDaemon). */
  spawn(command: string, args: string[], options: SpawnOptions): ChildProcess;
  /** Waits until daemon number `n` (1-based) has been started and returns its pid. */
  started(n: number, timeoutMs?: number): Promise<number>;
  /** Stops restarting (SIGKILL to the loop), then SIGTERM to the current daemon and waits until it is gone (SIGKILL after 15 s). */
  stop(): Promise<void>;
}

const LOOP = `while :; do sh -c 'echo "socket-holder: started $$" >&2; LISTEN_PID=$$ exec "$@"' daemon "$@"; sleep 0.1; done`;

export async function holdSocket(): Promise<SocketHolder> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port: 0, host: "127.0.0.1", backlog: 511 }, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  const starts: number[] = [];
  let loop: ChildProcess | null = null;

  const holder: SocketHolder = {
    port,
    starts,
    spawn(command, args, options) {
      const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
      const env = { ...(options.env ?? process.env), LISTEN_FDS: "1", LISTEN_FDNAMES: "proxy" };
      loop = spawn("sh", ["-c", LOOP, "socket-holder", command, ...args], { cwd: options.cwd, env, stdio: ["ignore", "pipe", "pipe", fd] });
      // From here on only the loop (and the daemon it starts) holds the socket: this process never accepts on it.
      server.close();
      let pending = "";
      loop.stderr!.on("data", (chunk: Buffer | string) => {
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
      return starts[n - 1]!;
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
      if (pid === undefined || !(await isAlive(pid))) return;
      process.kill(pid, "SIGTERM");
      const deadline = Date.now() + 15_000;
      while (await isAlive(pid)) {
        if (Date.now() > deadline) {
          process.kill(pid, "SIGKILL");
          break;
        }
        await sleep(50);
      }
    },
  };
  return holder;
}
