// The words `apply --wait` uses for a release draining in the background.
import { describe, expect, it } from "vitest";
import { describeDrain } from "../../src/reconcile/rollout-progress.js";

const NOW = Date.parse("2026-12-01T12:00:00.000Z");
const at = (ms: number) => new Date(NOW + ms).toISOString();

describe("describeDrain", () => {
  it.each([
    { name: "one WebSocket, the deadline 30 s away", d: { releaseId: "v1", inflight: 0, websockets: 1, deadline: at(30_000) }, text: "v1: 1 WebSocket, up to 30 s" },
    { name: "rounds what is left up to whole seconds", d: { releaseId: "v1", inflight: 0, websockets: 1, deadline: at(29_100) }, text: "v1: 1 WebSocket, up to 30 s" },
    { name: "requests and WebSockets, plural", d: { releaseId: "v1", inflight: 2, websockets: 3, deadline: at(12_000) }, text: "v1: 2 requests and 3 WebSockets, up to 12 s" },
    { name: "one request", d: { releaseId: "v1", inflight: 1, websockets: 0, deadline: at(5_000) }, text: "v1: 1 request, up to 5 s" },
    { name: "a deadline already passed", d: { releaseId: "v1", inflight: 1, websockets: 0, deadline: at(-500) }, text: "v1: 1 request, up to 0 s" },
    { name: "nothing open any more: only its processes are stopping", d: { releaseId: "v1", inflight: 0, websockets: 0, deadline: at(30_000) }, text: "v1: no open connections, stopping its processes" },
    { name: "no deadline", d: { releaseId: "v1", inflight: 0, websockets: 1, deadline: null }, text: "v1: 1 WebSocket" },
  ])("$name", ({ d, text }) => {
    expect(describeDrain(d, NOW)).toBe(text);
  });
});
