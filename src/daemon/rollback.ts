// `rollback`: which retained release to go back to, and going there through the desired file.
import type { RollbackResponse } from "../control/protocol.js";
import { RollbridgeError } from "../errors.js";
import type { ReleaseRecord } from "../reconcile/types.js";
import { applyDesired } from "./apply-desired.js";
import type { DaemonParts } from "./parts.js";
import { documentFor, repointLink } from "./release-document.js";

function lastRetiredAt(rec: ReleaseRecord): number {
  return Math.max(rec.stoppedAt ?? 0, rec.drainStartedAt ?? 0, rec.activatedAt ?? 0);
}

/**
 * Picks the release to go back to: the named one, or else — while the desired release is not
 * the one serving (a rollout failing or still starting) — the serving one, or else the most
 * recently retired one. Going back from a failed deploy means keeping what serves, not
 * skipping past it.
 */
export function rollbackTarget(daemon: DaemonParts, releaseId: string | undefined): ReleaseRecord {
  const activeKey = daemon.proxy.activeRelease();
  const records = [...daemon.executor.runtime.releases.values()];
  const desired = daemon.store.current().target;
  const desiredKey = desired && !desired.stopped ? (desired.release?.generation ?? null) : null;
  const active = activeKey ? daemon.executor.runtime.releases.get(activeKey) : undefined;
  const abandoning = active !== undefined && desiredKey !== null && desiredKey !== activeKey;
  const retained = (): string =>
    records
      .filter((r) => r.key !== activeKey)
      .map((r) => `${r.spec.id} (${r.state})`)
      .join(", ") || "none";
  if (releaseId !== undefined) {
    const matches = records.filter((r) => r.spec.id === releaseId).sort((a, b) => b.createdAt - a.createdAt);
    if (matches.length === 0) {
      throw new RollbridgeError("UNKNOWN_RELEASE", `no retained release "${releaseId}"`, { fix: `roll back to one of the retained releases: ${retained()} (rollbridge status lists them)` });
    }
    if (abandoning && matches.some((r) => r.key === activeKey)) return active;
    const target = matches.find((r) => r.key !== activeKey) ?? matches[0]!;
    if (target.key === activeKey) throw new RollbridgeError("RELEASE_ALREADY_ACTIVE", `release ${releaseId} is already active`, { fix: `nothing to do; other retained releases: ${retained()}` });
    return target;
  }
  if (abandoning) return active;
  const retired = records.filter((r) => r.key !== activeKey && (r.state === "stopped" || r.state === "draining")).sort((a, b) => lastRetiredAt(b) - lastRetiredAt(a));
  const target = retired[0];
  if (!target) {
    throw new RollbridgeError("NO_PREVIOUS_RELEASE", "no previous release to roll back to", {
      fix: `deploy at least twice first, or name a release with --release-id (retained: ${retained()})`,
    });
  }
  return target;
}

/** Goes back to a retained release: its desired document is applied (a followed symlink re-pointed first). */
export async function rollback(daemon: DaemonParts, releaseId: string | undefined): Promise<RollbackResponse> {
  const target = rollbackTarget(daemon, releaseId);
  const activeKey = daemon.proxy.activeRelease();
  const from = activeKey ? (daemon.executor.runtime.releases.get(activeKey)?.spec.id ?? null) : null;
  const spec = target.spec;
  // The same generation (path, id, revision, env), so the daemon resumes that record. With a
  // `current` symlink in the desired file, the link is re-pointed and the file keeps it.
  const { document, direct, link } = await documentFor(daemon, target);
  // Everything is checked (the directory still exists, replicas) before the link is touched.
  await applyDesired(daemon, direct, { dryRun: true });
  if (link) await repointLink(link);
  const applied = await applyDesired(daemon, document);
  daemon.events.emit({
    type: "rollback-requested",
    message: `rolling back to ${spec.id}${from ? ` from ${from}` : ""} (it was ${target.state})${link ? `; ${link.path} now points at ${link.target}` : ""}`,
    releaseKey: target.key,
    releaseId: spec.id,
    data: { fromReleaseId: from, toState: target.state, link: link ? { path: link.path, target: link.target } : null },
  });
  return { ...applied, fromReleaseId: from, toReleaseId: spec.id, toState: target.state, link };
}
