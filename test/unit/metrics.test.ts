// The exposition never repeats a series, whatever ids the releases have: two retained releases
// with one id, ids with quotes, backslashes and newlines, an id that is the "none" of the
// no-release counter, lone surrogates. A repeated (name, label set) makes Prometheus reject
// the whole scrape.
import { describe, expect, it } from "vitest";
import { Metrics, type MetricsSnapshot } from "../../src/observe/metrics.js";
import { EventLog } from "../../src/reconcile/events.js";
import { parsePrometheus, repeatedSeries, sampleValue } from "../helpers/operations.js";

const conn = (inflight: number, websockets = 0) => ({ inflight, websockets });

function snapshot(releases: MetricsSnapshot["releases"], processes: MetricsSnapshot["processes"] = []): MetricsSnapshot {
  return { releases, processes, activeReleaseId: releases[0]?.id ?? null, reconcile: { passes: 3, errors: 0 } };
}

describe("metrics exposition", () => {
  it("folds two retained releases with the same id into one series each", () => {
    const events = new EventLog(100, null);
    const metrics = new Metrics(events);
    metrics.countResponse("key-a", 200);
    metrics.countResponse("key-b", 200);
    metrics.countResponse("key-b", 503);
    const text = metrics.render(
      snapshot(
        [
          { key: "key-a", id: "v1", state: "stopped", connections: conn(0) },
          { key: "key-b", id: "v1", state: "stopped", connections: conn(2, 1) },
          { key: "key-c", id: "v2", state: "active", connections: conn(1) },
        ],
        [
          { id: "web", instanceId: "web", releaseId: "v1", rssBytes: 1000 },
          { id: "web", instanceId: "web", releaseId: "v1", rssBytes: 500 },
          { id: "web", instanceId: "web", releaseId: "v2", rssBytes: 700 },
        ],
      ),
    );
    const { samples } = parsePrometheus(text);
    expect(repeatedSeries(samples)).toEqual([]);
    expect(sampleValue(samples, "rollbridge_http_requests_total", { release: "v1", class: "2xx" })).toBe(2);
    expect(sampleValue(samples, "rollbridge_http_requests_total", { release: "v1", class: "5xx" })).toBe(1);
    expect(sampleValue(samples, "rollbridge_http_requests_in_flight", { release: "v1" })).toBe(2);
    expect(sampleValue(samples, "rollbridge_websockets_open", { release: "v1" })).toBe(1);
    // An info gauge stays 1, it does not count releases.
    expect(sampleValue(samples, "rollbridge_release_info", { release: "v1", state: "stopped" })).toBe(1);
    expect(sampleValue(samples, "rollbridge_process_resident_memory_bytes", { process: "web", instance: "web", release: "v1" })).toBe(1500);
    metrics.close();
  });

  it("escapes quotes, backslashes and newlines in ids and still never repeats a series", () => {
    const events = new EventLog(100, null);
    const metrics = new Metrics(events);
    const ids = ['a"b', "a\\b", "a\nb", "a\\nb", "none", "x\uD800", "x\uDBFF", "ends\\"];
    ids.forEach((id, i) => metrics.countResponse(`k${i}`, 200));
    metrics.countResponse(null, 503);
    const text = metrics.render(
      snapshot(
        ids.map((id, i) => ({ key: `k${i}`, id, state: i === 0 ? "active" : "stopped", connections: conn(i) })),
        ids.map((id) => ({ id: "web", instanceId: "web", releaseId: id, rssBytes: 10 })),
      ),
    );
    // Every line is a comment or one well-formed sample (the parser is strict), no raw newline in a label.
    const { samples } = parsePrometheus(text);
    expect(repeatedSeries(samples)).toEqual([]);
    expect(sampleValue(samples, "rollbridge_http_requests_total", { release: 'a"b', class: "2xx" })).toBe(1);
    expect(sampleValue(samples, "rollbridge_http_requests_total", { release: "a\nb", class: "2xx" })).toBe(1);
    expect(sampleValue(samples, "rollbridge_http_requests_total", { release: "a\\nb", class: "2xx" })).toBe(1);
    // The no-release 503s and a release named "none" share the documented label: one series.
    expect(sampleValue(samples, "rollbridge_http_requests_total", { release: "none", class: "5xx" })).toBe(1);
    expect(sampleValue(samples, "rollbridge_http_requests_total", { release: "none", class: "2xx" })).toBe(1);
    // Two different lone surrogates are the same bytes on the wire (U+FFFD): folded, not repeated.
    expect(sampleValue(samples, "rollbridge_http_requests_total", { release: "x\uFFFD", class: "2xx" })).toBe(2);
    expect(text).toContain('release="a\\"b"');
    expect(text).toContain('release="ends\\\\"');
    metrics.close();
  });

  it("would notice a repeated series", () => {
    const { samples } = parsePrometheus('# HELP m x\n# TYPE m gauge\nm{a="1",b="2"} 1\nm{b="2",a="1"} 1\n');
    expect(repeatedSeries(samples)).toHaveLength(1);
  });
});
