import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createProxy } from "../../src/proxy/create-proxy.js";
import { closeAll, request, sleep, startProxy, startUpstream } from "./helpers.js";

afterEach(closeAll);

describe("proxy server", () => {
  it("listen() returns the real port for port 0 and rejects with EADDRINUSE on a taken port", async () => {
    const { port } = await startProxy();
    expect(port).toBeGreaterThan(0);
    const second = createProxy({ host: "127.0.0.1", port, holdTimeoutMs: 100 });
    await expect(second.listen()).rejects.toMatchObject({ code: "EADDRINUSE" });
    await second.close();
  });

  it("closes idle keep-alive client connections after keepAliveTimeoutMs", async () => {
    const upstream = await startUpstream((_req, res) => res.end("ok"));
    const { proxy, port } = await startProxy({ timeouts: { keepAliveTimeoutMs: 150 } });
    proxy.setBackends("a", [upstream.backend("web")]);
    proxy.setActive("a");
    const socket = net.connect(port, "127.0.0.1");
    const closed = new Promise<number>((resolve) => socket.on("close", () => resolve(Date.now())));
    let received = "";
    socket.on("data", (chunk) => (received += chunk.toString()));
    socket.write("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    const sent = Date.now();
    const closedAt = await closed;
    expect(received).toMatch(/^HTTP\/1.1 200 /);
    expect(closedAt - sent).toBeGreaterThanOrEqual(100);
    expect(closedAt - sent).toBeLessThan(3000);
  });

  it("close() is idempotent and works before listen()", async () => {
    const unlistened = createProxy({ host: "127.0.0.1", port: 0, holdTimeoutMs: 100 });
    await unlistened.close();
    const { proxy, port } = await startProxy();
    await Promise.all([proxy.close(), proxy.close()]);
    await proxy.close();
    await expect(request(port)).rejects.toThrow(/ECONNREFUSED/);
  });

  it("keeps working after setBackends replaces backends (old pool closed, new one used)", async () => {
    const one = await startUpstream((_req, res) => res.end("one"));
    const two = await startUpstream((_req, res) => res.end("two"));
    const { proxy, port } = await startProxy();
    proxy.setBackends("a", [one.backend("web")]);
    proxy.setActive("a");
    expect((await request(port)).body).toBe("one");
    proxy.setBackends("a", [two.backend("web")]);
    expect((await request(port)).body).toBe("two");
    await sleep(50);
    expect(await one.connections()).toBe(0);
  });
});
