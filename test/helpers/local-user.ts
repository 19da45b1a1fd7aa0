// A second local user for security tests (created and deleted by the test, root only), and a
// server run as that user that answers every request with 200 and records what reached it:
// the stand-in for another account on a shared host trying to catch Rollbridge's traffic.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";

/** Why these tests cannot run here, or null when they can. */
export function localUserProblem(): string | null {
  if (process.getuid?.() !== 0) return "they create a second local user (useradd), which needs root";
  for (const tool of ["useradd", "userdel", "setpriv"]) {
    try {
      execFileSync("/bin/sh", ["-c", `command -v ${tool}`], { stdio: "pipe" });
    } catch {
      return `${tool} is not installed`;
    }
  }
  return null;
}

export interface LocalUser {
  name: string;
  uid: number;
  /** Deletes the user (its processes must be stopped first). */
  remove(): void;
}

/** Creates a user without a home or a login shell, named `prefix` + random characters. */
export function createLocalUser(prefix: string): LocalUser {
  const name = `${prefix}${randomBytes(3).toString("hex")}`;
  execFileSync("useradd", ["-M", "-s", "/usr/sbin/nologin", name], { stdio: "pipe" });
  const uid = Number(execFileSync("id", ["-u", name], { encoding: "utf8" }).trim());
  return {
    name,
    uid,
    remove() {
      try {
        execFileSync("userdel", [name], { stdio: "pipe" });
      } catch {
        // already gone
      }
    },
  };
}

/** One request that reached the stranger's server. */
export interface CaughtRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
}

export interface StrangerServer {
  /** The server's own pid (setpriv execs node, so it is the pid that holds the socket). */
  pid: number;
  port: number;
  requests: CaughtRequest[];
  stop(): void;
}

// Answers 200 "pong" to everything (a health check passes against it) and prints each request.
const SERVER = `
const http = require("node:http");
const port = Number(process.argv[1]);
http.createServer((req, res) => {
  console.log(JSON.stringify({ method: req.method, path: req.url, headers: req.headers }));
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end("pong");
}).listen(port, "127.0.0.1", () => console.log("listening " + process.pid));
`;

/** Starts the server as `user` on 127.0.0.1:port; resolves once it listens. */
export async function startStrangerServer(user: LocalUser, port: number): Promise<StrangerServer> {
  const child: ChildProcess = spawn("setpriv", [`--reuid=${user.uid}`, `--regid=${user.uid}`, "--clear-groups", "--", "/usr/bin/node", "-e", SERVER, String(port)], {
    cwd: "/",
    stdio: ["ignore", "pipe", "pipe"],
    env: { PATH: "/usr/bin:/bin" },
  });
  const requests: CaughtRequest[] = [];
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const listening = new Promise<number>((resolve, reject) => {
    let buffered = "";
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) {
        const ready = /^listening (\d+)$/.exec(line);
        if (ready) resolve(Number(ready[1]));
        else if (line.startsWith("{")) requests.push(JSON.parse(line) as CaughtRequest);
      }
    });
    child.once("exit", (code) => reject(new Error(`the stranger's server exited (${code}): ${stderr}`)));
    setTimeout(() => reject(new Error(`the stranger's server did not listen on ${port}: ${stderr}`)), 10_000).unref();
  });
  const pid = await listening;
  return {
    pid,
    port,
    requests,
    stop() {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    },
  };
}
