// The last rollout's outcome (status --json `rollout`) across a sequence of passes: each row
// is a story of (desired, release records, plan.serving) per pass and the outcome after each.
import { describe, expect, it } from "vitest";
import { nextRollout, ROLLED_BACK_CODE, type RolloutSummary } from "../../src/reconcile/rollout-outcome.js";
import type { DesiredTarget, Plan, ReleaseRecord, ReleaseState } from "../../src/reconcile/types.js";
import { desired, keyOf, release, SECOND, T } from "./plan-fixtures.js";

interface Pass {
  desired: DesiredTarget | null;
  records: [string, ReleaseState, Partial<ReleaseRecord>?][];
  serving?: string;
}

function record(id: string, state: ReleaseState, patch: Partial<ReleaseRecord> = {}): ReleaseRecord {
  return release(id, state, [], { record: patch }).record;
}

function plan(serving: string | undefined): Plan {
  return { actions: [], conditions: [], converged: serving !== undefined, serving: serving === undefined ? null : keyOf(serving) };
}

/** Runs the passes in order, one second apart; returns `id outcome` after each. */
function story(passes: Pass[]): { lines: string[]; last: RolloutSummary | null } {
  let summary: RolloutSummary | null = null;
  const lines: string[] = [];
  passes.forEach((p, i) => {
    summary = nextRollout(summary, { target: p.desired, records: p.records.map(([id, state, patch]) => record(id, state, patch)), plan: plan(p.serving), now: T + i * SECOND });
    lines.push(summary ? `${summary.releaseId} ${summary.outcome}` : "none");
  });
  return { lines, last: summary };
}

const rolledBackNow = { failure: { reason: "rolled back: 37 of 120 responses failed (31%) within 4.2 s of the switch", code: ROLLED_BACK_CODE, at: T, noRetry: true } };
const rolledBack = { failure: { reason: "rolled back: 37 of 120 responses failed (31%) within 4.2 s of the switch", code: ROLLED_BACK_CODE, at: T } };
const timedOut = { failure: { reason: "rollout of v2 abandoned: not ready within 3000 ms (--timeout)", code: "TIMEOUT" as const, at: T } };

describe("the last rollout's outcome", () => {
  const rows: { name: string; passes: Pass[]; expected: string[] }[] = [
    {
      name: "nothing desired yet: no rollout",
      passes: [{ desired: null, records: [] }],
      expected: ["none"],
    },
    {
      name: "a first deploy is in progress until it serves",
      passes: [
        { desired: desired("v1"), records: [] },
        { desired: desired("v1"), records: [["v1", "starting"]] },
        { desired: desired("v1"), records: [["v1", "active"]] },
        { desired: desired("v1"), records: [["v1", "active"]], serving: "v1" },
      ],
      expected: ["v1 in-progress", "v1 in-progress", "v1 in-progress", "v1 serving"],
    },
    {
      name: "serving stays serving while the old release drains and after",
      passes: [
        {
          desired: desired("v2"),
          records: [
            ["v1", "draining"],
            ["v2", "active"],
          ],
          serving: "v2",
        },
        {
          desired: desired("v2"),
          records: [
            ["v1", "stopped"],
            ["v2", "active"],
          ],
        },
      ],
      expected: ["v2 serving", "v2 serving"],
    },
    {
      name: "a release that fails its health check is failed, the old one serving",
      passes: [
        { desired: desired("v1"), records: [["v1", "active"]], serving: "v1" },
        {
          desired: desired("v2"),
          records: [
            ["v1", "active"],
            ["v2", "starting"],
          ],
          serving: "v1",
        },
        {
          desired: desired("v2"),
          records: [
            ["v1", "active"],
            ["v2", "failed"],
          ],
        },
      ],
      expected: ["v1 serving", "v2 in-progress", "v2 failed"],
    },
    {
      name: "a failed desired release retried by backoff is in progress again, then serving",
      passes: [
        { desired: desired("v2"), records: [["v2", "failed"]] },
        { desired: desired("v2"), records: [["v2", "starting"]] },
        { desired: desired("v2"), records: [["v2", "active"]], serving: "v2" },
      ],
      expected: ["v2 failed", "v2 in-progress", "v2 serving"],
    },
    {
      name: "rolled back on its live traffic: the outcome stays rolled-back after the desired file goes back",
      passes: [
        {
          desired: desired("v2"),
          records: [
            ["v1", "active"],
            ["v2", "starting"],
          ],
        },
        {
          desired: desired("v2"),
          records: [
            ["v1", "active"],
            ["v2", "failed", rolledBack],
          ],
        },
        {
          desired: desired("v1"),
          records: [
            ["v1", "active"],
            ["v2", "failed", rolledBack],
          ],
          serving: "v1",
        },
      ],
      expected: ["v2 in-progress", "v2 rolled-back", "v2 rolled-back"],
    },
    {
      name: "rolled back, the release still draining when the desired file goes back: rolled-back, not superseded",
      passes: [
        {
          desired: desired("v2"),
          records: [
            ["v1", "active"],
            ["v2", "active"],
          ],
        },
        {
          desired: desired("v2"),
          records: [
            ["v1", "active"],
            ["v2", "draining", rolledBackNow],
          ],
        },
        {
          desired: desired("v1"),
          records: [
            ["v1", "active"],
            ["v2", "draining", rolledBackNow],
          ],
          serving: "v1",
        },
      ],
      expected: ["v2 in-progress", "v2 rolled-back", "v2 rolled-back"],
    },
    {
      name: "the daemon's revert in the same pass as the failure (a --timeout abandon) keeps the failure",
      passes: [
        {
          desired: desired("v2"),
          records: [
            ["v1", "active"],
            ["v2", "starting"],
          ],
        },
        {
          desired: desired("v1"),
          records: [
            ["v1", "active"],
            ["v2", "failed", timedOut],
          ],
          serving: "v1",
        },
      ],
      expected: ["v2 in-progress", "v2 failed"],
    },
    {
      name: "the desired file set back to the active release while the new one starts: superseded",
      passes: [
        {
          desired: desired("v2"),
          records: [
            ["v1", "active"],
            ["v2", "starting"],
          ],
        },
        {
          desired: desired("v1"),
          records: [
            ["v1", "active"],
            ["v2", "starting"],
          ],
          serving: "v1",
        },
      ],
      expected: ["v2 in-progress", "v2 superseded"],
    },
    {
      name: "stopped: true during a rollout supersedes it; after a decided one it keeps that outcome",
      passes: [
        {
          desired: desired("v2"),
          records: [
            ["v1", "active"],
            ["v2", "starting"],
          ],
        },
        {
          desired: desired(null, { stopped: true }),
          records: [
            ["v1", "draining"],
            ["v2", "starting"],
          ],
        },
      ],
      expected: ["v2 in-progress", "v2 superseded"],
    },
    {
      name: "a newer release while one is in progress is the last rollout",
      passes: [
        {
          desired: desired("v2"),
          records: [
            ["v1", "active"],
            ["v2", "starting"],
          ],
        },
        {
          desired: desired("v3"),
          records: [
            ["v1", "active"],
            ["v2", "starting"],
          ],
        },
        {
          desired: desired("v3"),
          records: [
            ["v1", "active"],
            ["v3", "active"],
          ],
          serving: "v3",
        },
      ],
      expected: ["v2 in-progress", "v3 in-progress", "v3 serving"],
    },
    {
      name: "rollback to a stopped release is a new rollout of it",
      passes: [
        {
          desired: desired("v2"),
          records: [
            ["v1", "stopped"],
            ["v2", "active"],
          ],
          serving: "v2",
        },
        {
          desired: desired("v1"),
          records: [
            ["v1", "starting"],
            ["v2", "active"],
          ],
        },
        {
          desired: desired("v1"),
          records: [
            ["v1", "active"],
            ["v2", "draining"],
          ],
          serving: "v1",
        },
      ],
      expected: ["v2 serving", "v1 in-progress", "v1 serving"],
    },
  ];

  for (const row of rows) {
    it(row.name, () => {
      expect(story(row.passes).lines).toEqual(row.expected);
    });
  }

  it("says why and when: the failure's reason, the start and decision times", () => {
    const { last } = story([
      {
        desired: desired("v2"),
        records: [
          ["v1", "active"],
          ["v2", "starting"],
        ],
      },
      {
        desired: desired("v2"),
        records: [
          ["v1", "active"],
          ["v2", "failed", rolledBack],
        ],
      },
    ]);
    expect(last).toEqual({
      releaseId: "v2",
      key: keyOf("v2"),
      outcome: "rolled-back",
      reason: rolledBack.failure.reason,
      startedAt: new Date(T).toISOString(),
      finishedAt: new Date(T + SECOND).toISOString(),
    });
  });

  it("a decided outcome keeps its decision time on later passes", () => {
    const { last } = story([
      { desired: desired("v1"), records: [["v1", "active"]], serving: "v1" },
      { desired: desired("v1"), records: [["v1", "active"]], serving: "v1" },
      { desired: desired("v1"), records: [["v1", "active"]] },
    ]);
    expect(last?.finishedAt).toBe(new Date(T).toISOString());
    expect(last?.reason).toBeNull();
  });
});
