import http from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { closeAll, rawExchange, request, startProxy, startUpstream, type Upstream } from "./helpers.js";

afterEach(closeAll);

interface Echo {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

async function echoUpstream() {
  return startUpstream((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const echo: Echo = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(chunks).toString(),
      };
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(echo));
    });
  });
}

async function proxyTo(upstream: Upstream) {
  const started = await startProxy();
  started.proxy.setBackends("r1", [upstream.backend("web")]);
  started.proxy.setActive("r1");
  return started;
}

describe("HTTP forwarding", () => {
  it("forwards method, path, query and a streamed request body", async () => {
    const upstream = await echoUpstream();
    const { port } = await proxyTo(upstream);
    const body = "x".repeat(200_000);
    const reply = await request(port, { method: "PATCH", path: "/a/b?c=1&d=%20e", body, headers: { "content-type": "text/plain" } });
    expect(reply.status).toBe(200);
    const echo = JSON.parse(reply.body) as Echo;
    expect(echo.method).toBe("PATCH");
    expect(echo.url).toBe("/a/b?c=1&d=%20e");
    expect(echo.body).toBe(body);
    expect(echo.headers["content-type"]).toBe("text/plain");
    expect(echo.headers["content-length"]).toBe(String(body.length));
  });

  it("forwards a chunked request body without a content-length", async () => {
    const upstream = await echoUpstream();
    const { port } = await proxyTo(upstream);
    const reply = await rawExchange(port, "POST /upload HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    expect(reply).toMatch(/^HTTP\/1.1 200/);
    const echo = JSON.parse(reply.slice(reply.indexOf("{"), reply.lastIndexOf("}") + 1)) as Echo;
    expect(echo.body).toBe("hello world");
    expect(echo.headers.host).toBe("example.test");
  });

  it("preserves status, reason, headers and every set-cookie", async () => {
    const upstream = await startUpstream((_req, res) => {
      res.statusMessage = "Made It";
      res.setHeader("set-cookie", ["a=1; Path=/", "b=2; HttpOnly", "c=3"]);
      res.setHeader("x-custom", "value");
      res.setHeader("cache-control", "no-store");
      res.writeHead(201);
      res.end("created");
    });
    const { port } = await proxyTo(upstream);
    const reply = await request(port, { path: "/thing" });
    expect(reply.status).toBe(201);
    expect(reply.body).toBe("created");
    expect(reply.headers["set-cookie"]).toEqual(["a=1; Path=/", "b=2; HttpOnly", "c=3"]);
    expect(reply.headers["x-custom"]).toBe("value");
    expect(reply.headers["cache-control"]).toBe("no-store");
    const status = await rawExchange(port, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    expect(status.startsWith("HTTP/1.1 201 Made It\r\n")).toBe(true);
  });

  it("passes a HEAD request and a 204 / 304 without a body", async () => {
    const upstream = await startUpstream((req, res) => {
      if (req.url === "/204") res.writeHead(204).end();
      else if (req.url === "/304") res.writeHead(304, { etag: '"x"' }).end();
      else res.writeHead(200, { "content-length": "5" }).end(req.method === "HEAD" ? undefined : "hello");
    });
    const { port } = await proxyTo(upstream);
    const head = await request(port, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe("5");
    expect(head.body).toBe("");
    expect((await request(port, { path: "/204" })).status).toBe(204);
    const notModified = await request(port, { path: "/304" });
    expect(notModified.status).toBe(304);
    expect(notModified.headers.etag).toBe('"x"');
  });

  it("streams the response body before the upstream finishes", async () => {
    let finish: (() => void) | undefined;
    const upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("first;");
      finish = () => res.end("last");
    });
    const { port } = await proxyTo(upstream);
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.get({ host: "127.0.0.1", port, path: "/", agent: false }, (res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => {
          text += chunk.toString();
          // the upstream ends only after the client has seen the first chunk
          if (text === "first;") finish?.();
        });
        res.on("end", () => resolve(text));
      });
      req.on("error", reject);
    });
    expect(body).toBe("first;last");
  });

  it("answers Expect: 100-continue itself and forwards the body without Expect", async () => {
    const upstream = await echoUpstream();
    const { port } = await proxyTo(upstream);
    const reply = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, method: "POST", path: "/expect", agent: false, headers: { expect: "100-continue", "content-length": "4" } });
      req.on("continue", () => req.end("body"));
      req.on("response", (res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => (text += chunk.toString()));
        res.on("end", () => resolve(text));
      });
      req.on("error", reject);
    });
    const echo = JSON.parse(reply) as Echo;
    expect(echo.body).toBe("body");
    expect(echo.headers.expect).toBeUndefined();
  });

  it("strips hop-by-hop request headers and those named by Connection", async () => {
    const upstream = await echoUpstream();
    const { port } = await proxyTo(upstream);
    const reply = await rawExchange(
      port,
      [
        "GET /hop HTTP/1.1",
        "Host: app.example",
        "Connection: keep-alive, X-Secret",
        "X-Secret: hidden",
        "Keep-Alive: timeout=5",
        "TE: trailers",
        "Trailer: X-Later",
        "Upgrade-Insecure-Requests: 1",
        "Proxy-Authorization: Basic Zm9vOmJhcg==",
        "Proxy-Connection: keep-alive",
        "X-Kept: yes",
        "",
        "",
      ].join("\r\n"),
      /\r\n0\r\n\r\n$/,
    );
    const echo = JSON.parse(reply.slice(reply.indexOf("{"), reply.lastIndexOf("}") + 1)) as Echo;
    expect(echo.headers["x-secret"]).toBeUndefined();
    expect(echo.headers["keep-alive"]).toBeUndefined();
    expect(echo.headers.te).toBeUndefined();
    expect(echo.headers.trailer).toBeUndefined();
    expect(echo.headers["proxy-authorization"]).toBeUndefined();
    expect(echo.headers["proxy-connection"]).toBeUndefined();
    expect(echo.headers["x-kept"]).toBe("yes");
    expect(echo.headers["upgrade-insecure-requests"]).toBe("1");
    expect(echo.headers.host).toBe("app.example");
    // undici's own keep-alive connection header, never the client's list
    expect(echo.headers.connection ?? "keep-alive").toBe("keep-alive");
  });

  it("strips hop-by-hop response headers and those named by Connection", async () => {
    const upstream = await startUpstream((req, _res) => {
      req.socket.write(
        ["HTTP/1.1 200 OK", "Connection: x-foo, keep-alive", "X-Foo: private", "Keep-Alive: timeout=30", "Proxy-Authenticate: Basic", "Trailer: X-Checksum", "Upgrade: h2c", "X-Bar: public", "Content-Length: 2", "", "ok"].join("\r\n"),
      );
    });
    const { port } = await proxyTo(upstream);
    const reply = await request(port);
    expect(reply.status).toBe(200);
    expect(reply.body).toBe("ok");
    expect(reply.headers["x-foo"]).toBeUndefined();
    expect(reply.headers["proxy-authenticate"]).toBeUndefined();
    expect(reply.headers.trailer).toBeUndefined();
    expect(reply.headers.upgrade).toBeUndefined();
    expect(reply.headers["keep-alive"]).not.toBe("timeout=30");
    expect(reply.headers.connection).not.toMatch(/x-foo/i);
    expect(reply.headers["x-bar"]).toBe("public");
  });

  it("re-frames a chunked upstream response for the client", async () => {
    const upstream = await startUpstream((_req, res) => {
      res.write("a");
      res.end("b");
    });
    const { port } = await proxyTo(upstream);
    const raw = await rawExchange(port, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    expect(raw.match(/transfer-encoding: chunked/gi)?.length).toBe(1);
    expect((await request(port)).body).toBe("ab");
  });

  it("sets X-Forwarded-* when the client sent none", async () => {
    const upstream = await echoUpstream();
    const { port } = await proxyTo(upstream);
    const echo = JSON.parse((await request(port, { headers: { host: "shop.example:8080" } })).body) as Echo;
    expect(echo.headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(echo.headers["x-forwarded-proto"]).toBe("http");
    expect(echo.headers["x-forwarded-host"]).toBe("shop.example:8080");
    expect(echo.headers.host).toBe("shop.example:8080");
  });

  it("keeps the front proxy's X-Forwarded-* and appends the client address", async () => {
    const upstream = await echoUpstream();
    const { port } = await proxyTo(upstream);
    const echo = JSON.parse(
      (
        await request(port, {
          headers: {
            host: "internal:3000",
            "x-forwarded-for": "203.0.113.7, 10.0.0.1",
            "x-forwarded-proto": "https",
            "x-forwarded-host": "shop.example",
          },
        })
      ).body,
    ) as Echo;
    expect(echo.headers["x-forwarded-for"]).toBe("203.0.113.7, 10.0.0.1, 127.0.0.1");
    expect(echo.headers["x-forwarded-proto"]).toBe("https");
    expect(echo.headers["x-forwarded-host"]).toBe("shop.example");
    expect(echo.headers.host).toBe("internal:3000");
    const count = echo.rawHeaders.filter((name) => name.toLowerCase() === "x-forwarded-for").length;
    expect(count).toBe(1);
  });

  it("answers 431 to a 100 kB header", async () => {
    const upstream = await echoUpstream();
    const { port } = await proxyTo(upstream);
    const raw = await rawExchange(port, `GET / HTTP/1.1\r\nHost: h\r\nX-Big: ${"a".repeat(100_000)}\r\n\r\n`, /\r\n\r\n/);
    expect(raw).toMatch(/^HTTP\/1.1 431 /);
  });

  it("answers 400 to a malformed request", async () => {
    const { port } = await startProxy();
    const raw = await rawExchange(port, "NOT A REQUEST\r\n\r\n");
    expect(raw).toMatch(/^HTTP\/1.1 400 /);
  });

  it("serves many keep-alive requests on one client connection", async () => {
    const upstream = await echoUpstream();
    const { port } = await proxyTo(upstream);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => request(port, { path: `/${i}`, agent })));
      expect(replies.map((r) => (JSON.parse(r.body) as Echo).url)).toEqual(Array.from({ length: 20 }, (_, i) => `/${i}`));
    } finally {
      agent.destroy();
    }
  });
});
