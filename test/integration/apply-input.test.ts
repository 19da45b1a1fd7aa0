// `apply -f FILE` and `apply --release-path P` send what they were given to the daemon, which
// parses the text and merges the flags over its desired file (the CLI loads no YAML parser or
// schema). What users see must not change: a bad file is refused with its position or the typo
// and a fix, exit 1, nothing written; a relative release path in a file is taken from where the
// CLI ran; flags keep the file's replicas and drop `stopped` and the last rollout section.
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { control } from "../helpers/raw.js";
import { companionProcess, webProcess } from "../helpers/test-config.js";

let daemon: TestDaemon;
let v1: string;
let v2: string;

beforeAll(async () => {
  daemon = await startDaemon({
    processes: [webProcess({ restartDelayMs: undefined }), companionProcess("worker")].join("\n"),
    proxy: { drainTimeoutMs: 500 },
  });
  v1 = await daemon.release("v1");
  v2 = await daemon.release("v2");
  const first = await daemon.cli(["deploy", "--release-path", v1, "--replicas", "worker=2"]);
  expect(first.code, first.stderr).toBe(0);
}, 60_000);

afterAll(async () => {
  await daemon?.stop();
});

describe("a bad desired file given to apply -f", () => {
  it("is refused with its line and column, exit 1, and the desired file stays as it was", async () => {
    const before = await fs.readFile(daemon.desiredPath, "utf8");
    const file = path.join(daemon.dir, "broken.yaml");
    await fs.writeFile(file, `release: {path: ${v2}\nreplicas: [\n`);
    const result = await daemon.cli(["apply", "-f", file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`cannot parse desired file ${file.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} at line \\d+, column \\d+`));
    expect(await fs.readFile(daemon.desiredPath, "utf8")).toBe(before);
  });

  it("names a misspelt key with a fix, in text and in --json", async () => {
    const before = await fs.readFile(daemon.desiredPath, "utf8");
    const result = await daemon.cli(["apply", "-f", "-"], { input: `release: {path: ${v2}}\nreplica: {worker: 1}\n` });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("invalid desired file <stdin>");
    expect(result.stderr).toContain("replicas");
    expect(result.stderr).toMatch(/\n {2}fix: \S/);
    const json = await daemon.cli(["apply", "--json", "-f", "-"], { input: `release: {path: ${v2}}\nreplica: {worker: 1}\n` });
    expect(json.code).toBe(1);
    const body = JSON.parse(json.stdout);
    expect(body.ok).toBe(false);
    expect(body.error.code).toBe("DESIRED_INVALID");
    expect(typeof body.error.fix).toBe("string");
    expect(await fs.readFile(daemon.desiredPath, "utf8")).toBe(before);
  });

  it("names a release directory that does not exist", async () => {
    const result = await daemon.cli(["apply", "--release-path", path.join(daemon.dir, "releases", "nope")]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("nope");
  });

  it("refuses an input of the wrong shape over the control API", async () => {
    const answer = await control(daemon.socket, "PUT", "/desired", { input: { text: 42 } });
    expect(answer.status).toBe(400);
    expect(answer.json.error.code).toBe("USAGE");
    const merge = await control(daemon.socket, "PUT", "/desired", { input: { merge: { release: { path: v2 }, replicas: { worker: -1 } } } });
    expect(merge.status).toBe(400);
    expect(merge.json.error.code).toBe("DESIRED_INVALID");
  });
});

describe("what apply writes", () => {
  it("--release-path keeps the file's replicas and env, and drops stopped and the last rollout", async () => {
    await fs.writeFile(daemon.desiredPath, `release: {path: ${v1}}\nreplicas: {worker: 2}\nenv: {FEATURE: "on"}\nrollout: {bakeMs: 0}\n`);
    await until(async () => (await daemon.status()).desired.error === null, 15_000, "the edited desired file to be adopted");
    const result = await daemon.cli(["apply", "--release-path", v2, "--revision", "r2", "--wait"]);
    expect(result.code, result.stderr).toBe(0);
    const written = await fs.readFile(daemon.desiredPath, "utf8");
    expect(written).toContain(`path: ${v2}`);
    expect(written).toContain("revision: r2");
    expect(written).toMatch(/worker: 2/);
    expect(written).toContain("FEATURE: on");
    expect(written).not.toContain("rollout");
    expect(written).not.toContain("stopped");
    expect((await daemon.status()).activeRelease.id).toBe("v2");
  });

  it("a relative release path in -f FILE is taken from the directory the CLI ran in", async () => {
    const sub = path.join(daemon.dir, "deploy-scripts");
    await fs.mkdir(sub, { recursive: true });
    await fs.writeFile(path.join(sub, "next.yaml"), "release: {path: ../releases/v1}\n");
    const result = await runCli(["apply", "-f", "next.yaml", "--wait", "--config", daemon.configPath], { cwd: sub });
    expect(result.code, result.stderr).toBe(0);
    expect(await fs.readFile(daemon.desiredPath, "utf8")).toContain(`path: ${v1}`);
    expect((await daemon.status()).activeRelease.id).toBe("v1");
  });
});
