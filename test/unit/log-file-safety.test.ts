// A process logFile (src/process/log-file.ts) never writes through a planted file: a symlink at
// the log path is refused and reported once, and rotation with gzip neither follows a symlink
// planted at the compressed name nor leaves it in place.
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { isRollbridgeError } from "../../src/errors.js";
import { RotatingLogFile } from "../../src/process/log-file.js";

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await fs.rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "rb-logfile-"));
  dirs.push(dir);
  return dir;
}

describe("process log files", () => {
  it("refuses a symlink at the log path, reports it once, and never writes through it", async () => {
    const dir = await tempDir();
    const precious = path.join(dir, "precious");
    await fs.writeFile(precious, "keep\n");
    const file = path.join(dir, "web.log");
    await fs.symlink(precious, file);
    const errors: unknown[] = [];
    const log = new RotatingLogFile({ path: file, maxBytes: 1000, keep: 2, gzip: false, onError: (e) => errors.push(e) });
    for (let i = 0; i < 5; i++) log.write(`line ${i}`);
    await log.flush();
    log.write("later");
    await log.flush();
    expect(errors).toHaveLength(1);
    expect(isRollbridgeError(errors[0], "UNSAFE_PATH")).toBe(true);
    expect((errors[0] as Error).message).toMatch(/symbolic link/);
    expect(await fs.readFile(precious, "utf8")).toBe("keep\n");
  });

  it("creates the log 0640, and a gzip rotation replaces a symlink planted at the .gz name instead of writing through it", async () => {
    const dir = await tempDir();
    const precious = path.join(dir, "precious");
    await fs.writeFile(precious, "keep\n");
    const file = path.join(dir, "web.log");
    await fs.symlink(precious, `${file}.1.gz`);
    const errors: unknown[] = [];
    const log = new RotatingLogFile({ path: file, maxBytes: 100, keep: 2, gzip: true, onError: (e) => errors.push(e) });
    for (let i = 0; i < 20; i++) log.write(`line ${String(i).padStart(3, "0")} of the output`);
    await log.flush();
    expect(errors).toEqual([]);
    expect(await fs.readFile(precious, "utf8")).toBe("keep\n");
    const gz = await fs.lstat(`${file}.1.gz`);
    expect(gz.isFile()).toBe(true);
    expect(gunzipSync(await fs.readFile(`${file}.1.gz`)).toString()).toMatch(/^line \d{3} of the output\n/);
    expect((await fs.stat(file)).mode & 0o777).toBe(0o640);
  });
});
