// After an automatic rollback (or `rollbridge abort`): the desired file goes back to the release
// that serves again, so the loop does not roll the bad one out once more and the file stays the
// source of truth. A `current` symlink the file follows is re-pointed, as `rollback` does.
import type { DesiredDocument } from "../config/desired-schema.js";
import { errorMessage } from "../errors.js";
import type { DaemonParts } from "./parts.js";
import { applyDesired } from "./apply-desired.js";
import { documentFor, repointLink } from "./release-document.js";

/** Runs between passes; does nothing when the desired file already names something else. */
export async function restoreDesiredAfterRollback(daemon: DaemonParts, fromKey: string, toKey: string): Promise<void> {
  await daemon.loop.exclusive(async () => {
    const from = daemon.executor.runtime.releases.get(fromKey);
    const to = daemon.executor.runtime.releases.get(toKey);
    const desired = daemon.store.current();
    if (!from || !to || desired.target?.release?.generation !== fromKey) return;
    const back = await documentFor(daemon, to);
    let next: DesiredDocument = back.document;
    let note = "";
    if (back.link) {
      try {
        await repointLink(back.link);
        note = ` (${back.link.path} points at it again)`;
      } catch (error) {
        next = back.direct;
        note = ` (${errorMessage(error)}; the desired file now names ${to.spec.path} directly)`;
      }
    }
    // The rollout settings were for the deploy that was rolled back.
    delete next.rollout;
    if (Object.keys(next.env ?? {}).length === 0) delete next.env;
    try {
      await applyDesired(daemon, next);
      daemon.events.emit({ level: "warn", type: "desired-restored", message: `the desired state is back to ${to.spec.id} after ${from.spec.id} was rolled back${note}`, releaseKey: toKey, releaseId: to.spec.id });
    } catch (error) {
      // The rolled-back release is not retried either way (its failure says so); say why the file still names it.
      daemon.events.emit({
        level: "error",
        type: "desired-restore-failed",
        message: `could not set the desired state back to ${to.spec.id}: ${errorMessage(error)}; ${from.spec.id} stays rolled back`,
        releaseKey: toKey,
        releaseId: to.spec.id,
      });
    }
  });
}
