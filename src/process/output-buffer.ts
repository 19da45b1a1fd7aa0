// A managed process's output: each pipe decoded as streaming UTF-8, split into
// lines capped at 16 kB, and the most recent lines kept in a fixed-size ring.
import type { Readable } from "node:stream";

/**
 * Decodes `stream` as UTF-8 (a character split across chunks is kept whole) into `partial`,
 * calling `onLine` for each line; resolves when the stream closes or fails.
 */
export function readLines(stream: Readable | null | undefined, partial: PartialLine, onLine: (line: string) => void): Promise<void> {
  if (stream == null) return Promise.resolve();
  const decoder = new TextDecoder();
  return new Promise((resolve) => {
    stream.on("data", (chunk: Buffer | string) => {
      const text = typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
      partial.push(text, onLine);
    });
    stream.once("error", () => resolve());
    stream.once("close", () => {
      partial.push(decoder.decode(), onLine);
      partial.flush(onLine);
      resolve();
    });
  });
}

/** The unterminated tail of a stream, capped at MAX_LINE_CHARS (the rest of an overlong line is dropped). */
export class PartialLine {
  #text = "";
  #overflow = false;

  push(chunk: string, onLine: (line: string) => void): void {
    let rest = chunk;
    for (let newline = rest.indexOf("\n"); newline >= 0; newline = rest.indexOf("\n")) {
      this.#append(rest.slice(0, newline));
      onLine(this.#take());
      rest = rest.slice(newline + 1);
    }
    this.#append(rest);
  }

  flush(onLine: (line: string) => void): void {
    if (this.#text.length > 0 || this.#overflow) onLine(this.#take());
  }

  #append(text: string): void {
    if (this.#overflow || text.length === 0) return;
    const room = MAX_LINE_CHARS - this.#text.length;
    if (text.length > room) {
      this.#text += text.slice(0, room);
      this.#overflow = true;
    } else {
      this.#text += text;
    }
  }

  #take(): string {
    const line = this.#text.endsWith("\r") ? this.#text.slice(0, -1) : this.#text;
    this.#text = "";
    this.#overflow = false;
    return line;
  }
}

/** Fixed-capacity FIFO: pushing onto a full buffer drops the oldest entry. */
export class RingBuffer<T> {
  readonly #items: (T | undefined)[];
  #start = 0;
  #size = 0;

  constructor(readonly capacity: number) {
    this.#items = new Array<T | undefined>(capacity);
  }

  push(item: T): void {
    const index = (this.#start + this.#size) % this.capacity;
    this.#items[index] = item;
    if (this.#size < this.capacity) {
      this.#size += 1;
    } else {
      this.#start = (this.#start + 1) % this.capacity;
    }
  }

  toArray(): T[] {
    const result: T[] = [];
    for (let i = 0; i < this.#size; i += 1) {
      result.push(this.#items[(this.#start + i) % this.capacity] as T);
    }
    return result;
  }
}

const MAX_LINE_CHARS = 16 * 1024;
