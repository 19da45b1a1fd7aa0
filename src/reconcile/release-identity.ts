// Release identity: a release *is* its generation (hash of its base id, resolved path,
// revision and env); its display id is what people type (`rollback --release-id`) and read
// (status, events, metrics, the state file). Two different releases must never share a
// display id, so the first release to use an id keeps it for as long as it is retained, and
// a later, different release that would get the same one (a second revision of one
// directory, an env change, an explicit `release.id` used twice) is numbered: `v1-2`, `v1-3`.
import path from "node:path";
import type { DesiredTarget, ReleaseRecord, ReleaseSpec } from "./types.js";

/** The id the desired state gives a release before numbering: `release.id`, else the basename of the resolved path. */
export function baseReleaseId(spec: ReleaseSpec): string {
  return spec.requestedId ?? path.basename(spec.path);
}

/**
 * The display id of `spec` among `records`: the id of its own record when it has one (ids
 * never change), else its base id, numbered `-2`, `-3`, … past the ids other records hold.
 */
export function releaseIdFor(spec: ReleaseSpec, records: Iterable<ReleaseRecord>): string {
  const taken = new Set<string>();
  for (const rec of records) {
    if (rec.key === spec.generation) return rec.spec.id;
    taken.add(rec.spec.id);
  }
  const base = baseReleaseId(spec);
  if (!taken.has(base)) return base;
  let n = 2;
  while (taken.has(`${base}-${n}`)) n += 1;
  return `${base}-${n}`;
}

/** The target with its release under the display id the daemon gives it (what status and apply show). */
export function namedTarget(target: DesiredTarget, records: Iterable<ReleaseRecord>): DesiredTarget;
export function namedTarget(target: DesiredTarget | null, records: Iterable<ReleaseRecord>): DesiredTarget | null;
export function namedTarget(target: DesiredTarget | null, records: Iterable<ReleaseRecord>): DesiredTarget | null {
  if (!target?.release) return target;
  const id = releaseIdFor(target.release, records);
  return id === target.release.id ? target : { ...target, release: { ...target.release, id } };
}

/** Why a release got a numbered id, for its rollout event; null when it has its base id. */
export function numberedBecause(spec: ReleaseSpec, records: Iterable<ReleaseRecord>): string | null {
  const base = baseReleaseId(spec);
  if (spec.id === base) return null;
  for (const rec of records) {
    if (rec.key !== spec.generation && rec.spec.id === base) {
      const differs = rec.spec.path !== spec.path ? `path ${rec.spec.path}` : rec.spec.revision !== spec.revision ? `revision ${rec.spec.revision ?? "none"}` : "a different env";
      return `${base} is already the id of another retained release (${differs})`;
    }
  }
  return `${base} is already taken`;
}
