// The pieces crash recovery stands on: the state file's atomic write and strict read, /proc
// identity parsing, `screen -ls` parsing, and the scrubbing of secrets from persisted text.
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Config } from "../../src/config/resolved-config.js";
import { isRollbridgeError } from "../../src/errors.js";
import { readStateFile, writeStateFile, type StateSnapshot } from "../../src/observe/state-file.js";
import { parseIdentity, readIdentity, selfAndAncestors } from "../../src/process/identity.js";
import { parseScreenList } from "../../src/process/legacy.js";
import { Runtime } from "../../src/reconcile/runtime.js";
import { REDACTED, SecretScrubber } from "../../src/reconcile/state-scrub.js";
import type { ReleaseRecord } from "../../src/reconcile/types.js";

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await fs.rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "rb-state-unit-"));
  dirs.push(dir);
  return dir;
}

function snapshot(): StateSnapshot {
  return {
    version: 1,
    application: "app",
    writtenAt: new Date(0).toISOString(),
    daemon: { pid: 42, startTime: 7 },
    activeKey: "k1",
    releases: [{ key: "k1", id: "v1", path: "/srv/v1", requestedPath: "/srv/current", revision: null, state: "active", createdAt: 1, failedAttempts: 0, envKeys: [] }],
    processes: [{ instanceId: "web", processId: "web", releaseKey: "k1", releaseId: "v1", pid: 100, pgid: 100, startTime: 5, port: 18000, restarts: 0, lastStartReason: "deploy", startedAt: 1, stopSignal: "SIGTERM", gracefulStopMs: 1000 }],
    orphans: [],
    events: [],
  };
}

async function expectInvalid(file: string, pattern: RegExp): Promise<void> {
  const error = await readStateFile(file).then(
    () => null,
    (e: unknown) => e,
  );
  expect(isRollbridgeError(error, "STATE_FILE_INVALID")).toBe(true);
  expect((error as Error).message).toMatch(pattern);
}

describe("state file", () => {
  it("round-trips a snapshot, owner-only, leaving no temp file behind", async () => {
    const dir = await tempDir();
    const file = path.join(dir, "nested", "state.json");
    await writeStateFile(file, snapshot());
    await writeStateFile(file, { ...snapshot(), activeKey: null });
    // Entries written without a uid take the file owner's: the daemon that wrote it ran as that user.
    const uid = process.getuid?.() ?? 0;
    expect(await readStateFile(file)).toEqual({ ...snapshot(), activeKey: null, processes: snapshot().processes.map((p) => ({ ...p, uid })) });
    expect(await fs.readdir(path.dirname(file))).toEqual(["state.json"]);
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
  });

  it("reads a missing file as no snapshot", async () => {
    expect(await readStateFile(path.join(await tempDir(), "none.json"))).toBeNull();
  });

  it("refuses garbage, another version and a malformed entry with STATE_FILE_INVALID", async () => {
    const dir = await tempDir();
    const file = path.join(dir, "state.json");
    await fs.writeFile(file, "{not json");
    await expectInvalid(file, /not valid JSON/);
    await fs.writeFile(file, JSON.stringify({ ...snapshot(), version: 2 }));
    await expectInvalid(file, /version 2/);
    const bad = snapshot() as unknown as { processes: { pid: unknown }[] };
    bad.processes[0]!.pid = "100";
    await fs.writeFile(file, JSON.stringify(bad));
    await expectInvalid(file, /processes\.0\.pid/);
  });
});

describe("process identity", () => {
  it("parses pid, parent, group and start time even when the program name holds spaces and parentheses", () => {
    const stat = "4242 (my (weird) app) S 17 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10 0";
    expect(parseIdentity(4242, stat)).toEqual({ pid: 4242, ppid: 17, pgid: 4242, startTime: 987654, state: "S" });
  });

  it("treats a zombie as gone", () => {
    expect(parseIdentity(5, "5 (app) Z 1 5 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0 0")).toBeNull();
  });

  it("reads this process and walks its ancestors up to PID 1", async () => {
    const self = await readIdentity(process.pid);
    expect(self?.ppid).toBe(process.ppid);
    const chain = await selfAndAncestors();
    expect(chain.has(process.pid)).toBe(true);
    expect(chain.has(process.ppid)).toBe(true);
    expect(chain.has(1)).toBe(true);
  });
});

describe("screen -ls", () => {
  it("lists sessions by pid and name, names with dots included", () => {
    const text = ["There are screens on:", "\t24256.ticket-server\t(11/23/26 16:20:17)\t(Detached)", "\t31337.app.v2\t(Attached)", "2 Sockets in /run/screen/S-root."].join("\n");
    expect(parseScreenList(text)).toEqual([
      { id: "24256.ticket-server", pid: 24256, name: "ticket-server" },
      { id: "31337.app.v2", pid: 31337, name: "app.v2" },
    ]);
    expect(parseScreenList("No Sockets found in /run/screen/S-root.\n")).toEqual([]);
  });
});

describe("secret scrubbing", () => {
  it("cuts configured env values and command lines out of a text, and remembers them", () => {
    const config = { processes: [{ id: "web", command: "node server.js --key s3cr3t-argv", env: { TOKEN: "hunter2-token", SHORT: "1" } }] } as unknown as Config;
    const { runtime, records } = Runtime.create(() => undefined);
    records.addRelease({ key: "k", spec: { env: { DB_PASSWORD: "correct-horse" } } } as unknown as ReleaseRecord);
    const scrubber = new SecretScrubber();
    scrubber.learn(config, runtime);
    const text = "Command failed: /bin/sh -c 'exec node server.js --key s3cr3t-argv' with hunter2-token and correct-horse, 1 time";
    expect(scrubber.scrub(text)).toBe(`Command failed: /bin/sh -c 'exec ${REDACTED}' with ${REDACTED} and ${REDACTED}, 1 time`);
    records.forgetRelease("k");
    scrubber.learn({ processes: [] } as unknown as Config, runtime);
    expect(scrubber.scrub("later: correct-horse")).toBe(`later: ${REDACTED}`);
  });
});
