// Release identity: one display id per release. The first release to use an id keeps it; a
// different release that would share it is numbered; a known release keeps the id it has.
import { describe, expect, it } from "vitest";
import { baseReleaseId, namedTarget, numberedBecause, releaseIdFor } from "../../src/reconcile/release-identity.js";
import type { ReleaseRecord, ReleaseSpec } from "../../src/reconcile/types.js";

function spec(generation: string, patch: Partial<ReleaseSpec> = {}): ReleaseSpec {
  const path = patch.path ?? "/srv/app/releases/20261201233517";
  return { id: "20261201233517", requestedId: null, requestedRevision: null, path, requestedPath: path, revision: null, env: {}, generation, ...patch };
}

function record(s: ReleaseSpec): ReleaseRecord {
  return { key: s.generation, spec: s, state: "stopped", createdAt: 0, failedAttempts: 0 };
}

describe("release identity", () => {
  it.each<{ name: string; spec: ReleaseSpec; records: ReleaseRecord[]; id: string }>([
    { name: "a release nobody else has gets its base id", spec: spec("g1"), records: [], id: "20261201233517" },
    {
      name: "a second revision of one directory is numbered -2",
      spec: spec("g2", { revision: "r2" }),
      records: [record(spec("g1", { revision: "r1" }))],
      id: "20261201233517-2",
    },
    {
      name: "a third one takes the next free number",
      spec: spec("g3", { revision: "r3" }),
      records: [record(spec("g1")), record(spec("g2", { id: "20261201233517-2" }))],
      id: "20261201233517-3",
    },
    {
      name: "a known release keeps the id it was given, even when its base id is free again",
      spec: spec("g2"),
      records: [record(spec("g2", { id: "20261201233517-2" }))],
      id: "20261201233517-2",
    },
    {
      name: "an explicit release.id that another release holds is numbered like a derived one",
      spec: spec("g2", { id: "shop", requestedId: "shop", path: "/srv/b" }),
      records: [record(spec("g1", { id: "shop", requestedId: "shop", path: "/srv/a" }))],
      id: "shop-2",
    },
    {
      name: "a directory whose name is a numbered id is numbered past it",
      spec: spec("g3", { path: "/srv/app/releases/v1-2" }),
      records: [record(spec("g1", { id: "v1", path: "/srv/app/releases/v1" })), record(spec("g2", { id: "v1-2", path: "/srv/app/releases/v1" }))],
      id: "v1-2-2",
    },
  ])("$name", ({ spec: s, records, id }) => {
    expect(releaseIdFor(s, records)).toBe(id);
  });

  it("names a desired target by the id the daemon gives it, and says why it was numbered", () => {
    const first = record(spec("g1", { revision: "r1" }));
    const target = { stopped: false, replicas: {}, documentHash: "d", release: spec("g2", { revision: "r2" }) };
    const named = namedTarget(target, [first]);
    expect(named.release?.id).toBe("20261201233517-2");
    expect(baseReleaseId(named.release!)).toBe("20261201233517");
    expect(numberedBecause(named.release!, [first])).toBe("20261201233517 is already the id of another retained release (revision r1)");
    expect(numberedBecause(first.spec, [first])).toBeNull();
    expect(namedTarget(null, [first])).toBeNull();
  });
});
