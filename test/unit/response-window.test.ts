// The proxy's counting of a judged release's responses (src/proxy/response-window.ts) and the
// fixed histogram of their times behind the p99 bound (src/proxy/latency-histogram.ts): bucket
// edges, quantiles against exact ones, the sliding window forgetting old buckets, and when a
// breach is reported. A fake clock (the `now` arguments); no sleeps.
import { describe, expect, it } from "vitest";
import { LATENCY_SLOTS, LatencyHistogram, latencySlot, slotUpperMs } from "../../src/proxy/latency-histogram.js";
import { ResponseWindow } from "../../src/proxy/response-window.js";

/** Nearest-rank quantile of `values`. */
function exactQuantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1]!;
}

describe("latency histogram buckets", () => {
  it.each([
    { ms: 0, slot: 0, upper: 0 },
    { ms: 15, slot: 15, upper: 15 },
    { ms: 16, slot: 16, upper: 17 },
    { ms: 17, slot: 16, upper: 17 },
    { ms: 31, slot: 23, upper: 31 },
    { ms: 32, slot: 24, upper: 35 },
    { ms: 500, slot: 55, upper: 511 },
    { ms: 812, slot: 60, upper: 831 },
  ])("$ms ms falls in bucket $slot, reported as $upper ms", ({ ms, slot, upper }) => {
    expect(latencySlot(ms)).toBe(slot);
    expect(slotUpperMs(slot)).toBe(upper);
  });

  it("every time falls in a bucket whose upper edge is at or above it and at most an eighth above", () => {
    const wrong: string[] = [];
    for (let ms = 0; ms < 300_000; ms += ms < 2000 ? 1 : 97) {
      const upper = slotUpperMs(latencySlot(ms));
      if (upper < ms || upper - ms > ms / 8) wrong.push(`${ms} ms reported as ${upper} ms`);
    }
    expect(wrong).toEqual([]);
  });

  it("buckets are in order, and times past the last bucket (fractions, negatives, hours) land at the ends", () => {
    for (let s = 1; s < LATENCY_SLOTS; s++) expect(slotUpperMs(s)).toBeGreaterThan(slotUpperMs(s - 1));
    expect(latencySlot(-5)).toBe(0);
    expect(latencySlot(3.7)).toBe(3);
    expect(latencySlot(10 * 3_600_000)).toBe(LATENCY_SLOTS - 1);
  });

  it("the p99 and p50 it reports are never below the exact ones and within an eighth of them", () => {
    // A deterministic spread: mostly fast, a slow tail.
    const values: number[] = [];
    let seed = 7;
    for (let i = 0; i < 5000; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const r = seed / 2 ** 31;
      values.push(r < 0.97 ? Math.floor(5 + r * 60) : Math.floor(400 + r * 900));
    }
    const h = new LatencyHistogram(10);
    values.forEach((v, i) => h.record(i % 10, v));
    for (const q of [0.5, 0.99]) {
      const exact = exactQuantile(values, q);
      const reported = h.quantile(q)!;
      expect(reported).toBeGreaterThanOrEqual(exact);
      expect(reported - exact).toBeLessThanOrEqual(exact / 8);
    }
  });

  it("a cleared row leaves the others' counts; an empty histogram has no quantile", () => {
    const h = new LatencyHistogram(10);
    expect(h.quantile(0.99)).toBeNull();
    for (let i = 0; i < 100; i++) h.record(0, 900);
    for (let i = 0; i < 100; i++) h.record(1, 10);
    expect(h.quantile(0.99)).toBe(slotUpperMs(latencySlot(900)));
    h.clearRow(0);
    expect(h.quantile(0.99)).toBe(10);
    h.clearRow(1);
    expect(h.quantile(0.5)).toBeNull();
  });
});

describe("ResponseWindow", () => {
  const T = 1_000_000_000;

  it("reports an error-rate breach once minRequests are in, and not before", () => {
    let breaches = 0;
    const w = new ResponseWindow({ windowMs: 10_000, minRequests: 10, maxErrorRate: 0.2 }, () => breaches++, T);
    for (let i = 0; i < 9; i++) w.record(true, 0, T + i);
    expect(breaches).toBe(0);
    w.record(true, 0, T + 9);
    expect(breaches).toBe(1);
    expect(w.counts(T + 10)).toEqual({ total: 10, failed: 10 });
    expect(w.timed).toBe(false);
  });

  it("with a p99 bound: times each response from sentAt and reports a breach when more than 1% were slower", () => {
    let breaches = 0;
    const w = new ResponseWindow({ windowMs: 10_000, minRequests: 20, maxErrorRate: 0.05, maxP99Ms: 500 }, () => breaches++, T);
    expect(w.timed).toBe(true);
    // 199 fast and 2 slow out of 201: 2 > 2.01 is false, within the bound.
    for (let i = 0; i < 199; i++) w.record(false, T + i - 20, T + i);
    w.record(false, T + 300 - 900, T + 300);
    w.record(false, T + 301 - 700, T + 301);
    expect(breaches).toBe(0);
    const within = w.counts(T + 302);
    expect(within).toMatchObject({ total: 201, failed: 0, slow: 2 });
    expect(within.p99Ms).toBeLessThanOrEqual(slotUpperMs(latencySlot(20)));
    // A third slow one: 3 of 202, over 1%.
    w.record(false, T + 400 - 812, T + 400);
    expect(breaches).toBe(1);
    const over = w.counts(T + 401);
    expect(over.slow).toBe(3);
    expect(over.p99Ms).toBeGreaterThan(500);
    expect(over.p99Ms).toBeGreaterThanOrEqual(700);
  });

  it("a response without a send time (the clock not read) is counted but not timed", () => {
    const w = new ResponseWindow({ windowMs: 10_000, minRequests: 1, maxErrorRate: 1, maxP99Ms: 100 }, () => undefined, T);
    w.record(false, 0, T);
    expect(w.counts(T)).toEqual({ total: 1, failed: 0, slow: 0, p99Ms: null });
  });

  it("slides: responses older than the window, slow and failed ones too, are forgotten", () => {
    let breaches = 0;
    const w = new ResponseWindow({ windowMs: 10_000, minRequests: 5, maxErrorRate: 0.5, maxP99Ms: 100 }, () => breaches++, T);
    for (let i = 0; i < 4; i++) w.record(true, T - 1000, T + i);
    expect(w.counts(T + 5_000)).toMatchObject({ total: 4, failed: 4, slow: 4 });
    const later = T + 11_000;
    expect(w.counts(later)).toEqual({ total: 0, failed: 0, slow: 0, p99Ms: null });
    // New fast, good responses after the quiet spell: no breach from the old ones.
    for (let i = 0; i < 10; i++) w.record(false, later + i - 5, later + i);
    expect(breaches).toBe(0);
    expect(w.counts(later + 10)).toMatchObject({ total: 10, failed: 0, slow: 0 });
  });
});
