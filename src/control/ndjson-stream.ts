// The one writer behind every NDJSON stream to a CLI follower: `logs --follow`, `events
// --follow` and the `apply --wait` stream. It honours backpressure: while the socket's buffer
// is full nothing more is handed to it, and what comes meanwhile waits in a queue of at most
// `maxBehindBytes` (1 MiB). A follower that falls further behind (a stopped `less`, a CLI
// under SIGSTOP, a dead network mount) is told so in a last line and cut, so the daemon never
// holds more than that per follower whatever the processes print.
import type http from "node:http";
import type { ErrorCode } from "../errors.js";

/** How far behind (bytes queued while the socket is full) a follower may fall before it is cut. */
export const MAX_BEHIND_BYTES = 1024 * 1024;

/** How long a cut follower has to take its last line before the connection is closed anyway. */
export const CUT_GRACE_MS = 60_000;

/** The last line of a stream that was cut: the shape of the control API's error bodies. */
export interface StreamCut {
  error: { code: ErrorCode; message: string; fix: string };
}

export interface NdjsonStream {
  /**
   * Sends one value as a JSON line (or queues it while the socket is full); false once the
   * stream has ended. `backlog`: part of what the stream starts with (retained lines, recent
   * events), sent in one go before the follower could read any of it: it is queued like the
   * rest but does not count as falling behind (it is bounded by what the daemon retains).
   */
  write(value: unknown, backlog?: boolean): boolean;
  /** Sends `last` (if given) and ends the stream. */
  end(last?: unknown): void;
  /** True once the stream has ended, was cut, or the client went away. */
  readonly ended: boolean;
}

export interface NdjsonStreamOptions {
  /** What the follower runs, for the message (e.g. "logs --follow"). */
  what: string;
  /** What to do instead, for the fix (e.g. "rollbridge logs shows the recent lines"). */
  fix: string;
  maxBehindBytes?: number;
  /** Called once when the stream is cut for falling behind (the caller stops producing). */
  onCut?: () => void;
}

/** Starts a 200 NDJSON response on `res` and returns its bounded writer. */
export function ndjsonStream(res: http.ServerResponse, options: NdjsonStreamOptions): NdjsonStream {
  const limit = options.maxBehindBytes ?? MAX_BEHIND_BYTES;
  res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
  res.flushHeaders();
  let queue: string[] = [];
  let queuedBytes = 0;
  let waiting = false;
  let ended = false;

  const gone = () => res.writableEnded || res.destroyed;
  const flush = () => {
    waiting = false;
    if (gone()) return;
    if (queue.length > 0) {
      const chunk = queue.join("");
      queue = [];
      queuedBytes = 0;
      if (!res.write(chunk)) waiting = true;
    }
    if (ended && !waiting) res.end();
  };
  res.on("drain", flush);
  // A follower that never reads again would hold the connection (and its buffers) forever.
  const closeSoon = () => {
    const timer = setTimeout(() => res.destroy(), CUT_GRACE_MS);
    timer.unref();
    res.once("close", () => clearTimeout(timer));
  };

  const cut = () => {
    ended = true;
    queue = [];
    queuedBytes = 0;
    const last: StreamCut = {
      error: {
        code: "STREAM_FELL_BEHIND",
        message: `${options.what} fell more than ${Math.round(limit / 1024)} KiB behind the daemon (its output was not being read), so the daemon stopped sending`,
        fix: options.fix,
      },
    };
    // Past the queue: the line waits in the socket's own buffer until the follower reads again.
    res.end(JSON.stringify(last) + "\n");
    closeSoon();
    options.onCut?.();
  };

  return {
    get ended() {
      return ended || gone();
    },
    write(value, backlog = false) {
      if (ended || gone()) return false;
      const line = JSON.stringify(value) + "\n";
      if (!waiting) {
        if (!res.write(line)) waiting = true;
        return true;
      }
      queue.push(line);
      if (backlog) return true;
      queuedBytes += Buffer.byteLength(line);
      if (queuedBytes > limit) {
        cut();
        return false;
      }
      return true;
    },
    end(last) {
      if (ended || gone()) return;
      if (last !== undefined) {
        const line = JSON.stringify(last) + "\n";
        if (waiting) queue.push(line);
        else if (!res.write(line)) waiting = true;
      }
      ended = true;
      // Whatever is still queued goes out first (flush ends the response once it has).
      if (!waiting) res.end();
      else closeSoon();
    },
  };
}
