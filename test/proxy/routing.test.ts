import http from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { closeAll, request, sleep, startProxy, startUpstream, waitFor } from "./helpers.js";

afterEach(closeAll);

/** An upstream answering its name; requests to paths starting with /slow wait for release(). */
async function namedUpstream(name: string) {
  const waiting: Array<() => void> = [];
  const upstream = await startUpstream((req, res) => {
    const answer = () => res.end(name);
    if (req.url?.startsWith("/slow")) {
      res.writeHead(200, { "content-type": "text/plain" });
      // /slow-started sends a first chunk, which carries the headers through the proxy at once.
      res.write(req.url.startsWith("/slow-started") ? "started " : "");
      waiting.push(answer);
    } else answer();
  });
  return {
    ...upstream,
    waiting,
    releaseAll() {
      for (const answer of waiting.splice(0)) answer();
    },
  };
}

describe("routing", () => {
  it("answers 503 No active release when nothing is active", async () => {
    const { port } = await startProxy();
    const reply = await request(port);
    expect(reply.status).toBe(503);
    expect(reply.body).toBe("No active release");
    expect(reply.headers["content-type"]).toBe("text/plain");
  });

  it("answers 502 Bad gateway after holdTimeoutMs when the active release has no ready backend", async () => {
    const upstream = await namedUpstream("a");
    const { proxy, port } = await startProxy({ holdTimeoutMs: 200 });
    proxy.setBackends("a", [upstream.backend("web", false)]);
    proxy.setActive("a");
    const started = Date.now();
    const reply = await request(port);
    const waited = Date.now() - started;
    expect(reply.status).toBe(502);
    expect(reply.body).toBe("Bad gateway");
    expect(waited).toBeGreaterThanOrEqual(180);
    expect(waited).toBeLessThan(2000);
  });

  it("serves a held request once a backend becomes ready", async () => {
    const upstream = await namedUpstream("a");
    const { proxy, port } = await startProxy({ holdTimeoutMs: 5000 });
    proxy.setActive("a");
    const pending = request(port, { method: "POST", body: "payload" });
    await sleep(100);
    proxy.setBackends("a", [upstream.backend("web", true)]);
    const reply = await pending;
    expect(reply.status).toBe(200);
    expect(reply.body).toBe("a");
  });

  it("sends a held request to the release that becomes active while it waits", async () => {
    const a = await namedUpstream("a");
    const b = await namedUpstream("b");
    const { proxy, port } = await startProxy({ holdTimeoutMs: 5000 });
    proxy.setBackends("a", [a.backend("web", false)]);
    proxy.setActive("a");
    const pending = request(port);
    await sleep(50);
    proxy.setBackends("b", [b.backend("web", true)]);
    expect(await Promise.race([pending, sleep(100).then(() => "still held")])).toBe("still held");
    proxy.setActive("b");
    expect((await pending).body).toBe("b");
  });

  it("lets an in-flight request on the old release finish after a switch while new requests go to the new one", async () => {
    const a = await namedUpstream("a");
    const b = await namedUpstream("b");
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [a.backend("web")]);
    proxy.setActive("a");
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const slow = request(port, { path: "/slow" });
      await waitFor(() => a.waiting.length === 1);
      expect(proxy.connections("a")).toEqual({ inflight: 1, websockets: 0 });

      proxy.setBackends("b", [b.backend("web")]);
      proxy.setActive("b");
      expect(proxy.activeRelease()).toBe("b");
      // keep-alive client connection: routing is per request, so both land on b
      expect((await request(port, { agent })).body).toBe("b");
      expect((await request(port, { agent })).body).toBe("b");
      expect(proxy.connections("b")).toEqual({ inflight: 0, websockets: 0 });

      a.releaseAll();
      const reply = await slow;
      expect(reply.status).toBe(200);
      expect(reply.body).toBe("a");
      await waitFor(() => proxy.connections("a").inflight === 0);
    } finally {
      agent.destroy();
    }
  });

  it("counts in-flight requests per release and zeros for an unknown key", async () => {
    const a = await namedUpstream("a");
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [a.backend("web")]);
    proxy.setActive("a");
    const replies = [request(port, { path: "/slow1" }), request(port, { path: "/slow2" }), request(port, { path: "/slow3" })];
    await waitFor(() => a.waiting.length === 3);
    expect(proxy.connections("a")).toEqual({ inflight: 3, websockets: 0 });
    expect(proxy.connections("nope")).toEqual({ inflight: 0, websockets: 0 });
    a.releaseAll();
    await Promise.all(replies);
    await waitFor(() => proxy.connections("a").inflight === 0);
  });

  it("closeRelease ends in-flight responses where they are, closes pools and stops routing to it", async () => {
    const a = await namedUpstream("a");
    const { proxy, port } = await startProxy({ holdTimeoutMs: 100 });
    proxy.setBackends("a", [a.backend("web")]);
    proxy.setActive("a");
    // Cut only once the app's headers reached the client through the proxy: waiting for the app to
    // have the request let closeRelease win the race on a loaded machine (504, no response yet).
    let headersArrived = false;
    const inflight = new Promise<string>((resolve) => {
      const req = http.request({ host: "127.0.0.1", port, path: "/slow-started", agent: false }, (res) => {
        headersArrived = true;
        let body = "";
        res.on("data", (chunk: Buffer) => (body += chunk.toString()));
        res.on("end", () => resolve(`completed ${res.statusCode} "${body}"`));
        res.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "error"));
      });
      req.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "error"));
      req.end();
    });
    await waitFor(() => a.waiting.length === 1 && headersArrived);
    await proxy.closeRelease("a");
    // The app had sent its headers and a first chunk but not its name: the chunked body ends there (drain-cut.test.ts has the details).
    expect(await inflight).toBe('completed 200 "started "');
    expect(proxy.connections("a")).toEqual({ inflight: 0, websockets: 0 });
    expect(proxy.activeRelease()).toBeNull();
    await waitFor(async () => (await a.connections()) === 0);
    expect((await request(port)).status).toBe(503);
  });

  it("spreads requests across 3 backends by least outstanding requests", async () => {
    const ups = await Promise.all([namedUpstream("x"), namedUpstream("y"), namedUpstream("z")]);
    const { proxy, port } = await startProxy();
    proxy.setBackends(
      "a",
      ups.map((u, i) => u.backend(`web#${i}`)),
    );
    proxy.setActive("a");
    // 9 slow requests: least-outstanding gives each backend exactly 3
    const slow = Array.from({ length: 9 }, (_, i) => request(port, { path: `/slow${i}` }));
    await waitFor(() => ups.reduce((n, u) => n + u.waiting.length, 0) === 9);
    expect(ups.map((u) => u.waiting.length)).toEqual([3, 3, 3]);
    // with x busy (3) and y, z idle, new requests avoid x
    ups[1]?.releaseAll();
    ups[2]?.releaseAll();
    await waitFor(() => proxy.connections("a").inflight === 3);
    const fast = await Promise.all(Array.from({ length: 6 }, () => request(port)));
    expect(fast.map((r) => r.body).filter((name) => name === "x")).toEqual([]);
    ups[0]?.releaseAll();
    await Promise.all(slow);
    // idle backends: ties are broken round-robin
    const sequential: string[] = [];
    for (let i = 0; i < 6; i++) sequential.push((await request(port)).body);
    expect(sequential.filter((n) => n === "x").length).toBe(2);
    expect(sequential.filter((n) => n === "y").length).toBe(2);
    expect(sequential.filter((n) => n === "z").length).toBe(2);
  });

  it("only routes to ready backends", async () => {
    const x = await namedUpstream("x");
    const y = await namedUpstream("y");
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [x.backend("web#0", false), y.backend("web#1", true)]);
    proxy.setActive("a");
    for (let i = 0; i < 4; i++) expect((await request(port)).body).toBe("y");
    proxy.setBackends("a", [x.backend("web#0", true), y.backend("web#1", false)]);
    for (let i = 0; i < 4; i++) expect((await request(port)).body).toBe("x");
  });

  it("setActive(null) answers 503 again", async () => {
    const x = await namedUpstream("x");
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [x.backend("web")]);
    proxy.setActive("a");
    expect((await request(port)).status).toBe(200);
    proxy.setActive(null);
    expect(proxy.activeRelease()).toBeNull();
    expect((await request(port)).status).toBe(503);
  });
  it("backendOutstanding counts in-flight requests per backend, zero when unknown", async () => {
    const x = await namedUpstream("x");
    const y = await namedUpstream("y");
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [x.backend("web#0"), y.backend("web#1")]);
    proxy.setActive("a");
    const replies = [request(port, { path: "/slow1" }), request(port, { path: "/slow2" }), request(port, { path: "/slow3" })];
    await waitFor(() => x.waiting.length + y.waiting.length === 3);
    expect(proxy.backendOutstanding("a", "web#0", x.port)).toBe(x.waiting.length);
    expect(proxy.backendOutstanding("a", "web#1", y.port)).toBe(y.waiting.length);
    expect(proxy.backendOutstanding("a", "web#0", y.port)).toBe(0);
    expect(proxy.backendOutstanding("nope", "web#0", x.port)).toBe(0);
    // a replaced backend stays listed, not ready, while it drains
    proxy.setBackends("a", [x.backend("web#0", false), y.backend("web#1")]);
    expect(proxy.backendOutstanding("a", "web#0", x.port)).toBe(x.waiting.length);
    x.releaseAll();
    y.releaseAll();
    await Promise.all(replies);
    await waitFor(() => proxy.backendOutstanding("a", "web#0", x.port) + proxy.backendOutstanding("a", "web#1", y.port) === 0);
  });

  it("reports every response's status and release through onResponse", async () => {
    const x = await namedUpstream("x");
    const seen: Array<[string | null, number]> = [];
    const { proxy, port } = await startProxy({ holdTimeoutMs: 100, onResponse: (key, status) => seen.push([key, status]) });
    expect((await request(port)).status).toBe(503);
    proxy.setBackends("a", [x.backend("web")]);
    proxy.setActive("a");
    expect((await request(port)).status).toBe(200);
    proxy.setBackends("a", [x.backend("web", false)]);
    expect((await request(port)).status).toBe(502);
    expect(seen).toEqual([
      [null, 503],
      ["a", 200],
      ["a", 502],
    ]);
  });
});
