// Large bodies stream through the proxy with backpressure both ways: the upstream reads an
// upload while the client is still sending it, and a side that stops reading stops the other
// side's writes after a bounded amount (the kernel's socket buffers and a few stream buffers),
// far below the body's size. Nothing is buffered whole.
import http from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { closeAll, sleep, startProxy, startUpstream, type Upstream } from "./helpers.js";

afterEach(closeAll);

const MiB = 2 ** 20;
const CHUNK = Buffer.alloc(64 * 1024, 0x61);
// Twice the bound, which is several times what the buffers on the way hold (two loopback
// connections: about 9 MB here): a proxy that held the body would take all of it.
const BODY = 64 * MiB;
const BOUND = 32 * MiB;

async function proxyTo(upstream: Upstream) {
  const started = await startProxy();
  started.proxy.setBackends("r1", [upstream.backend("web")]);
  started.proxy.setActive("r1");
  return started;
}

/** Writes `total` bytes to `stream` as fast as it accepts them; `accepted()` says how many so far. */
function pump(stream: http.ClientRequest | http.ServerResponse, total: number): { accepted: () => number; done: Promise<void> } {
  let written = 0;
  const done = new Promise<void>((resolve) => {
    const next = () => {
      while (written < total) {
        const piece = total - written >= CHUNK.length ? CHUNK : CHUNK.subarray(0, total - written);
        written += piece.length;
        if (!stream.write(piece)) return void stream.once("drain", next);
      }
      stream.end(resolve);
    };
    next();
  });
  return { accepted: () => written, done };
}

/** Resolves once `read()` has started and stopped changing: the same non-zero value on several polls in a row. */
async function settled(read: () => number): Promise<number> {
  let last = -1;
  let same = 0;
  for (;;) {
    const now = read();
    same = now !== 0 && now === last ? same + 1 : 0;
    last = now;
    if (same >= 5) return now;
    await sleep(50);
  }
}

describe("large bodies", () => {
  it("streams an upload: the upstream sees the first bytes before the client sent the rest", async () => {
    let firstBytes: () => void = () => {};
    const upstreamSawBytes = new Promise<void>((resolve) => (firstBytes = resolve));
    const upstream = await startUpstream((req, res) => {
      let received = 0;
      req.on("data", (chunk: Buffer) => {
        received += chunk.length;
        firstBytes();
      });
      req.on("end", () => res.end(String(received)));
    });
    const { port } = await proxyTo(upstream);
    const answer = new Promise<string>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, method: "PUT", path: "/upload", agent: false, headers: { "content-length": 8 * MiB } }, (res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => (text += chunk.toString()));
        res.on("end", () => resolve(text));
      });
      req.on("error", reject);
      req.write(Buffer.alloc(MiB, 0x62));
      // the rest only once the upstream has seen bytes of the first MiB
      void upstreamSawBytes.then(() => pump(req, 7 * MiB));
    });
    expect(await answer).toBe(String(8 * MiB));
  });

  it("holds an upload back while the upstream does not read it, then delivers all of it", async () => {
    let resumeUpstream: () => void = () => {};
    const upstream = await startUpstream((req, res) => {
      let received = 0;
      req.pause();
      resumeUpstream = () => {
        req.on("data", (chunk: Buffer) => (received += chunk.length));
        req.resume();
      };
      req.on("end", () => res.end(String(received)));
    });
    const { port } = await proxyTo(upstream);
    let client: ReturnType<typeof pump> | undefined;
    const answer = new Promise<string>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, method: "PUT", path: "/upload", agent: false, headers: { "content-length": BODY } }, (res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => (text += chunk.toString()));
        res.on("end", () => resolve(text));
      });
      req.on("error", reject);
      client = pump(req, BODY);
    });
    const held = await settled(() => client?.accepted() ?? 0);
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThan(BOUND);
    resumeUpstream();
    expect(await answer).toBe(String(BODY));
  });

  it("holds a download back while the client does not read it, then delivers all of it", async () => {
    let app: ReturnType<typeof pump> | undefined;
    const upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": BODY });
      app = pump(res, BODY);
    });
    const { port } = await proxyTo(upstream);
    const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: "127.0.0.1", port, path: "/download", agent: false }, resolve).on("error", reject);
    });
    response.pause();
    const held = await settled(() => app?.accepted() ?? 0);
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThan(BOUND);
    let received = 0;
    const ended = new Promise<void>((resolve, reject) => {
      response.on("end", resolve);
      response.on("error", reject);
    });
    response.on("data", (chunk: Buffer) => (received += chunk.length));
    response.resume();
    await ended;
    expect(received).toBe(BODY);
  });
});
