// Abandoning a rollout that did not become ready in time (`apply --wait --timeout`): an
// `abandon` intent the next pass reads (the planner marks the release failed and stops what it
// started), and the desired file goes back to what was serving, so the file stays the source of
// truth. Both happen between passes; the pass that carries them out runs before this returns.
import type { DesiredDocument } from "../config/desired-schema.js";
import { errorMessage } from "../errors.js";
import type { DaemonParts } from "./parts.js";
import { applyDesired } from "./apply-desired.js";
import { documentFor, repointLink } from "./release-document.js";

/** Returns what was done, or null when there was nothing to abort (already live, superseded). */
export async function abortRollout(daemon: DaemonParts, generation: string, reason: string): Promise<string | null> {
  const message = await daemon.loop.exclusive(async () => {
    const runtime = daemon.executor.runtime;
    const rec = runtime.releases.get(generation);
    const desired = daemon.store.current();
    if (!rec || rec.state !== "starting" || desired.target?.release?.generation !== generation) return null;
    const activeKey = daemon.proxy.activeRelease();
    const active = activeKey ? runtime.releases.get(activeKey) : undefined;
    // Queued first: should the desired file not go back below, the release still ends failed.
    runtime.request({ type: "abandon", key: generation, reason });
    const current: DesiredDocument = desired.document ?? {};
    let next: DesiredDocument;
    let text: string;
    if (active) {
      // Back to what serves; a `current` symlink the desired file follows is re-pointed too.
      const back = await documentFor(daemon, active);
      let linkNote = "";
      next = back.document;
      if (back.link) {
        try {
          await repointLink(back.link);
          linkNote = ` (${back.link.path} points at it again)`;
        } catch (error) {
          // The abandon must not fail half-way: name the release directly instead.
          next = back.direct;
          linkNote = ` (${errorMessage(error)}; the desired file now names ${active.spec.path} directly)`;
        }
      }
      text = `rollout of ${rec.spec.id} abandoned (${reason}); the desired state is back to ${active.spec.id}, which kept serving${linkNote}`;
    } else {
      next = { ...current, stopped: true };
      text = `rollout of ${rec.spec.id} abandoned (${reason}); nothing was serving, the desired state is now stopped`;
    }
    if (Object.keys(next.env ?? {}).length === 0) delete next.env;
    daemon.events.emit({ level: "warn", type: "rollout-aborted", message: text, releaseKey: generation, releaseId: rec.spec.id });
    await applyDesired(daemon, next);
    return text;
  });
  // The pass that marks it failed (and adopts the desired file written above): status and the
  // caller's answer say so from here on.
  if (message !== null) await daemon.loop.runOnce();
  return message;
}
