// Appends a process's output to a file and rotates it past maxBytes: path.1 … path.<keep>
// (gzipped to path.N.gz when asked). Writes are buffered and ordered; a write error is
// reported once and never reaches the process or the daemon. Every open goes through
// safe-file.ts: a symlink, FIFO or another user's file at the path (or at path.1 when it is
// gzipped) is refused, never written through; the gzip output is created exclusively.
import { promises as fs } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { dirname } from "node:path";
import { createExclusive, openAppend, openTrustedRead } from "../safe-file.js";

export interface LogFileOptions {
  path: string;
  maxBytes: number;
  keep: number;
  gzip: boolean;
  onError?: (error: unknown) => void;
}

/** Output that may wait for the log file's disk before lines are dropped (UTF-16 units, about bytes). */
export const MAX_QUEUED_BYTES = 8 * 1024 * 1024;

/** Mode of a new log file: the daemon's user writes it, its group may read it. */
const LOG_FILE_MODE = 0o640;

export class RotatingLogFile {
  private queue: string[] = [];
  private writing: Promise<void> | null = null;
  private failed = false;
  private queuedBytes = 0;
  private dropped = 0;
  private dirReady = false;

  constructor(private readonly options: LogFileOptions) {}

  get path(): string {
    return this.options.path;
  }

  /**
   * Queues one line (a newline is added). While more than MAX_QUEUED_BYTES wait for a disk
   * that cannot keep up (a hung network mount, a full device retried), lines are dropped and
   * counted instead of piling up in the daemon's memory; a marker line says how many once
   * the queue has been written. The retained output (`logs`) keeps them either way.
   */
  write(line: string): void {
    // The writer takes the whole queue at once: an empty queue means what was counted is written.
    if (this.queue.length === 0) this.queuedBytes = 0;
    if (this.queuedBytes > MAX_QUEUED_BYTES) {
      this.dropped += 1;
      return;
    }
    if (this.dropped > 0) {
      this.queue.push(`[rollbridge] ${this.dropped} line${this.dropped === 1 ? "" : "s"} not written here: the log file could not keep up\n`);
      this.dropped = 0;
    }
    const text = line + "\n";
    this.queue.push(text);
    this.queuedBytes += text.length;
    if (!this.writing) this.writing = this.drain().finally(() => (this.writing = null));
  }

  /** Resolves once everything queued so far is on disk. */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const lines = this.queue;
      this.queue = [];
      // Opened per batch (not kept open), so a file moved away by an outside tool is followed by name.
      let handle: FileHandle | null = null;
      try {
        if (!this.dirReady) {
          await fs.mkdir(dirname(this.options.path), { recursive: true });
          this.dirReady = true;
        }
        handle = await this.open();
        let size = (await handle.stat()).size;
        // Batch lines into as few writes as possible, rotating exactly at the size limit.
        let chunk = "";
        let chunkBytes = 0;
        for (const line of lines) {
          const bytes = Buffer.byteLength(line);
          if (size + chunkBytes + bytes > this.options.maxBytes && size + chunkBytes > 0) {
            if (chunk) await handle.write(chunk);
            await handle.close();
            handle = null;
            await this.rotate();
            handle = await this.open();
            size = 0;
            chunk = "";
            chunkBytes = 0;
          }
          chunk += line;
          chunkBytes += bytes;
        }
        if (chunk) await handle.write(chunk);
        this.failed = false;
      } catch (error) {
        if (!this.failed) this.options.onError?.(error);
        this.failed = true;
        this.dirReady = false;
      } finally {
        await handle?.close().catch(() => undefined);
      }
    }
  }

  private open(): Promise<FileHandle> {
    return openAppend(this.options.path, { mode: LOG_FILE_MODE, purpose: "append process output to" });
  }

  /** path → path.1 (→ .gz), path.N → path.N+1, dropping what is past `keep`. Renames never follow links. */
  private async rotate(): Promise<void> {
    const { path, keep, gzip } = this.options;
    const ext = gzip ? ".gz" : "";
    if (keep <= 0) {
      await fs.rm(path, { force: true });
      return;
    }
    await fs.rm(`${path}.${keep}${ext}`, { force: true });
    for (let i = keep - 1; i >= 1; i--) {
      await fs.rename(`${path}.${i}${ext}`, `${path}.${i + 1}${ext}`).catch(() => undefined);
    }
    const rotated = `${path}.1`;
    await fs.rename(path, rotated);
    if (gzip) await compress(rotated);
  }
}

/** Gzips `file` to `file.gz` (created exclusively) and removes it; the source is opened without following links. */
async function compress(file: string): Promise<void> {
  const source = await openTrustedRead(file, { purpose: "compress" });
  if (source === null) return;
  const target = `${file}.gz`;
  await fs.rm(target, { force: true });
  let output: FileHandle;
  try {
    output = await createExclusive(target, LOG_FILE_MODE);
  } catch (error) {
    await source.handle.close();
    throw error;
  }
  await pipeline(source.handle.createReadStream(), createGzip(), output.createWriteStream());
  await fs.rm(file, { force: true });
}
