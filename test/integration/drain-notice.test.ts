// The app hears about its drain first: the moment its release starts draining, the old app gets
// the IPC notice {event: "draining"} and its drainSignal, long before any stop signal. An app
// that closes its own WebSockets on the notice gives its clients its own close code, and the
// drain ends as soon as they are gone, not at drainTimeoutMs.
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { applyOverSocket, stdoutEvents } from "../helpers/raw.js";
import { webProcess } from "../helpers/test-config.js";

// Far longer than the test may take: the drain must end because the app moved its clients.
const DRAIN_MS = 60_000;

let daemon: TestDaemon | null = null;
const sockets: WebSocket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.terminate();
  await daemon?.stop();
  daemon = null;
});

function connect(port: number): { opened: Promise<void>; closed: Promise<{ code: number; reason: string; wasClean: boolean }> } {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/socket`);
  sockets.push(ws);
  ws.on("error", () => undefined);
  const closed = new Promise<{ code: number; reason: string; wasClean: boolean }>((resolve) => {
    ws.onclose = (event) => resolve({ code: event.code, reason: event.reason, wasClean: event.wasClean });
  });
  const opened = new Promise<void>((resolve, reject) => {
    ws.once("message", (data) => (String(data) === "hello v1" ? resolve() : reject(new Error(String(data)))));
  });
  return { opened, closed };
}

describe("the drain notice", () => {
  it("tells the old app over IPC and with drainSignal before stopping it; the app's own close code reaches its clients and the drain ends early", async () => {
    daemon = await startDaemon({
      proxy: { drainTimeoutMs: DRAIN_MS, drainCloseCode: 1001 },
      processes: webProcess({
        restartDelayMs: undefined,
        env: '{CLOSE_WS_ON_DRAIN: "1012", DRAIN_LOG: "{{releasePath}}/notice.log", SIGNAL_LOG: "{{releasePath}}/notice.log"}',
        drainSignal: "SIGUSR2",
      }),
    });
    const d = daemon;
    const v1 = await d.release("v1");
    await applyOverSocket(d.socket, { release: { path: v1 } }, "v1");
    const clients = [connect(d.proxyPort), connect(d.proxyPort), connect(d.proxyPort)];
    await Promise.all(clients.map((c) => c.opened));

    const v2 = await d.release("v2");
    await applyOverSocket(d.socket, { release: { path: v2 } }, "v2");
    const closes = await Promise.all(clients.map((c) => c.closed));
    // The app's close frame, not the proxy's 1001 and not a reset.
    for (const close of closes) expect(close).toEqual({ code: 1012, reason: "app draining", wasClean: true });

    const stopped = await until(() => stdoutEvents(d.stdout).find((e) => e.type === "release-stopped" && e.releaseId === "v1"), 20_000, "v1 stopped");
    const events = stdoutEvents(d.stdout);
    expect(events.find((e) => e.type === "drain-timeout" && e.releaseId === "v1")).toBeUndefined();
    expect(Number(stopped.data?.drainMs)).toBeLessThan(DRAIN_MS);
    const started = events.find((e) => e.type === "drain-started" && e.releaseId === "v1");
    expect(started?.data).toMatchObject({ websockets: 3, told: 1 });

    // Both notices came first, the stop signal only after the drain.
    const lines = (await fs.readFile(path.join(v1, "notice.log"), "utf8")).trim().split("\n");
    expect(lines).toHaveLength(3);
    expect(
      lines
        .slice(0, 2)
        .map((line) => line.split(" ")[0])
        .sort(),
    ).toEqual(["SIGUSR2", "message:draining"]);
    expect(lines[2]).toBe("SIGTERM");
    const ipc = lines.find((line) => line.startsWith("message:draining"))!.split(" ");
    expect(ipc[1]).toBe("v1");
    expect(Number(ipc[2])).toBe(Date.parse(String(started?.data?.deadline)));
  });
});
