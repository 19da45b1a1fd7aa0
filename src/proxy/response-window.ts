// A release's responses over a sliding window, for judging a new release on its live traffic
// (bake window, canary steps). The window is a ring of ten buckets; recording a response is a
// clock read, two increments and two comparisons — it runs on the hot path of every response
// of a judged release, and costs nothing for releases that are not judged.

/** How a release is judged; the proxy tells its owner once the error budget is exceeded. */
export interface JudgeOptions {
  windowMs: number;
  /** Responses needed in the window before a breach is reported. */
  minRequests: number;
  /** Share of failed responses (0..1) above which the release is in breach. */
  maxErrorRate: number;
}

const BUCKETS = 10;
/** A breach is reported again at most this often while it lasts (the owner may be busy). */
const RENOTIFY_MS = 200;

/** Counts of one release's responses in its window; `onBreach` fires when the budget is exceeded. */
export class ResponseWindow {
  total = 0;
  failed = 0;
  private readonly totals = new Uint32Array(BUCKETS);
  private readonly failures = new Uint32Array(BUCKETS);
  private readonly bucketMs: number;
  private current: number;
  private notifiedAt = 0;

  constructor(
    private readonly options: JudgeOptions,
    private readonly onBreach: () => void,
    now: number = Date.now(),
  ) {
    this.bucketMs = Math.max(1, Math.ceil(options.windowMs / BUCKETS));
    this.current = Math.floor(now / this.bucketMs);
  }

  /** One response: `failed` for a 5xx or an upstream error. */
  record(failed: boolean, now: number = Date.now()): void {
    const bucket = Math.floor(now / this.bucketMs);
    if (bucket !== this.current) this.advance(bucket);
    const i = bucket % BUCKETS;
    this.totals[i] = (this.totals[i] as number) + 1;
    this.total++;
    if (failed) {
      this.failures[i] = (this.failures[i] as number) + 1;
      this.failed++;
    }
    if (this.total >= this.options.minRequests && this.failed > this.options.maxErrorRate * this.total && now - this.notifiedAt >= RENOTIFY_MS) {
      this.notifiedAt = now;
      this.onBreach();
    }
  }

  /** The counts of the last windowMs. */
  counts(now: number = Date.now()): { total: number; failed: number } {
    const bucket = Math.floor(now / this.bucketMs);
    if (bucket !== this.current) this.advance(bucket);
    return { total: this.total, failed: this.failed };
  }

  // Empties the buckets that fell out of the window (all of them after a long quiet spell).
  private advance(bucket: number): void {
    if (bucket < this.current) return;
    const steps = Math.min(bucket - this.current, BUCKETS);
    for (let s = 1; s <= steps; s++) {
      const i = (this.current + s) % BUCKETS;
      this.total -= this.totals[i] as number;
      this.failed -= this.failures[i] as number;
      this.totals[i] = 0;
      this.failures[i] = 0;
    }
    this.current = bucket;
  }
}
