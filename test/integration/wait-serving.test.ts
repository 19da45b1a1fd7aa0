// `apply --wait` / `deploy` are done when the new release serves all new traffic, not when the
// old release's last WebSocket is cut; `--wait-drained` waits for the old release to stop too;
// and while a health check is pending the wait prints where it stands at least every 2 s.
import { spawn } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { CLI, startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { isAlive } from "../helpers/process.js";

let daemon: TestDaemon | null = null;
let sockets: WebSocket[] = [];
afterEach(async () => {
  for (const ws of sockets) ws.terminate();
  sockets = [];
  await daemon?.stop();
  daemon = null;
});

/** A WebSocket through the proxy that has received its "hello <release>". */
async function openSocket(port: number): Promise<{ ws: WebSocket; hello: string }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/socket`);
  sockets.push(ws);
  ws.on("error", () => undefined);
  const hello = await new Promise<string>((resolve, reject) => {
    ws.once("message", (data) => resolve(String(data)));
    ws.once("close", () => reject(new Error("closed before hello")));
  });
  return { ws, hello };
}

function echo(ws: WebSocket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no echo within 5 s")), 5000);
    ws.once("message", (data) => {
      clearTimeout(timer);
      resolve(String(data));
    });
    ws.send(text);
  });
}

/** `+  4.80 s  message` lines of a wait, as [seconds since the command started, message]. */
function stamped(stdout: string): [number, string][] {
  return stdout.split("\n").flatMap((line): [number, string][] => {
    const m = /^\+\s*([\d.]+) (ms|s)\s{2}(.*)$/.exec(line);
    return m ? [[Number(m[1]) / (m[2] === "ms" ? 1000 : 1), m[3]!]] : [];
  });
}

describe("apply --wait returns when the new release serves", () => {
  it("returns within seconds while one WebSocket keeps v1 draining for up to 30 s, and says so; the WebSocket still echoes", async () => {
    daemon = await startDaemon({ proxy: { drainTimeoutMs: 30000 } });
    const d = daemon;
    expect((await d.cli(["deploy", "--release-path", await d.release("v1")])).code).toBe(0);
    const v1Pid = (await d.status()).processes[0].pid as number;
    const { ws, hello } = await openSocket(d.proxyPort);
    expect(hello).toBe("hello v1");

    const started = Date.now();
    const r = await d.cli(["deploy", "--release-path", await d.release("v2")]);
    const took = Date.now() - started;
    expect(r.code, r.stderr + r.stdout).toBe(0);
    // Today's behaviour was 30 s; a loaded machine still deploys in well under 15.
    expect(took).toBeLessThan(15_000);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines.at(-2)).toMatch(/^✓ v2 serves all new traffic \(/);
    expect(lines.at(-1)).toMatch(/^draining v1: 1 WebSocket, up to (29|30) s \(in the background; --wait-drained waits until it has stopped\)$/);

    // v1 still drains, its process still runs, and the WebSocket on it still works.
    const s = await d.status();
    expect(s.activeRelease.id).toBe("v2");
    expect(s.releases.find((x: { id: string }) => x.id === "v1")).toMatchObject({ state: "draining", connections: { websockets: 1 } });
    expect(await isAlive(v1Pid)).toBe(true);
    expect(await echo(ws, "still there?")).toBe("still there?");
  });

  it("--json reports the draining release; --wait-drained returns only once it has stopped", async () => {
    daemon = await startDaemon({ proxy: { drainTimeoutMs: 30000 } });
    const d = daemon;
    expect((await d.cli(["deploy", "--release-path", await d.release("v1")])).code).toBe(0);
    const v1Pid = (await d.status()).processes[0].pid as number;
    const { ws } = await openSocket(d.proxyPort);
    const v2 = await d.release("v2");

    const applied = await d.cli(["apply", "--release-path", v2, "--wait", "--json"]);
    expect(applied.code, applied.stderr).toBe(0);
    const doc = JSON.parse(applied.stdout);
    expect(doc).toMatchObject({ ok: true, releaseId: "v2", outcome: { outcome: "converged", releaseId: "v2", draining: { releaseId: "v1", inflight: 0, websockets: 1 } } });
    const deadline = Date.parse(doc.outcome.draining.deadline);
    expect(deadline - Date.now()).toBeGreaterThan(20_000);
    expect(doc.outcome.draining.message).toMatch(/^draining v1: 1 WebSocket, up to \d+ s$/);

    // --wait-drained (the same release again: nothing to roll out) waits for v1 to finish.
    const child = spawn(process.execPath, [CLI, "apply", "--release-path", v2, "--wait-drained", "--json", "--config", d.configPath], { cwd: d.dir, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout!.setEncoding("utf8").on("data", (c: string) => (out += c));
    const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.on("exit", (code) => resolve({ code, at: Date.now() })));
    try {
      // Still waiting while the WebSocket holds v1 open.
      await new Promise((r) => setTimeout(r, 2500));
      expect(child.exitCode).toBeNull();
      expect((await d.status()).releases.find((x: { id: string }) => x.id === "v1").state).toBe("draining");
      const closedAt = Date.now();
      ws.close();
      const { code, at } = await Promise.race([exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error("--wait-drained did not return")), 20_000))]);
      expect(code).toBe(0);
      expect(at).toBeGreaterThanOrEqual(closedAt);
      const drained = JSON.parse(out);
      expect(drained.outcome).toMatchObject({ outcome: "converged", message: "v2 is active and converged", draining: null });
      // By then v1 has stopped: its record says so and its process is gone.
      expect((await d.status()).releases.find((x: { id: string }) => x.id === "v1").state).toBe("stopped");
      expect(await isAlive(v1Pid)).toBe(false);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});

describe("progress while waiting", () => {
  it("prints where a pending health check stands at least every 2 s, naming the release, until it passes", async () => {
    daemon = await startDaemon({ proxy: { drainTimeoutMs: 1000, healthTimeoutMs: 20000 } });
    const d = daemon;
    expect((await d.cli(["deploy", "--release-path", await d.release("v1")])).code).toBe(0);
    // v2 refuses connections for 3 s (not listening yet), then answers 503 until 7 s.
    const v2 = await d.release("v2");
    const r = await d.cli(["apply", "-f", "-", "--wait"], { input: `release: {path: ${v2}}\nenv: {BOOT_DELAY_MS: "3000", HEALTH_DELAY_MS: "7000"}\n` });
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const lines = stamped(r.stdout);
    expect(lines.map(([, m]) => m)).toContainEqual(expect.stringMatching(/^started web \(v2, pid \d+, port \d+, reason deploy\)$/));
    const waiting = lines.filter(([, m]) => m.startsWith("waiting for web (v2): "));
    expect(waiting.some(([, m]) => /^waiting for web \(v2\): connect ECONNREFUSED 127\.0\.0\.1:\d+ for \d+\.\d s of 20 s$/.test(m))).toBe(true);
    expect(waiting.some(([, m]) => /^waiting for web \(v2\): HTTP 503 for \d+\.\d s of 20 s$/.test(m))).toBe(true);
    // From the start of v2 to its health check passing, no silence longer than 2 s (plus
    // a margin for a loaded machine).
    const from = lines.find(([, m]) => m.startsWith("started web (v2"))![0];
    const to = lines.find(([, m]) => m.startsWith("web (v2) healthy in"))![0];
    expect(to - from).toBeGreaterThan(6);
    const during = lines.filter(([t]) => t >= from && t <= to).map(([t]) => t);
    const gaps = during.slice(1).map((t, i) => t - during[i]!);
    expect(Math.max(...gaps)).toBeLessThan(2.6);
    // The old release's process lines name it too.
    expect(lines.map(([, m]) => m)).toContainEqual(expect.stringMatching(/^stopping web \(v1, release retired\)$/));
  });
});
