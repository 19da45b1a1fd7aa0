// A process's log file never makes the daemon queue output without bound: what waits for the
// disk is capped, the rest is dropped and counted, and a marker line in the file says so.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MAX_QUEUED_BYTES, RotatingLogFile } from "../../src/process/log-file.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "rb-logbound-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the log file queue", () => {
  it("keeps at most its cap waiting for the disk, and marks how many lines it dropped", async () => {
    const file = path.join(dir, "web.log");
    const log = new RotatingLogFile({ path: file, maxBytes: 1024 * 1024 * 1024, keep: 1, gzip: false });
    const line = "z".repeat(1023);
    const total = 20 * 1024; // 20 MiB in one go: the disk cannot take any of it before the burst ends
    for (let i = 0; i < total; i++) log.write(line);
    await log.flush();
    log.write("after");
    await log.flush();
    const lines = readFileSync(file, "utf8")
      .split("\n")
      .filter((l) => l !== "");
    const written = lines.filter((l) => l === line).length;
    // The cap, plus the first line (taken by the writer at once) and the one that crossed it.
    expect(written * 1024).toBeLessThanOrEqual(MAX_QUEUED_BYTES + 2 * 1024);
    const marker = lines.at(-2)!;
    const dropped = Number(/^\[rollbridge\] (\d+) lines not written here: the log file could not keep up$/.exec(marker)?.[1]);
    expect(written + dropped).toBe(total);
    expect(lines.at(-1)).toBe("after");
  });

  it("writes every line of output the disk keeps up with", async () => {
    const file = path.join(dir, "steady.log");
    const log = new RotatingLogFile({ path: file, maxBytes: 1024 * 1024 * 1024, keep: 1, gzip: false });
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 100; i++) log.write(`line ${round}-${i}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await log.flush();
    expect(
      readFileSync(file, "utf8")
        .split("\n")
        .filter((l) => l !== "").length,
    ).toBe(4000);
  });
});
