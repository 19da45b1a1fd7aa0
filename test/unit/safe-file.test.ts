// src/safe-file.ts on real files: a planted symlink, FIFO, hard link or another owner's file is
// refused (and never written through), temp names are random and exclusive, and an atomic
// rewrite keeps the replaced file's mode and owner.
import { promises as fs } from "node:fs";
import { execFileSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { isRollbridgeError } from "../../src/errors.js";
import { createExclusive, openAppend, readTrusted, tempPathFor, writeAtomic } from "../../src/safe-file.js";

const isRoot = process.getuid?.() === 0;
const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await fs.rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "rb-safe-"));
  dirs.push(dir);
  return dir;
}

async function refusal(promise: Promise<unknown>): Promise<Error> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e as Error,
  );
  expect(error, "expected a refusal").not.toBeNull();
  expect(isRollbridgeError(error, "UNSAFE_PATH"), String(error)).toBe(true);
  return error!;
}

describe("openAppend", () => {
  it("creates a missing file with the asked mode and appends to it", async () => {
    const file = path.join(await tempDir(), "daemon.log");
    for (const line of ["one\n", "two\n"]) {
      const handle = await openAppend(file, { mode: 0o600 });
      await handle.write(line);
      await handle.close();
    }
    expect(await fs.readFile(file, "utf8")).toBe("one\ntwo\n");
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
  });

  it("refuses a symlink, naming it, and leaves its target untouched", async () => {
    const dir = await tempDir();
    const target = path.join(dir, "precious");
    await fs.writeFile(target, "keep\n");
    const link = path.join(dir, "daemon.log");
    await fs.symlink(target, link);
    const error = await refusal(openAppend(link));
    expect(error.message).toContain(link);
    expect(error.message).toMatch(/symbolic link owned by/);
    expect(await fs.readFile(target, "utf8")).toBe("keep\n");
  });

  it("refuses a FIFO at once instead of blocking on it", async () => {
    const fifo = path.join(await tempDir(), "daemon.log");
    execFileSync("mkfifo", [fifo]);
    const started = Date.now();
    const error = await refusal(openAppend(fifo));
    expect(error.message).toMatch(/FIFO/);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("refuses a hard link to another file", async () => {
    const dir = await tempDir();
    const target = path.join(dir, "precious");
    await fs.writeFile(target, "keep\n");
    const link = path.join(dir, "daemon.log");
    await fs.link(target, link);
    const error = await refusal(openAppend(link));
    expect(error.message).toMatch(/2 hard links/);
    expect(await fs.readFile(target, "utf8")).toBe("keep\n");
  });

  it.skipIf(!isRoot)("refuses a file of another owner, naming the owner (needs root to chown)", async () => {
    const file = path.join(await tempDir(), "daemon.log");
    await fs.writeFile(file, "");
    await fs.chown(file, 54321, 54321);
    const error = await refusal(openAppend(file));
    expect(error.message).toMatch(/owned by uid 54321/);
    expect((error as { fix?: string }).fix).toMatch(/rm /);
  });
});

describe("createExclusive and temp names", () => {
  it("fails on anything already there, a dangling symlink included", async () => {
    const dir = await tempDir();
    const link = path.join(dir, "lock");
    await fs.symlink(path.join(dir, "nowhere"), link);
    await expect(createExclusive(link)).rejects.toMatchObject({ code: "EEXIST" });
    await expect(fs.access(path.join(dir, "nowhere"))).rejects.toThrow();
  });

  it("names temp files unpredictably, beside their target", () => {
    const names = new Set(Array.from({ length: 50 }, () => tempPathFor("/srv/app/desired.yaml")));
    expect(names.size).toBe(50);
    for (const name of names) expect(name).toMatch(/^\/srv\/app\/\.desired\.yaml\.[0-9a-f]{16}\.tmp$/);
  });
});

describe("writeAtomic", () => {
  it("creates a new file 0600 and leaves no temp file", async () => {
    const dir = await tempDir();
    const file = path.join(dir, "desired.yaml");
    await writeAtomic(file, "a: 1\n", { anyOwner: true, keepOwnership: true, mode: 0o600 });
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    expect(await fs.readdir(dir)).toEqual(["desired.yaml"]);
  });

  it("keeps the mode of the file it replaces", async () => {
    const file = path.join(await tempDir(), "desired.yaml");
    await fs.writeFile(file, "old\n");
    await fs.chmod(file, 0o640);
    await writeAtomic(file, "new\n", { anyOwner: true, keepOwnership: true });
    expect(await fs.readFile(file, "utf8")).toBe("new\n");
    expect((await fs.stat(file)).mode & 0o777).toBe(0o640);
  });

  it.skipIf(!isRoot)("keeps the owner and group of the file it replaces (needs root to chown)", async () => {
    const file = path.join(await tempDir(), "desired.yaml");
    await fs.writeFile(file, "old\n", { mode: 0o600 });
    await fs.chown(file, 54321, 54322);
    await writeAtomic(file, "new\n", { anyOwner: true, keepOwnership: true });
    const stat = await fs.stat(file);
    expect([stat.uid, stat.gid, stat.mode & 0o777]).toEqual([54321, 54322, 0o600]);
  });

  it("refuses to replace a symlink, and writes nothing through it", async () => {
    const dir = await tempDir();
    const target = path.join(dir, "precious");
    await fs.writeFile(target, "keep\n");
    const link = path.join(dir, "state.json");
    await fs.symlink(target, link);
    await refusal(writeAtomic(link, "{}\n"));
    expect(await fs.readFile(target, "utf8")).toBe("keep\n");
    expect((await fs.lstat(link)).isSymbolicLink()).toBe(true);
    expect((await fs.readdir(dir)).sort()).toEqual(["precious", "state.json"]);
  });
});

describe("readTrusted", () => {
  it("reads a file of ours, and reads a missing one as null", async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, "a"), "x");
    expect((await readTrusted(path.join(dir, "a")))?.text).toBe("x");
    expect(await readTrusted(path.join(dir, "missing"))).toBeNull();
  });

  it("refuses to read through a symlink", async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, "secret"), "s3cr3t");
    await fs.symlink(path.join(dir, "secret"), path.join(dir, "state.json"));
    const error = await refusal(readTrusted(path.join(dir, "state.json")));
    expect(error.message).not.toContain("s3cr3t");
  });
});
