// Limits at the CLI and the control API: timeouts a timer can hold, a capped desired file,
// bounded replica counts, and no control characters in revisions or release ids. Each refusal
// is a clear error, and nothing that runs changes.
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { control } from "../helpers/raw.js";
import { companionProcess, webProcess } from "../helpers/test-config.js";

let daemon: TestDaemon;
let v1: string;
let before: { desired: string; pid: number };

beforeAll(async () => {
  daemon = await startDaemon({
    processes: [webProcess(), companionProcess("worker")].join("\n"),
    proxy: { drainTimeoutMs: 1000 },
  });
  v1 = await daemon.release("v1");
  const first = await daemon.cli(["deploy", "--release-path", v1, "--revision", "r1"]);
  expect(first.code, first.stderr).toBe(0);
  before = await snapshot();
}, 60_000);

afterAll(async () => {
  await daemon?.stop();
});

/** The desired file and the serving web pid: what a refused request must leave alone. */
async function snapshot(): Promise<{ desired: string; pid: number }> {
  const status = await daemon.status();
  expect(status.activeRelease?.id).toBe("v1");
  const web = status.processes.find((p: { id: string; releaseId: string }) => p.id === "web" && p.releaseId === "v1");
  return { desired: await fs.readFile(daemon.desiredPath, "utf8"), pid: web.pid };
}

async function expectUnchanged(): Promise<void> {
  expect(await snapshot()).toEqual(before);
}

describe("timeouts", () => {
  it("refuses a --timeout above 2^31-1 ms on every command that takes one, and changes nothing", async () => {
    const v2 = await daemon.release("v2");
    for (const args of [
      ["apply", "--release-path", v2, "--wait", "--timeout", "2147483648"],
      ["deploy", "--release-path", v2, "--timeout", "9999999999999"],
      ["rollback", "--timeout", "2147483648"],
      ["restart", "--process", "worker", "--timeout", "2147483648"],
    ]) {
      const result = await daemon.cli(args);
      expect(result.code, args.join(" ")).not.toBe(0);
      expect(result.stderr).toContain("at most 2147483647 ms");
    }
    await expectUnchanged();
  });

  it("takes the largest timeout a timer can hold without cutting the rollout short", async () => {
    const v2 = await daemon.release("v2-max");
    const result = await daemon.cli(["apply", "--release-path", v2, "--wait", "--timeout", "2147483647"]);
    expect(result.code, result.stderr).toBe(0);
    expect((await daemon.status()).activeRelease.id).toBe("v2-max");
    // Back to v1 for the other tests.
    const back = await daemon.cli(["deploy", "--release-path", v1, "--revision", "r1"]);
    expect(back.code, back.stderr).toBe(0);
    before = await snapshot();
  });

  it("refuses such a timeoutMs on the wire too", async () => {
    for (const value of ["2147483648", "-5", "1.5", "soon"]) {
      const answer = await control(daemon.socket, "GET", `/wait?timeoutMs=${value}`);
      expect(answer.status, value).toBe(400);
      expect(answer.json.error.code).toBe("USAGE");
      expect(answer.json.error.message).toContain("timeoutMs");
    }
  });
});

describe("the desired file cap", () => {
  const big = (release: string) => `release: {path: ${release}}\n# ${"x".repeat(1024 * 1024)}\n`;

  it("refuses apply -f of a file over 1 MiB, naming its size and the cap", async () => {
    const file = path.join(daemon.dir, "big.yaml");
    await fs.writeFile(file, big(v1));
    const result = await daemon.cli(["apply", "-f", file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`desired file ${file} is ${(await fs.stat(file)).size} bytes; the cap is 1048576 bytes (1 MiB)`);
    const stdin = await daemon.cli(["apply", "-f", "-"], { input: big(v1) });
    expect(stdin.code).toBe(1);
    expect(stdin.stderr).toContain("the cap is 1048576 bytes");
    await expectUnchanged();
  });

  it("refuses a document over the cap over the control API", async () => {
    const answer = await control(daemon.socket, "PUT", "/desired", { document: { release: { path: v1 }, env: { BIG: "x".repeat(1100 * 1024) } } });
    expect(answer.status).toBe(400);
    expect(answer.json.error.code).toBe("DESIRED_INVALID");
    expect(answer.json.error.message).toMatch(/^the desired document \(as YAML\) is \d+ bytes; the cap is 1048576 bytes \(1 MiB\)$/);
    await expectUnchanged();
  });

  it("reports an oversized desired file written by hand and keeps running the last good state", async () => {
    const good = await fs.readFile(daemon.desiredPath, "utf8");
    await fs.writeFile(daemon.desiredPath, big(v1));
    const error = await until(async () => (await daemon.status()).desired.error as string | null, 15_000, "the desired file error");
    expect(error).toContain("the cap is 1048576 bytes");
    const status = await daemon.status();
    expect(status.activeRelease.id).toBe("v1");
    expect(status.processes.find((p: { id: string }) => p.id === "web").pid).toBe(before.pid);
    await fs.writeFile(daemon.desiredPath, good);
    await until(async () => (await daemon.status()).desired.error === null, 15_000, "the error to clear");
    await expectUnchanged();
  });
});

describe("replica counts", () => {
  it("refuses --replicas above 1024 in the CLI and in the daemon", async () => {
    const cli = await daemon.cli(["apply", "--replicas", "worker=1025"]);
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toContain("at most 1024 replicas");
    const wire = await control(daemon.socket, "PUT", "/desired", { document: { release: { path: v1, revision: "r1" }, replicas: { worker: 100000 } } });
    expect(wire.status).toBe(400);
    expect(wire.json.error.message).toContain("replicas.worker");
    await expectUnchanged();
  });
});

describe("control characters", () => {
  it("refuses them in --revision and --release-id before anything is sent", async () => {
    for (const args of [
      ["apply", "--release-path", v1, "--revision", "r1\u001b[2J"],
      ["deploy", "--release-path", v1, "--release-id", "v1\nfake"],
      ["apply", "--release-path", v1, "--revision", "r1\u009b31m"],
    ]) {
      const result = await daemon.cli(args);
      expect(result.code, JSON.stringify(args)).not.toBe(0);
      expect(result.stderr).toContain("contains control characters");
      expect(result.stderr).not.toMatch(/[\u001b\u009b]/);
    }
    await expectUnchanged();
  });

  it("refuses a REVISION file that names a revision with control characters", async () => {
    const v3 = await daemon.release("v3");
    await fs.writeFile(path.join(v3, "REVISION"), "abc\u001b]0;owned\u0007def\n");
    const result = await daemon.cli(["apply", "--release-path", v3, "--wait"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("names a revision with control characters");
    await expectUnchanged();
  });

  it("refuses a desired file whose revision has control characters, and keeps running", async () => {
    const good = await fs.readFile(daemon.desiredPath, "utf8");
    await fs.writeFile(daemon.desiredPath, `release: {path: ${v1}, revision: "r1\\e[31m"}\n`);
    const error = await until(async () => (await daemon.status()).desired.error as string | null, 15_000, "the desired file error");
    expect(error).toContain("revisions must not contain control characters");
    await fs.writeFile(daemon.desiredPath, good);
    await until(async () => (await daemon.status()).desired.error === null, 15_000, "the error to clear");
    await expectUnchanged();
  });
});
