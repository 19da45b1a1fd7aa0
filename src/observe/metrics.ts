// Prometheus metrics of the daemon: request counters fed by the proxy's response hook, deploy
// and restart counters derived from the event log, and gauges read at scrape time, rendered in
// the text exposition format (version 0.0.4).
import type { DaemonEvent } from "../control/protocol.js";
import type { EventLog } from "../reconcile/events.js";
import { processIdOf } from "../reconcile/planner-config.js";
import type { StartReason } from "../reconcile/types.js";

/** What a scrape reads from the daemon at that moment. */
export interface MetricsSnapshot {
  releases: { key: string; id: string; state: string; connections: { inflight: number; websockets: number } }[];
  processes: { id: string; instanceId: string; releaseId: string; rssBytes?: number | null }[];
  activeReleaseId: string | null;
  reconcile: { passes: number; errors: number };
}

export type DeployResult = "succeeded" | "failed" | "superseded";

const CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"] as const;
/** Deploy duration buckets, seconds (rollout start → traffic switched). */
const DURATION_BUCKETS = [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300];
const RESTART_REASONS: ReadonlySet<StartReason> = new Set(["crash", "memory", "manual", "requested"]);

export class Metrics {
  /** Responses per release key (null: no active release), by status class 1xx..5xx. */
  private readonly responses = new Map<string | null, number[]>();
  private readonly releaseIds = new Map<string, string>();
  private readonly deploys: Record<DeployResult, number> = { succeeded: 0, failed: 0, superseded: 0 };
  private readonly durationCounts = new Array<number>(DURATION_BUCKETS.length).fill(0);
  private durationSum = 0;
  /** Releases rolled back on their live traffic (or by `abort`). */
  private rollbacks = 0;
  private durationCount = 0;
  private readonly restarts = new Map<string, { process: string; reason: string; count: number }>();
  private readonly unsubscribe: () => void;

  constructor(events: EventLog) {
    this.unsubscribe = events.subscribe((event) => this.onEvent(event));
  }

  /** The proxy's hot path: one map lookup and one increment per response. */
  countResponse(releaseKey: string | null, status: number): void {
    let counts = this.responses.get(releaseKey);
    if (counts === undefined) {
      counts = [0, 0, 0, 0, 0];
      this.responses.set(releaseKey, counts);
    }
    const index = Math.floor(status / 100) - 1;
    if (index >= 0 && index < 5) counts[index] = (counts[index] ?? 0) + 1;
  }

  close(): void {
    this.unsubscribe();
  }

  private onEvent(event: DaemonEvent): void {
    if (event.releaseKey !== undefined && event.releaseId !== undefined) this.releaseIds.set(event.releaseKey, event.releaseId);
    switch (event.type) {
      case "traffic-switched":
        this.deploys.succeeded += 1;
        this.observeDuration(event.data.rolloutMs / 1000);
        return;
      case "rollout-failed":
        this.deploys.failed += 1;
        return;
      case "rolled-back":
        this.rollbacks += 1;
        return;
      case "release-stopped":
        if (event.data.from === "starting") this.deploys.superseded += 1;
        return;
      case "process-started": {
        const { reason, instanceId } = event.data;
        if (!RESTART_REASONS.has(reason)) return;
        const process = processIdOf(instanceId);
        const key = `${process}\u0000${reason}`;
        const entry = this.restarts.get(key) ?? { process, reason, count: 0 };
        entry.count += 1;
        this.restarts.set(key, entry);
        return;
      }
      default:
        return;
    }
  }

  private observeDuration(seconds: number): void {
    this.durationSum += seconds;
    this.durationCount += 1;
    DURATION_BUCKETS.forEach((le, i) => {
      if (seconds <= le) this.durationCounts[i] = (this.durationCounts[i] ?? 0) + 1;
    });
  }

  /** The whole exposition, from the counters and a snapshot of the daemon. */
  render(snapshot: MetricsSnapshot): string {
    for (const r of snapshot.releases) this.releaseIds.set(r.key, r.id);
    const out = new Exposition();

    out.family("rollbridge_http_requests_total", "counter", "HTTP responses sent by the proxy, by release and status class.");
    const byRelease = new Map<string, number[]>();
    for (const [key, counts] of this.responses) {
      const id = key === null ? "none" : (this.releaseIds.get(key) ?? key);
      const sum = byRelease.get(id) ?? [0, 0, 0, 0, 0];
      counts.forEach((n, i) => (sum[i] = (sum[i] ?? 0) + n));
      byRelease.set(id, sum);
    }
    for (const [id, counts] of byRelease) counts.forEach((n, i) => out.sample("rollbridge_http_requests_total", { release: id, class: CLASSES[i] ?? "5xx" }, n));

    const connections = new Map<string, { inflight: number; websockets: number }>();
    for (const r of snapshot.releases) {
      const c = connections.get(r.id) ?? { inflight: 0, websockets: 0 };
      c.inflight += r.connections.inflight;
      c.websockets += r.connections.websockets;
      connections.set(r.id, c);
    }
    out.family("rollbridge_http_requests_in_flight", "gauge", "HTTP requests being forwarded now, by release.");
    for (const [id, c] of connections) out.sample("rollbridge_http_requests_in_flight", { release: id }, c.inflight);
    out.family("rollbridge_websockets_open", "gauge", "Open proxied WebSocket connections, by release.");
    for (const [id, c] of connections) out.sample("rollbridge_websockets_open", { release: id }, c.websockets);

    out.family("rollbridge_release_info", "gauge", "1 for every retained release, labelled with its state.", "max");
    for (const r of snapshot.releases) out.sample("rollbridge_release_info", { release: r.id, state: r.state }, 1);

    out.family("rollbridge_deploys_total", "counter", "Rollouts by result: succeeded (traffic switched), failed, superseded.");
    for (const result of ["succeeded", "failed", "superseded"] as const) out.sample("rollbridge_deploys_total", { result }, this.deploys[result]);

    out.family("rollbridge_rollbacks_total", "counter", "Releases rolled back after the switch: over their error budget in a canary step or bake window, or by rollbridge abort.");
    out.sample("rollbridge_rollbacks_total", {}, this.rollbacks);

    out.family("rollbridge_deploy_duration_seconds", "histogram", "Time from rollout start to the traffic switch.");
    DURATION_BUCKETS.forEach((le, i) => out.sample("rollbridge_deploy_duration_seconds_bucket", { le: String(le) }, this.durationCounts[i] ?? 0));
    out.sample("rollbridge_deploy_duration_seconds_bucket", { le: "+Inf" }, this.durationCount);
    out.sample("rollbridge_deploy_duration_seconds_sum", {}, this.durationSum);
    out.sample("rollbridge_deploy_duration_seconds_count", {}, this.durationCount);

    out.family("rollbridge_process_restarts_total", "counter", "Process restarts by process id and reason (crash, memory, manual, requested).");
    for (const r of this.restarts.values()) out.sample("rollbridge_process_restarts_total", { process: r.process, reason: r.reason }, r.count);

    out.family("rollbridge_process_resident_memory_bytes", "gauge", "Last sampled RSS of a managed process group (processes with memory supervision).");
    for (const p of snapshot.processes) {
      if (typeof p.rssBytes === "number") out.sample("rollbridge_process_resident_memory_bytes", { process: p.id, instance: p.instanceId, release: p.releaseId }, p.rssBytes);
    }

    out.family("rollbridge_reconcile_passes_total", "counter", "Reconcile passes run.");
    out.sample("rollbridge_reconcile_passes_total", {}, snapshot.reconcile.passes);
    out.family("rollbridge_reconcile_errors_total", "counter", "Reconcile passes that failed with an error.");
    out.sample("rollbridge_reconcile_errors_total", {}, snapshot.reconcile.errors);
    return out.text();
  }
}

/**
 * Builds exposition text: HELP/TYPE once per family, escaped label values, and each (name,
 * label set) exactly once. Two retained releases may share an id (or two ids may escape to the
 * same text), and a repeated series is invalid exposition that Prometheus rejects whole: a
 * repeat is folded into the first sample (added, or the larger kept for info gauges).
 */
class Exposition {
  private readonly lines: string[] = [];
  /** Index in `lines` of each sample written so far, by name + rendered label set. */
  private readonly written = new Map<string, number>();
  private readonly values: number[] = [];
  private merge: Merge = "sum";

  family(name: string, type: "counter" | "gauge" | "histogram", help: string, merge: Merge = "sum"): void {
    this.merge = merge;
    this.lines.push(`# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`, `# TYPE ${name} ${type}`);
  }

  sample(name: string, labels: Record<string, string>, value: number): void {
    // Label order does not make a series distinct: the identity uses the sorted names.
    const entries = Object.entries(labels).map(([k, v]): [string, string] => [k, escapeLabel(v)]);
    const text = entries.length ? `{${entries.map(([k, v]) => `${k}="${v}"`).join(",")}}` : "";
    const identity = `${name}\u0000${[...entries]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`)
      .join("\u0000")}`;
    const seen = this.written.get(identity);
    if (seen !== undefined) {
      const previous = this.values[seen] ?? 0;
      const merged = this.merge === "max" ? Math.max(previous, value) : previous + value;
      this.values[seen] = merged;
      this.lines[seen] = `${name}${text} ${formatValue(merged)}`;
      return;
    }
    this.written.set(identity, this.lines.length);
    this.values[this.lines.length] = value;
    this.lines.push(`${name}${text} ${formatValue(value)}`);
  }

  text(): string {
    return this.lines.join("\n") + "\n";
  }
}

/** How a repeated series is folded: counts add up, an info gauge stays 1. */
type Merge = "sum" | "max";

/** The exposition's escapes (backslash, double quote, line feed); lone surrogates become U+FFFD as they would on the wire. */
function escapeLabel(value: string): string {
  return value.replace(LONE_SURROGATE, "\uFFFD").replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}
