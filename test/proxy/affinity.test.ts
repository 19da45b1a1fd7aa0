// Session affinity at the proxy: a client pinned to a draining release (by the release cookie,
// or by a session id the proxy remembers) keeps reaching it, HTTP and WebSocket; everything
// else — no pin, an unknown id, a release that is gone, not ready or never switched to — goes
// to the active release.
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { SessionMemory, queryValue, readCookie } from "../../src/proxy/affinity.js";
import { closeAll, onCleanup, request, startProxy, startUpstream } from "./helpers.js";

afterEach(closeAll);

/** An upstream answering its name, over HTTP and as a WebSocket's first message. */
async function named(name: string) {
  const upstream = await startUpstream((_req, res) => res.end(name));
  const wss = new WebSocketServer({ server: upstream.server });
  wss.on("connection", (socket) => socket.send(name));
  onCleanup(
    () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close(() => resolve());
      }),
  );
  return upstream;
}

/** Two releases, "old" (id v1) switched away from and "new" (id v2) active: a deploy mid-drain. */
async function midDrain(options: Parameters<typeof startProxy>[0]) {
  const [oldApp, newApp] = await Promise.all([named("old"), named("new")]);
  const { proxy, port } = await startProxy(options);
  proxy.setBackends("k1", [oldApp.backend("web")], "v1");
  proxy.setActive("k1");
  proxy.setBackends("k2", [newApp.backend("web")], "v2");
  return { proxy, port, oldApp, newApp };
}

function wsFirstMessage(port: number, path: string, headers: Record<string, string> = {}): Promise<{ message: string; setCookie: string[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers });
    onCleanup(() => ws.terminate());
    let setCookie: string[] = [];
    ws.on("upgrade", (res) => (setCookie = res.headers["set-cookie"] ?? []));
    ws.once("message", (data: Buffer) => {
      resolve({ message: data.toString(), setCookie });
      ws.close();
    });
    ws.once("error", reject);
  });
}

const COOKIE = { mode: "cookie", cookie: "rb_release" } as const;

describe("cookie affinity", () => {
  it("names the serving release in an HttpOnly, SameSite=Lax, site-wide cookie", async () => {
    const { port } = await midDrain({ affinity: COOKIE });
    const reply = await request(port);
    expect(reply.body).toBe("old");
    expect(reply.headers["set-cookie"]).toEqual(["rb_release=v1; Path=/; HttpOnly; SameSite=Lax"]);
    const again = await request(port, { headers: { cookie: "rb_release=v1" } });
    expect(again.headers["set-cookie"]).toBeUndefined();
  });

  it("keeps a client of the draining release on it; new clients and unknown ids go to the active one", async () => {
    const { proxy, port } = await midDrain({ affinity: COOKIE });
    proxy.setActive("k2");
    expect((await request(port, { headers: { cookie: "theme=dark; rb_release=v1" } })).body).toBe("old");
    const fresh = await request(port);
    expect(fresh.body).toBe("new");
    expect(fresh.headers["set-cookie"]).toEqual(["rb_release=v2; Path=/; HttpOnly; SameSite=Lax"]);
    const forged = await request(port, { headers: { cookie: "rb_release=v9" } });
    expect(forged.body).toBe("new");
    expect(forged.headers["set-cookie"]).toEqual(["rb_release=v2; Path=/; HttpOnly; SameSite=Lax"]);
    expect((await request(port, { headers: { cookie: "rb_release=%E0%A4%A" } })).body).toBe("new");
  });

  it("routes a WebSocket upgrade by the cookie too, and names the release in the 101", async () => {
    const { proxy, port } = await midDrain({ affinity: COOKIE });
    proxy.setActive("k2");
    expect((await wsFirstMessage(port, "/ws", { cookie: "rb_release=v1" })).message).toBe("old");
    const fresh = await wsFirstMessage(port, "/ws");
    expect(fresh.message).toBe("new");
    expect(fresh.setCookie).toEqual(["rb_release=v2; Path=/; HttpOnly; SameSite=Lax"]);
  });

  it("never pins to a release that was never switched to, is not ready, or is gone", async () => {
    const { proxy, port, oldApp } = await midDrain({ affinity: COOKIE });
    // v2 was never active: a cookie naming it must not reach an unproven release.
    expect((await request(port, { headers: { cookie: "rb_release=v2" } })).body).toBe("old");
    proxy.setActive("k2");
    proxy.setBackends("k1", [oldApp.backend("web", false)], "v1");
    expect((await request(port, { headers: { cookie: "rb_release=v1" } })).body).toBe("new");
    proxy.setBackends("k1", [oldApp.backend("web", true)], "v1");
    expect((await request(port, { headers: { cookie: "rb_release=v1" } })).body).toBe("old");
    proxy.setPinnable("k1", false);
    expect((await request(port, { headers: { cookie: "rb_release=v1" } })).body).toBe("new");
    proxy.setPinnable("k1", true);
    await proxy.closeRelease("k1");
    expect((await request(port, { headers: { cookie: "rb_release=v1" } })).body).toBe("new");
  });

  it("marks the cookie Secure when a trusted front proxy says the client came over https", async () => {
    const { port } = await midDrain({ affinity: COOKIE });
    const reply = await request(port, { headers: { "x-forwarded-proto": "https" } });
    expect(reply.headers["set-cookie"]).toEqual(["rb_release=v1; Path=/; HttpOnly; SameSite=Lax; Secure"]);
    const { port: untrusting } = await midDrain({ affinity: COOKIE, trustedProxies: ["10.0.0.0/8"] });
    const plain = await request(untrusting, { headers: { "x-forwarded-proto": "https" } });
    expect(plain.headers["set-cookie"]).toEqual(["rb_release=v1; Path=/; HttpOnly; SameSite=Lax"]);
  });

  it("sets no cookie and ignores one without affinity", async () => {
    const { proxy, port } = await midDrain({});
    proxy.setActive("k2");
    const reply = await request(port, { headers: { cookie: "rb_release=v1" } });
    expect(reply.body).toBe("new");
    expect(reply.headers["set-cookie"]).toBeUndefined();
  });
});

describe("session-id affinity", () => {
  it("remembers which release first served a query session id and keeps it there while it drains", async () => {
    const { proxy, port } = await midDrain({ affinity: { mode: "query", name: "sid", maxSessions: 100 } });
    expect((await request(port, { path: "/socket.io/?EIO=4&transport=polling&sid=abc" })).body).toBe("old");
    proxy.setActive("k2");
    expect((await request(port, { path: "/socket.io/?EIO=4&transport=polling&sid=abc" })).body).toBe("old");
    expect((await wsFirstMessage(port, "/socket.io/?EIO=4&transport=websocket&sid=abc")).message).toBe("old");
    expect((await request(port, { path: "/socket.io/?EIO=4&transport=polling&sid=xyz" })).body).toBe("new");
    expect((await request(port, { path: "/socket.io/?EIO=4&transport=polling" })).body).toBe("new");
    await proxy.closeRelease("k1");
    expect((await request(port, { path: "/socket.io/?sid=abc" })).body).toBe("new");
  });

  it("does the same with a header", async () => {
    const { proxy, port } = await midDrain({ affinity: { mode: "header", name: "X-Session", maxSessions: 100 } });
    expect((await request(port, { headers: { "x-session": "s1" } })).body).toBe("old");
    proxy.setActive("k2");
    expect((await request(port, { headers: { "x-session": "s1" } })).body).toBe("old");
    expect((await request(port, { headers: { "x-session": "s2" } })).body).toBe("new");
    expect((await request(port)).body).toBe("new");
  });
});

describe("affinity helpers", () => {
  it.each([
    ["rb_release=v1", "v1"],
    ["a=1; rb_release=v%202; b=2", "v 2"],
    ['a=1;rb_release="v3"', "v3"],
    ["xrb_release=v1", null],
    ["rb_release=", null],
    ["rb_release=%zz", null],
    ["", null],
  ])("reads the release cookie from %j", (header, expected) => {
    expect(readCookie(header, "rb_release")).toBe(expected);
  });

  it.each([
    ["/?sid=abc", "abc"],
    ["/p?a=1&sid=a%2Fb&sid=other", "a/b"],
    ["/p?sidx=1", null],
    ["/p?sid=", null],
    ["/p", null],
    ["/p?sid=%zz", null],
  ])("reads the session id from %j", (url, expected) => {
    expect(queryValue(url, "sid")).toBe(expected);
  });

  it("forgets the least recently used session past its bound", () => {
    const memory = new SessionMemory(2);
    memory.set("a", "k1");
    memory.set("b", "k1");
    expect(memory.get("a")).toBe("k1");
    memory.set("c", "k2");
    expect(memory.size).toBe(2);
    expect(memory.get("b")).toBeUndefined();
    expect(memory.get("a")).toBe("k1");
    expect(memory.get("c")).toBe("k2");
  });
});
