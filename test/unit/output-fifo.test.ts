// The output FIFOs of a new process are made by the `mkfifo` program. Made asynchronously, the
// daemon's event loop (its proxy too) keeps running while it runs; a failure says why and leaves
// no FIFO behind.
import { execFileSync } from "node:child_process";
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createOutputFifosAsync, removeOutputFifos } from "../../src/process/output-fifo.js";

const realMkfifo = execFileSync("sh", ["-c", "command -v mkfifo"], { encoding: "utf8" }).trim();
let dir: string;
let savedPath: string | undefined;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "rb-fifo-"));
  savedPath = process.env.PATH;
});
afterEach(() => {
  process.env.PATH = savedPath;
  rmSync(dir, { recursive: true, force: true });
});

/** A `mkfifo` first in PATH (sh), for this test only. */
function fakeMkfifo(body: string): void {
  const bin = path.join(dir, "bin");
  mkdirSync(bin);
  writeFileSync(path.join(bin, "mkfifo"), `#!/bin/sh\n${body}\n`);
  chmodSync(path.join(bin, "mkfifo"), 0o755);
  process.env.PATH = `${bin}:${savedPath ?? ""}`;
}

const gone = (file: string): boolean => {
  try {
    lstatSync(file);
    return false;
  } catch {
    return true;
  }
};

describe("output FIFOs made without blocking", () => {
  it("creates both FIFOs, mode 0600, while the event loop keeps running", async () => {
    // The real mkfifo, 400 ms late: a spawnSync would hold every timer for that long.
    fakeMkfifo(`sleep 0.4\nexec ${realMkfifo} "$@"`);
    const paths = { stdout: path.join(dir, "web-1.out"), stderr: path.join(dir, "web-1.err") };
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    try {
      await createOutputFifosAsync(paths);
    } finally {
      clearInterval(ticker);
    }
    expect(ticks).toBeGreaterThan(10);
    for (const file of [paths.stdout, paths.stderr]) {
      const st = lstatSync(file);
      expect(st.isFIFO()).toBe(true);
      expect(st.mode & 0o777).toBe(0o600);
    }
    removeOutputFifos(paths);
  });

  it("rejects with mkfifo's own message and removes the FIFO it had made", async () => {
    // Makes the first FIFO, then fails on the second, as a full or read-only directory would.
    fakeMkfifo(`${realMkfifo} -m 600 -- "$4"\necho "mkfifo: cannot create fifo '$5': No space left on device" >&2\nexit 1`);
    const paths = { stdout: path.join(dir, "web-1.out"), stderr: path.join(dir, "web-1.err") };
    await expect(createOutputFifosAsync(paths)).rejects.toMatchObject({ code: "SPAWN_FAILED", message: expect.stringContaining("No space left on device") });
    expect(gone(paths.stdout)).toBe(true);
    expect(gone(paths.stderr)).toBe(true);
  });
});
