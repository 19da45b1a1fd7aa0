// wrk as a child process that does not block the event loop (so RSS samplers and timed CLI
// calls can run beside it), and the parser of its --latency output.
import { spawnSync } from "node:child_process";

/** wrk's path on PATH, or null. */
export function findWrk() {
  const out = spawnSync("sh", ["-c", "command -v wrk"], { encoding: "utf8" });
  return out.status === 0 ? out.stdout.trim() : null;
}

export const WRK_MISSING = "wrk not installed (apt-get install -y wrk, or brew install wrk)";

export function wrkVersion() {
  const out = spawnSync("wrk", ["-v"], { encoding: "utf8" });
  const line = `${out.stdout}${out.stderr}`.split("\n").find((l) => l.startsWith("wrk"));
  return line ? line.split(" [")[0].trim() : "wrk";
}

/**
 * Runs `wrk -t<threads> -c<connections> -d<durationSec>s --latency` against 127.0.0.1:<port>
 * as a child of `tracker` (so a bench that gives up stops it) and resolves with its numbers.
 * `place(command, args)` may wrap the command (taskset); `path` defaults to `/`. `onStart(child)`
 * gets the wrk process: SIGINT to it ends the run early, and wrk still prints its numbers.
 */
export function runWrk(tracker, port, { durationSec, connections, threads, path = "/", place = (c, a) => [c, a], onStart }) {
  return new Promise((resolve, reject) => {
    const [command, args] = place("wrk", [`-t${threads}`, `-c${connections}`, `-d${durationSec}s`, "--latency", `http://127.0.0.1:${port}${path}`]);
    const child = tracker.spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    onStart?.(child);
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (c) => (out += c));
    child.stderr.setEncoding("utf8").on("data", (c) => (err += c));
    const timer = setTimeout(() => child.kill("SIGKILL"), (durationSec + 30) * 1000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`wrk failed (${code ?? signal}): ${err || out}`));
      resolve(parseWrk(out));
    });
  });
}

/** rps, requests, p50/p90/p99 in ms, and errors (non-2xx/3xx + socket errors of every kind). */
export function parseWrk(text) {
  const unit = (m) => {
    if (!m) return Number.NaN;
    const v = Number(m[1]);
    return { us: v / 1000, ms: v, s: v * 1000, m: v * 60_000 }[m[2]] ?? Number.NaN;
  };
  const pct = (p) => unit(new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, "m").exec(text));
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(text)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const socketErrors = sock ? sock.slice(1).reduce((n, v) => n + Number(v), 0) : 0;
  const socketErrorKinds = sock ? { connect: Number(sock[1]), read: Number(sock[2]), write: Number(sock[3]), timeout: Number(sock[4]) } : { connect: 0, read: 0, write: 0, timeout: 0 };
  return { rps, requests, p50Ms: pct(50), p90Ms: pct(90), p99Ms: pct(99), errors: non2xx + socketErrors, non2xx, socketErrors, socketErrorKinds };
}
