// Node gives every socket read a fresh 64 KiB buffer. V8 frees those buffers only when it
// collects the young generation, which it does after some megabytes of JavaScript objects, not
// of buffers: a large body streamed through the proxy makes few objects per 64 KiB, so tens of MB
// of read buffers that are already garbage piled up between two collections (31-37 MB measured
// with bench/streams.mjs, +33 MB RSS during a transfer). Asking for a young-generation collection
// after every few MB of body bytes keeps that pile small (11 MB of buffers, +16 MB RSS), and the
// next reads get the freed, cache-warm memory back instead of fresh pages.

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** Body bytes forwarded (both ways, all connections) between two young-generation collections. */
export const YOUNG_GC_EVERY_BYTES = 8 * 2 ** 20;

type Collect = (options: { type: "minor" }) => void;

let collect: Collect | null | undefined;
let pending = 0;

/** Counts body bytes forwarded; collects the young generation after every YOUNG_GC_EVERY_BYTES. */
export function countStreamed(bytes: number): void {
  pending += bytes;
  if (pending < YOUNG_GC_EVERY_BYTES) return;
  pending = 0;
  collect ??= youngCollector();
  if (collect !== null) collect({ type: "minor" });
}

// V8's gc function, taken from a fresh context with --expose-gc set only while it is created
// (the flag is set back at once: no other context gets a global `gc`). null where V8 refuses.
function youngCollector(): Collect | null {
  const exposed = (globalThis as { gc?: unknown }).gc;
  if (typeof exposed === "function") return exposed as Collect;
  try {
    setFlagsFromString("--expose-gc");
    const gc: unknown = runInNewContext("gc");
    return typeof gc === "function" ? (gc as Collect) : null;
  } catch {
    return null;
  } finally {
    setFlagsFromString("--no-expose-gc");
  }
}
