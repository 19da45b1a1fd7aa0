// The WebSocket frame cursor finds every frame boundary of a stream however it is cut into
// chunks (headers split anywhere, 7-, 16- and 64-bit lengths, masked or not), and the proxy's
// close frames are what RFC 6455 says.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FrameCursor, closeFrame } from "../../src/proxy/ws-frames.js";

function frame(opcode: number, length: number, masked: boolean): Buffer {
  const ext = length < 126 ? [length] : length < 65536 ? [126, length >> 8, length & 0xff] : [127, 0, 0, 0, 0, (length >>> 24) & 0xff, (length >> 16) & 0xff, (length >> 8) & 0xff, length & 0xff];
  ext[0] = (ext[0] as number) | (masked ? 0x80 : 0);
  return Buffer.concat([Buffer.from([0x80 | opcode, ...ext]), masked ? Buffer.from([1, 2, 3, 4]) : Buffer.alloc(0), Buffer.alloc(length, 0x61)]);
}

/** Offsets (in the whole stream) at which the cursor says it is at a boundary, fed in `cuts`. */
function boundariesSeen(stream: Buffer, cuts: number[]): number[] {
  const cursor = new FrameCursor();
  const seen: number[] = [];
  let offset = 0;
  for (const end of [...cuts, stream.length]) {
    let chunk = stream.subarray(offset, end);
    // Walk the chunk boundary by boundary, as the cut does.
    while (chunk.length > 0) {
      const taken = cursor.toBoundary(chunk);
      if (taken === 0) {
        // at a boundary already: step into the next frame by one byte
        cursor.feed(chunk.subarray(0, 1));
        offset += 1;
        chunk = chunk.subarray(1);
        if (cursor.atBoundary()) seen.push(offset);
        continue;
      }
      offset += taken;
      chunk = chunk.subarray(taken);
      if (cursor.atBoundary()) seen.push(offset);
    }
    offset = end;
  }
  return seen;
}

describe("FrameCursor", () => {
  it("finds the end of every frame however the stream is chunked", () => {
    const frameArb = fc.record({ opcode: fc.constantFrom(0x1, 0x2, 0x0, 0x9, 0xa, 0x8), length: fc.oneof(fc.integer({ min: 0, max: 125 }), fc.integer({ min: 126, max: 70_000 })), masked: fc.boolean() });
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (frames, rawCuts) => {
        const parts = frames.map((f) => frame(f.opcode, f.length, f.masked));
        const stream = Buffer.concat(parts);
        const ends: number[] = [];
        let at = 0;
        for (const part of parts) ends.push((at += part.length));
        const cuts = [...new Set(rawCuts.map((c) => c % stream.length))].filter((c) => c > 0).sort((a, b) => a - b);
        expect(boundariesSeen(stream, cuts)).toEqual(ends);
      }),
      { numRuns: 300 },
    );
  });

  it("follows whole chunks with feed and knows a close frame went by", () => {
    const cursor = new FrameCursor();
    const data = Buffer.concat([frame(0x1, 5, true), frame(0x2, 300, true)]);
    for (let i = 0; i < data.length; i += 7) cursor.feed(data.subarray(i, i + 7));
    expect(cursor.atBoundary()).toBe(true);
    expect(cursor.closeSeen).toBe(false);
    cursor.feed(frame(0x8, 2, true));
    expect(cursor.atBoundary()).toBe(true);
    expect(cursor.closeSeen).toBe(true);
  });

  it("gives up on a 64-bit length past 2^53 instead of miscounting", () => {
    const cursor = new FrameCursor();
    cursor.feed(Buffer.from([0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 0x61]));
    expect(cursor.lost).toBe(true);
    expect(cursor.atBoundary()).toBe(false);
    expect(cursor.toBoundary(Buffer.alloc(10))).toBe(10);
  });
});

describe("closeFrame", () => {
  it("writes an unmasked close frame toward the client", () => {
    expect(closeFrame(1001, "bye", false)).toEqual(Buffer.from([0x88, 5, 0x03, 0xe9, 0x62, 0x79, 0x65]));
  });

  it("writes a masked close frame toward the app", () => {
    const bytes = closeFrame(1012, "release retired", true);
    expect(bytes[0]).toBe(0x88);
    expect(bytes[1]).toBe(0x80 | 17);
    const mask = bytes.subarray(2, 6);
    const payload = Buffer.from(bytes.subarray(6));
    for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (mask[i & 3] as number);
    expect(payload.readUInt16BE(0)).toBe(1012);
    expect(payload.subarray(2).toString()).toBe("release retired");
  });

  it("keeps the reason within a control frame's 125 bytes", () => {
    expect(closeFrame(1001, "x".repeat(300), false).length).toBe(2 + 125);
  });
});
