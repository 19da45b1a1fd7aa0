// A release's responses over a sliding window, for judging a new release on its live traffic
// (bake window, canary steps). The window is a ring of ten buckets; recording a response is a
// clock read, two increments and two comparisons — it runs on the hot path of every response
// of a judged release, and costs nothing for releases that are not judged. With a p99 bound,
// the response times go into a fixed histogram per bucket (latency-histogram.ts) as well.
import { LatencyHistogram } from "./latency-histogram.js";

/** How a release is judged; the proxy tells its owner once the error budget is exceeded. */
export interface JudgeOptions {
  windowMs: number;
  /** Responses needed in the window before a breach is reported. */
  minRequests: number;
  /** Share of failed responses (0..1) above which the release is in breach. */
  maxErrorRate: number;
  /** Bound (ms) on the p99 of the time to the response headers; 0 or absent: no bound. */
  maxP99Ms?: number;
}

/** A judged release's counts in its window. */
export interface WindowCounts {
  total: number;
  failed: number;
  /** With a p99 bound: responses slower than it, and the p99 (upper edge of its histogram bucket; null without responses). */
  slow?: number;
  p99Ms?: number | null;
}

const BUCKETS = 10;
/** A breach is reported again at most this often while it lasts (the owner may be busy). */
const RENOTIFY_MS = 200;

/** Counts of one release's responses in its window; `onBreach` fires when the budget is exceeded. */
export class ResponseWindow {
  total = 0;
  failed = 0;
  /** Responses slower than maxP99Ms in the window (0 without a bound). */
  slow = 0;
  /** Whether response times are measured (a p99 bound is set): the proxy reads the clock at dispatch only then. */
  readonly timed: boolean;
  private readonly maxP99Ms: number;
  private readonly totals = new Uint32Array(BUCKETS);
  private readonly failures = new Uint32Array(BUCKETS);
  private readonly slows: Uint32Array;
  private readonly latencies: LatencyHistogram | null;
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
    this.maxP99Ms = options.maxP99Ms ?? 0;
    this.timed = this.maxP99Ms > 0;
    this.slows = new Uint32Array(this.timed ? BUCKETS : 0);
    this.latencies = this.timed ? new LatencyHistogram(BUCKETS) : null;
  }

  /**
   * One response: `failed` for a 5xx or an upstream error; `sentAt` (when timed) is when the
   * request went to the release, so its response time is `now - sentAt`.
   */
  record(failed: boolean, sentAt = 0, now: number = Date.now()): void {
    const bucket = Math.floor(now / this.bucketMs);
    if (bucket !== this.current) this.advance(bucket);
    const i = bucket % BUCKETS;
    this.totals[i] = (this.totals[i] as number) + 1;
    this.total++;
    if (failed) {
      this.failures[i] = (this.failures[i] as number) + 1;
      this.failed++;
    }
    if (this.latencies !== null && sentAt > 0) {
      const ms = now - sentAt;
      this.latencies.record(i, ms);
      if (ms > this.maxP99Ms) {
        this.slows[i] = (this.slows[i] as number) + 1;
        this.slow++;
      }
    }
    if (this.total >= this.options.minRequests && (this.failed > this.options.maxErrorRate * this.total || this.slow * 100 > this.total) && now - this.notifiedAt >= RENOTIFY_MS) {
      this.notifiedAt = now;
      this.onBreach();
    }
  }

  /** The counts of the last windowMs. */
  counts(now: number = Date.now()): WindowCounts {
    const bucket = Math.floor(now / this.bucketMs);
    if (bucket !== this.current) this.advance(bucket);
    if (this.latencies === null) return { total: this.total, failed: this.failed };
    return { total: this.total, failed: this.failed, slow: this.slow, p99Ms: this.latencies.quantile(0.99) };
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
      if (this.latencies !== null) {
        this.slow -= this.slows[i] as number;
        this.slows[i] = 0;
        this.latencies.clearRow(i);
      }
    }
    this.current = bucket;
  }
}
