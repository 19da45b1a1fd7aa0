// Response times of a judged release over the same sliding window as its error count: a fixed
// histogram per time bucket (log-linear buckets: 1 ms wide up to 16 ms, then 8 per doubling, so
// a bucket is at most 1/8 of its value wide), plus their sum over the window. Recording is a
// clz32, a shift and two increments — no allocation; a quantile walks the 152 summed buckets.

/** Exact buckets for 0..15 ms; above that, 8 buckets per power of two. */
const EXACT = 16;
const PER_OCTAVE = 8;
/** Octaves 2^4 .. 2^20 ms (about 17 minutes); slower responses land in the last bucket. */
const OCTAVES = 17;
export const LATENCY_SLOTS = EXACT + OCTAVES * PER_OCTAVE;

/** The histogram bucket of a response time in whole milliseconds (negative counts as 0). */
export function latencySlot(ms: number): number {
  if (ms < EXACT) return ms < 0 ? 0 : ms | 0;
  const v = ms > 0x7fffffff ? 0x7fffffff : ms | 0;
  const exponent = 31 - Math.clz32(v); // >= 4
  const slot = EXACT + (exponent - 4) * PER_OCTAVE + ((v >>> (exponent - 3)) & (PER_OCTAVE - 1));
  return slot < LATENCY_SLOTS ? slot : LATENCY_SLOTS - 1;
}

/** The largest response time (ms) that falls in `slot`: what a quantile in it is reported as. */
export function slotUpperMs(slot: number): number {
  if (slot < EXACT) return slot;
  const exponent = 4 + Math.floor((slot - EXACT) / PER_OCTAVE);
  const sub = (slot - EXACT) % PER_OCTAVE;
  return ((PER_OCTAVE + sub + 1) << (exponent - 3)) - 1;
}

/** `rows` histograms (one per time bucket of a window) and their running sum. */
export class LatencyHistogram {
  private readonly perRow: Uint32Array;
  private readonly sum = new Uint32Array(LATENCY_SLOTS);

  constructor(rows: number) {
    this.perRow = new Uint32Array(rows * LATENCY_SLOTS);
  }

  /** One response of `ms` in time bucket `row`. */
  record(row: number, ms: number): void {
    const slot = latencySlot(ms);
    const i = row * LATENCY_SLOTS + slot;
    this.perRow[i] = (this.perRow[i] as number) + 1;
    this.sum[slot] = (this.sum[slot] as number) + 1;
  }

  /** Drops a time bucket that fell out of the window. */
  clearRow(row: number): void {
    const base = row * LATENCY_SLOTS;
    for (let s = 0; s < LATENCY_SLOTS; s++) {
      const n = this.perRow[base + s] as number;
      if (n === 0) continue;
      this.sum[s] = (this.sum[s] as number) - n;
      this.perRow[base + s] = 0;
    }
  }

  /**
   * The q-quantile (0 < q <= 1, nearest rank) of the responses in the window, as the upper edge
   * of its bucket (never below the true value); null when there are none.
   */
  quantile(q: number): number | null {
    let total = 0;
    for (let s = 0; s < LATENCY_SLOTS; s++) total += this.sum[s] as number;
    if (total === 0) return null;
    const rank = Math.max(1, Math.ceil(q * total));
    let seen = 0;
    for (let s = 0; s < LATENCY_SLOTS; s++) {
      seen += this.sum[s] as number;
      if (seen >= rank) return slotUpperMs(s);
    }
    return slotUpperMs(LATENCY_SLOTS - 1);
  }
}
