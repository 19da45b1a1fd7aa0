// What the CLI prints when its output is cut short or the daemon's strings are hostile: a closed
// pipe ends it quietly (exit 141, nothing on stderr); ids, paths and messages are shown with
// control characters escaped, app output keeps its colours but cannot drive the terminal.
import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { companionProcess, webProcess } from "../helpers/test-config.js";

let daemon: TestDaemon;
let hostileDir: string;

// Prints a coloured line and a window-title sequence once, then (FLOOD=1) 1 KiB lines forever.
const PRINTER = `process.stdout.write("\\u001b[31mred\\u001b[0m plain \\u001b]0;owned\\u0007 \\u001b[2J end\\n");
const line = "y".repeat(1023) + "\\n";
if (process.env.FLOOD === "1") setInterval(() => process.stdout.write(line.repeat(50)), 20);
else setInterval(() => {}, 1000);
`;

beforeAll(async () => {
  daemon = await startDaemon({
    processes: [
      webProcess({ restartDelayMs: undefined }),
      companionProcess("printer", { command: "node printer.mjs", gracefulStopMs: 1000 }),
      companionProcess("flood", { command: "node printer.mjs", env: '{FLOOD: "1"}', outputLines: 400, gracefulStopMs: 1000 }),
    ].join("\n"),
  });
  // A release directory whose name would rewrite the terminal's title and clear the screen.
  hostileDir = path.join(daemon.dir, "releases", "v1\u001b]0;pwned\u0007\u001b[2J");
  await fs.mkdir(hostileDir, { recursive: true });
  await fs.writeFile(path.join(hostileDir, "printer.mjs"), PRINTER);
  const deployed = await daemon.cli(["deploy", "--release-path", hostileDir, "--release-id", "v1"]);
  expect(deployed.code, deployed.stderr).toBe(0);
  await until(async () => (await daemon.cli(["logs", "--process", "flood", "--json"])).stdout.length > 300_000, 20_000, "400 retained lines of flood");
}, 60_000);

afterAll(async () => {
  await daemon?.stop();
});

/** Runs `rollbridge ARGS | head -c BYTES` in bash; returns the CLI's exit status and its stderr. */
function throughHead(args: string[], bytes: number): Promise<{ status: number; stderr: string }> {
  const quoted = [process.execPath, CLI, ...args, "--config", daemon.configPath].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
  const errFile = path.join(daemon.dir, `stderr-${Math.random().toString(36).slice(2)}`);
  const script = `${quoted} 2>'${errFile}' | head -c ${bytes} >/dev/null; echo "\${PIPESTATUS[0]}"`;
  return new Promise((resolve, reject) => {
    execFile("bash", ["-c", script], { cwd: daemon.dir, timeout: 30_000 }, async (error, stdout) => {
      if (error) return reject(error);
      resolve({ status: Number(stdout.trim()), stderr: await fs.readFile(errFile, "utf8") });
    });
  });
}

const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

describe("a closed pipe", () => {
  it("ends logs --follow quietly with 141, as cat or git cut off by head", async () => {
    const result = await throughHead(["logs", "--follow", "--process", "flood"], 100);
    expect(result).toEqual({ status: 141, stderr: "" });
  });

  it("ends a long one-shot output quietly with 141", async () => {
    const result = await throughHead(["logs", "--process", "flood"], 100);
    expect(result).toEqual({ status: 141, stderr: "" });
    const json = await throughHead(["logs", "--json"], 100);
    expect(json).toEqual({ status: 141, stderr: "" });
  });

  it("leaves a short output that fit before the reader left alone (exit 0)", async () => {
    const result = await throughHead(["status"], 10);
    expect(result.stderr).toBe("");
    expect([0, 141]).toContain(result.status);
  });
});

describe("hostile strings from the daemon", () => {
  it("are printed by status and events with control characters escaped", async () => {
    const status = await daemon.cli(["status"]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).not.toMatch(RAW_CONTROL);
    expect(status.stdout).toContain("v1\\x1b]0;pwned\\x07\\x1b[2J");
    const events = await daemon.cli(["events", "--limit", "50"]);
    expect(events.stdout).not.toMatch(RAW_CONTROL);
    // --json keeps the value, JSON-escaped.
    const json = await daemon.cli(["status", "--json"]);
    expect(json.stdout).not.toMatch(RAW_CONTROL);
    expect(JSON.parse(json.stdout).activeRelease.path).toBe(hostileDir);
  });

  it("are escaped in error messages that echo them", async () => {
    const result = await daemon.cli(["restart", "--process", "x\u001b[2Jy"]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).not.toMatch(RAW_CONTROL);
    expect(result.stderr).toContain("x\\x1b[2Jy");
  });

  it("leave the colours of app output but escape what could drive the terminal", async () => {
    const logs = await daemon.cli(["logs", "--process", "printer"]);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toContain("\u001b[31mred\u001b[0m plain \\x1b]0;owned\\x07 \\x1b[2J end");
    const json = await daemon.cli(["logs", "--process", "printer", "--json"]);
    expect(JSON.parse(json.stdout).lines.map((l: { line: string }) => l.line)).toContain("\u001b[31mred\u001b[0m plain \u001b]0;owned\u0007 \u001b[2J end");
  });
});
