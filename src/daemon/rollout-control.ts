// A rollout by hand: `promote` and `abort` a canary step or bake window (a typed intent the
// next reconcile pass reads; the planner decides), `pause` and `resume` new requests at the proxy.
import { RollbridgeError } from "../errors.js";
import type { ReleaseView } from "../reconcile/types.js";
import type { PauseResponse, RolloutIntentResponse } from "../control/protocol.js";
import type { DaemonParts } from "./parts.js";

/** Sets the intent for the judged rollout and waits for the pass that reads it. */
export async function rolloutIntent(daemon: DaemonParts, kind: "promote" | "abort"): Promise<RolloutIntentResponse> {
  const rec = await daemon.loop.exclusive(() => {
    const found = rolloutRelease(daemon);
    if (!found?.rollout) {
      throw new RollbridgeError("NO_ROLLOUT", `no rollout to ${kind}: no release is in a canary step or a bake window`, {
        fix: kind === "abort" ? "to go back to an earlier release after its rollout, use rollbridge rollback" : "nothing to do: the active release already serves all traffic",
      });
    }
    // The next pass (runOnce below) applies it; the planner carries it out.
    daemon.executor.runtime.request({ type: kind, key: found.key });
    daemon.events.emit({ level: kind === "abort" ? "warn" : "info", type: `rollout-${kind}-requested`, message: `${kind} of the rollout of ${found.spec.id} asked for`, releaseKey: found.key, releaseId: found.spec.id });
    return { rec: found, phase: found.rollout.phase, previousKey: found.rollout.previousKey };
  });
  await daemon.loop.runOnce();
  const after = daemon.executor.runtime.releases.get(rec.rec.key);
  const previousReleaseId = daemon.executor.runtime.releases.get(rec.previousKey)?.spec.id ?? null;
  const releaseId = rec.rec.spec.id;
  if (after?.failure?.noRetry) return { releaseId, previousReleaseId, phase: rec.phase, result: "rolled-back", message: `${releaseId} rolled back to ${previousReleaseId ?? "the previous release"}` };
  if (after && !after.rollout && after.state === "active")
    return { releaseId, previousReleaseId, phase: rec.phase, result: "promoted", message: `${releaseId} serves all new traffic${previousReleaseId ? `; ${previousReleaseId} drains` : ""}` };
  return { releaseId, previousReleaseId, phase: rec.phase, result: "pending", message: `${kind} of ${releaseId} asked for; the next reconcile pass carries it out` };
}

/** The release whose rollout is judged: the desired one first. */
function rolloutRelease(daemon: DaemonParts): ReleaseView | undefined {
  const desired = daemon.store.current().target?.release?.generation;
  const records = [...daemon.executor.runtime.releases.values()];
  return records.find((r) => r.rollout && r.key === desired) ?? records.find((r) => r.rollout);
}

/** `pause` (true) / `resume` (false) at the proxy. */
export function setPaused(daemon: DaemonParts, paused: boolean): PauseResponse {
  const unchanged = daemon.proxy.paused() === paused;
  daemon.proxy.setPaused(paused);
  if (!unchanged) {
    daemon.events.emit({
      level: paused ? "warn" : "info",
      type: paused ? "traffic-paused" : "traffic-resumed",
      message: paused ? `new requests are held (each up to ${daemon.config.proxy.holdTimeoutMs} ms, then 503) until rollbridge resume` : "new requests flow again; the held ones go first, in the order they came",
    });
  }
  return { paused, unchanged };
}
