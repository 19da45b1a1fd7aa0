// Appends a process's output to a file and rotates it past maxBytes: path.1 … path.<keep>
// (gzipped to path.N.gz when asked). Writes are buffered and ordered; a write error is
// reported once and never reaches the process or the daemon.
import { createReadStream, createWriteStream, promises as fs } from "node:fs";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { dirname } from "node:path";

export interface LogFileOptions {
  path: string;
  maxBytes: number;
  keep: number;
  gzip: boolean;
  onError?: (error: unknown) => void;
}

/** Output that may wait for the log file's disk before lines are dropped (UTF-16 units, about bytes). */
export const MAX_QUEUED_BYTES = 8 * 1024 * 1024;

export class RotatingLogFile {
  private size = -1;
  private queue: string[] = [];
  private writing: Promise<void> | null = null;
  private failed = false;
  private queuedBytes = 0;
  private dropped = 0;

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
      try {
        if (this.size < 0) {
          await fs.mkdir(dirname(this.options.path), { recursive: true });
          this.size = await fs.stat(this.options.path).then((s) => s.size, () => 0);
        }
        // Batch lines into as few writes as possible, rotating exactly at the size limit.
        let chunk = "";
        let chunkBytes = 0;
        for (const line of lines) {
          const bytes = Buffer.byteLength(line);
          if (this.size + chunkBytes + bytes > this.options.maxBytes && this.size + chunkBytes > 0) {
            if (chunk) await fs.appendFile(this.options.path, chunk);
            await this.rotate();
            chunk = "";
            chunkBytes = 0;
          }
          chunk += line;
          chunkBytes += bytes;
        }
        if (chunk) await fs.appendFile(this.options.path, chunk);
        this.size += chunkBytes;
        this.failed = false;
      } catch (error) {
        if (!this.failed) this.options.onError?.(error);
        this.failed = true;
        this.size = -1;
      }
    }
  }

  /** path → path.1 (→ .gz), path.N → path.N+1, dropping what is past `keep`. */
  private async rotate(): Promise<void> {
    const { path, keep, gzip } = this.options;
    const ext = gzip ? ".gz" : "";
    if (keep <= 0) {
      await fs.rm(path, { force: true });
      this.size = 0;
      return;
    }
    await fs.rm(`${path}.${keep}${ext}`, { force: true });
    for (let i = keep - 1; i >= 1; i--) {
      await fs.rename(`${path}.${i}${ext}`, `${path}.${i + 1}${ext}`).catch(() => undefined);
    }
    const rotated = `${path}.1`;
    await fs.rename(path, rotated);
    this.size = 0;
    if (gzip) {
      await pipeline(createReadStream(rotated), createGzip(), createWriteStream(`${rotated}.gz`));
      await fs.rm(rotated, { force: true });
    }
  }
}
