// WebSocket framing (RFC 6455 5.2) as far as a tunnel needs it: where one frame ends and the
// next begins, read from the frame headers alone (payload bytes are skipped by count, never
// copied), and the one frame the proxy writes itself, a close frame. A tunnel that knows its
// frame boundaries can put that close frame between two frames of the stream it forwards.

import { randomFillSync } from "node:crypto";

/** Opcode of a close frame. */
export const OPCODE_CLOSE = 0x8;

// 2 bytes, then a 16- or 64-bit extended length, then a 4-byte masking key: at most 14.
const MAX_HEADER = 14;
// Payload lengths above 2^53 cannot be counted exactly in a double; no real peer sends them.
const MAX_SAFE_HIGH_WORD = 0x1fffff;

/**
 * Follows one direction of a WebSocket stream, chunk by chunk, and knows whether the bytes seen
 * so far end on a frame boundary. A header split across chunks is kept (at most 14 bytes).
 */
export class FrameCursor {
  /** A close frame's header went by (the peer that sends this stream has begun closing). */
  closeSeen = false;
  /** Not WebSocket framing this cursor can follow: boundaries are unknown from here on. */
  lost = false;
  /** Payload bytes of the current frame still to come. */
  private remaining = 0;
  private header: Uint8Array | null = null;
  private headerLength = 0;

  /** True when the bytes seen so far end exactly after a whole frame. */
  atBoundary(): boolean {
    return !this.lost && this.remaining === 0 && this.headerLength === 0;
  }

  /** Follows all of `chunk`. */
  feed(chunk: Uint8Array): void {
    this.advance(chunk, 0, false);
  }

  /**
   * Follows `chunk` up to the end of the frame in progress and returns how many of its bytes
   * that took (all of them when the frame goes on past the chunk; 0 when already at a boundary).
   */
  toBoundary(chunk: Uint8Array): number {
    if (this.lost) return chunk.length;
    if (this.atBoundary()) return 0;
    return this.advance(chunk, 0, true);
  }

  private advance(chunk: Uint8Array, start: number, stopAtBoundary: boolean): number {
    const n = chunk.length;
    let i = start;
    while (i < n && !this.lost) {
      const remaining = this.remaining;
      if (remaining > 0) {
        const left = n - i;
        if (left < remaining) {
          this.remaining = remaining - left;
          return n;
        }
        i += remaining;
        this.remaining = 0;
        if (stopAtBoundary) return i;
        continue;
      }
      // A frame header starts (or goes on) at i.
      if (this.headerLength === 0) {
        const size = n - i >= 2 ? headerSize(chunk[i + 1] as number) : MAX_HEADER + 1;
        if (n - i >= size) {
          this.startFrame(chunk, i);
          i += size;
          if (stopAtBoundary && this.remaining === 0) return i;
          continue;
        }
      }
      i = this.collectHeader(chunk, i);
      if (this.headerLength === 0 && stopAtBoundary && this.remaining === 0) return i;
    }
    return this.lost ? n : i;
  }

  // Copies header bytes until the header is whole (then parses it) or the chunk ends.
  private collectHeader(chunk: Uint8Array, from: number): number {
    const header = (this.header ??= new Uint8Array(MAX_HEADER));
    let i = from;
    while (i < chunk.length) {
      header[this.headerLength++] = chunk[i++] as number;
      if (this.headerLength >= 2 && this.headerLength === headerSize(header[1] as number)) {
        this.headerLength = 0;
        this.startFrame(header, 0);
        return i;
      }
    }
    return i;
  }

  // `bytes` holds a whole header at `at`.
  private startFrame(bytes: Uint8Array, at: number): void {
    const b0 = bytes[at] as number;
    const len7 = (bytes[at + 1] as number) & 0x7f;
    if ((b0 & 0x0f) === OPCODE_CLOSE) this.closeSeen = true;
    if (len7 < 126) {
      this.remaining = len7;
    } else if (len7 === 126) {
      this.remaining = ((bytes[at + 2] as number) << 8) | (bytes[at + 3] as number);
    } else {
      const high = (((bytes[at + 2] as number) << 24) | ((bytes[at + 3] as number) << 16) | ((bytes[at + 4] as number) << 8) | (bytes[at + 5] as number)) >>> 0;
      const low = (((bytes[at + 6] as number) << 24) | ((bytes[at + 7] as number) << 16) | ((bytes[at + 8] as number) << 8) | (bytes[at + 9] as number)) >>> 0;
      if (high > MAX_SAFE_HIGH_WORD) {
        this.lost = true;
        return;
      }
      this.remaining = high * 0x1_0000_0000 + low;
    }
  }
}

/**
 * A close frame with `code` and a short UTF-8 `reason` (cut to fit a control frame's 125
 * bytes). `masked`: frames toward a server (the app) must be masked, frames toward a client
 * must not be (RFC 6455 5.1).
 */
export function closeFrame(code: number, reason: string, masked: boolean): Buffer {
  const text = Buffer.from(reason, "utf8").subarray(0, 123);
  const payloadLength = 2 + text.length;
  const headerLength = masked ? 6 : 2;
  const frame = Buffer.allocUnsafe(headerLength + payloadLength);
  frame[0] = 0x80 | OPCODE_CLOSE; // FIN + close
  frame[1] = (masked ? 0x80 : 0) | payloadLength;
  const payload = headerLength;
  frame.writeUInt16BE(code, payload);
  text.copy(frame, payload + 2);
  if (masked) {
    const mask = frame.subarray(2, 6);
    randomFillSync(mask);
    for (let i = 0; i < payloadLength; i++) frame[payload + i] = (frame[payload + i] as number) ^ (mask[i & 3] as number);
  }
  return frame;
}

// Header size from its second byte: 2, plus the extended length, plus the masking key.
function headerSize(b1: number): number {
  const len7 = b1 & 0x7f;
  return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
}
