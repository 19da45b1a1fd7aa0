// The proxy asks V8 for a young-generation collection after every YOUNG_GC_EVERY_BYTES of body
// bytes, so the socket read buffers a large body leaves behind are freed while it streams, not
// tens of MB later; and it leaves no `gc` function exposed anywhere.
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { countStreamed, YOUNG_GC_EVERY_BYTES } from "../../src/proxy/young-gc.js";
import { sleep } from "./helpers.js";

const READ = 64 * 1024;

/** Makes `count` read-sized buffers (each its own ArrayBuffer, as a socket read's) and drops them. */
function dropReadBuffers(count: number): number {
  let bytes = 0;
  for (let i = 0; i < count; i++) bytes += Buffer.allocUnsafe(READ).fill(i).length;
  return bytes;
}

describe("young-generation collection while bodies stream", () => {
  it("frees dropped read buffers once a collection's worth of body bytes went through", async () => {
    const before = process.memoryUsage().arrayBuffers;
    const dropped = dropReadBuffers(160); // 10 MiB
    expect(process.memoryUsage().arrayBuffers - before).toBeGreaterThan(dropped / 2);
    countStreamed(YOUNG_GC_EVERY_BYTES);
    // V8 sweeps array buffers on a background thread: the count falls shortly after the collection.
    const deadline = Date.now() + 10_000;
    while (process.memoryUsage().arrayBuffers - before > dropped / 4 && Date.now() < deadline) await sleep(20);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThanOrEqual(dropped / 4);
  });

  it("leaves no gc function exposed, here or in a new context", () => {
    const hadGc = typeof (globalThis as { gc?: unknown }).gc;
    countStreamed(YOUNG_GC_EVERY_BYTES);
    expect(typeof (globalThis as { gc?: unknown }).gc).toBe(hadGc);
    expect(runInNewContext("typeof gc")).toBe("undefined");
  });
});
