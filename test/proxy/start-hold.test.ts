// The daemon's own hold at start (until it adopted what an earlier daemon left) holds requests
// like `rollbridge pause`, but it is not a pause: status does not report it, and ending it
// does not end a pause an operator asked for in the meantime.
import { afterEach, describe, expect, it } from "vitest";
import { closeAll, request, sleep, startProxy, startUpstream } from "./helpers.js";

afterEach(closeAll);

describe("the start hold", () => {
  it("holds requests until it ends, without reporting a pause", async () => {
    const app = await startUpstream((_req, res) => res.end("ok"));
    const { proxy, port } = await startProxy({ holdTimeoutMs: 10_000 });
    proxy.setStartHold(true);
    let answered = false;
    const reply = request(port).then((r) => {
      answered = true;
      return r;
    });
    proxy.setBackends("a", [app.backend("web")]);
    proxy.setActive("a");
    await sleep(300);
    expect(answered).toBe(false);
    expect(proxy.paused()).toBe(false);
    proxy.setStartHold(false);
    expect((await reply).status).toBe(200);
  });

  it("leaves a pause asked for during the hold in place when the hold ends", async () => {
    const app = await startUpstream((_req, res) => res.end("ok"));
    const { proxy, port } = await startProxy({ holdTimeoutMs: 10_000 });
    proxy.setBackends("a", [app.backend("web")]);
    proxy.setActive("a");
    proxy.setStartHold(true);
    proxy.setPaused(true);
    proxy.setStartHold(false);
    expect(proxy.paused()).toBe(true);
    let answered = false;
    const reply = request(port).then((r) => {
      answered = true;
      return r;
    });
    await sleep(300);
    expect(answered).toBe(false);
    proxy.setPaused(false);
    expect((await reply).status).toBe(200);
  });

  it("sends what it held where a new request would go: a running canary step takes its share", async () => {
    const stable = await startUpstream((_req, res) => res.end("stable"));
    const canary = await startUpstream((_req, res) => res.end("canary"));
    const { proxy, port } = await startProxy({ holdTimeoutMs: 10_000 });
    proxy.setBackends("a", [stable.backend("web")]);
    proxy.setActive("a");
    proxy.setBackends("b", [canary.backend("web")]);
    proxy.setCanary({ releaseKey: "b", weight: 50, sticky: "none" });
    proxy.setStartHold(true);
    const replies = Promise.all(Array.from({ length: 4 }, () => request(port)));
    await sleep(300);
    proxy.setStartHold(false);
    const bodies = (await replies).map((reply) => reply.body).sort();
    expect(bodies).toEqual(["canary", "canary", "stable", "stable"]);
  });
});
