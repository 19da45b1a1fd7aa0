// The bounded NDJSON writer behind logs --follow, events --follow and apply --wait, over a real
// unix socket: a reader that keeps up gets everything; one that stops reading is cut once 1 MiB
// waits for it, and is told so in the last line when it reads again.
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { stream } from "../../src/control/client.js";
import { MAX_BEHIND_BYTES, ndjsonStream, type NdjsonStream } from "../../src/control/ndjson-stream.js";
import { isRollbridgeError } from "../../src/errors.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "rb-ndjson-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let server: http.Server | null = null;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = null;
});

/** A server whose one route hands its writer to `onStream`; returns its socket path. */
async function serve(onStream: (out: NdjsonStream, res: http.ServerResponse) => void): Promise<string> {
  const socket = path.join(dir, `s-${Math.random().toString(36).slice(2)}.sock`);
  server = http.createServer((_req, res) => onStream(ndjsonStream(res, { what: "test --follow", fix: "read faster" }), res));
  await new Promise<void>((resolve) => server!.listen(socket, resolve));
  return socket;
}

/** A raw client that connects, reads the head, then pauses until `resume()`; collects the body. */
function pausedClient(socket: string): Promise<{ resume: () => Promise<string[]> }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath: socket, path: "/" }, (res) => {
      res.pause();
      resolve({
        resume: () =>
          new Promise((done) => {
            let text = "";
            res.setEncoding("utf8");
            res.on("data", (c: string) => (text += c));
            res.on("end", () => done(text.split("\n").filter((l) => l !== "")));
            res.resume();
          }),
      });
    });
    req.on("error", reject);
  });
}

const line = (i: number) => ({ i, pad: "x".repeat(1000) });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("the bounded NDJSON stream", () => {
  it("delivers every line in order, and the last value, to a reader that keeps up", async () => {
    const socket = await serve((out) => {
      let i = 0;
      const timer = setInterval(() => {
        for (let n = 0; n < 200; n++) out.write(line(i++));
        if (i >= 5000) {
          clearInterval(timer);
          out.end({ done: true });
        }
      }, 2);
    });
    const seen: unknown[] = [];
    await stream(socket, "", (value) => seen.push(value));
    expect(seen.length).toBe(5001);
    expect(seen.slice(0, 5000).every((v, i) => (v as { i: number }).i === i)).toBe(true);
    expect(seen.at(-1)).toEqual({ done: true });
  });

  it("stops handing lines to a socket that is not read, cuts the reader at 1 MiB behind and tells it", async () => {
    let accepted = 0;
    let refusedAt = -1;
    let maxBuffered = 0;
    const socket = await serve((out, res) => {
      void (async () => {
        for (let i = 0; i < 20_000 && refusedAt < 0; i++) {
          if (out.write(line(i))) accepted += 1;
          else refusedAt = i;
          maxBuffered = Math.max(maxBuffered, res.writableLength);
          if (i % 100 === 0) await sleep(1); // let the socket drain what it can
        }
      })();
    });
    const client = await pausedClient(socket);
    const deadline = Date.now() + 10_000;
    while (refusedAt < 0 && Date.now() < deadline) await sleep(20);
    expect(refusedAt).toBeGreaterThan(0);
    // What the daemon holds: the socket's own buffer stays small, the queue at most the limit.
    expect(maxBuffered).toBeLessThan(256 * 1024);
    expect(accepted * 1010).toBeLessThan(MAX_BEHIND_BYTES + 4 * 1024 * 1024);
    const lines = await client.resume();
    const last = JSON.parse(lines.at(-1)!);
    expect(last.error.code).toBe("STREAM_FELL_BEHIND");
    expect(last.error.message).toContain("test --follow fell more than 1024 KiB behind");
    expect(last.error.fix).toBe("read faster");
    // Everything before the cut arrived whole and in order.
    const data = lines.slice(0, -1).map((l) => JSON.parse(l) as { i: number });
    expect(data.every((v, i) => v.i === i)).toBe(true);
  });

  it("makes the client's stream() fail with the cut's error and fix", async () => {
    // 5 MB written in one tick: far more than the socket takes before it can drain.
    const socket = await serve((out) => {
      for (let i = 0; i < 5000; i++) out.write(line(i));
    });
    let seen = 0;
    let error: unknown;
    try {
      await stream(socket, "", () => (seen += 1));
    } catch (e) {
      error = e;
    }
    expect(isRollbridgeError(error, "STREAM_FELL_BEHIND")).toBe(true);
    expect((error as { fix?: string }).fix).toBe("read faster");
    expect(seen).toBeGreaterThan(0);
    expect(seen).toBeLessThan(5000);
  });

  it("does not count the backlog it starts with as falling behind", async () => {
    const socket = await serve((out) => {
      for (let i = 0; i < 3000; i++) out.write(line(i), true); // ~3 MB retained lines, in one go
      out.end({ done: true });
    });
    const client = await pausedClient(socket);
    await sleep(200);
    const lines = await client.resume();
    expect(lines.length).toBe(3001);
    expect(JSON.parse(lines.at(-1)!)).toEqual({ done: true });
  });
});
