// What the daemon would do to reach a desired state from what runs now, in the words an
// operator expects from `diff` (the plan itself is only the next step; this is the journey).
import type { PlannerConfig } from "./planner-config.js";
import { replicaCount } from "./plan.js";
import type { DesiredTarget, ObservedState } from "./types.js";
import type { Change } from "../control/protocol.js";

export function describeChanges(config: PlannerConfig, target: DesiredTarget, observed: ObservedState): Change[] {
  const changes: Change[] = [];
  const active = observed.releases.find((r) => r.record.key === observed.activeKey);
  const activeId = active?.record.spec.id;
  if (target.stopped) {
    if (active) {
      changes.push({ type: "switch", message: `switch traffic away from ${activeId} (new requests get 503)` });
      changes.push({ type: "drain", message: `drain ${activeId}, then stop its processes` });
    }
    return changes;
  }
  const release = target.release;
  if (!release) return changes;
  const perRelease = config.processes.filter((p) => p.policy !== "service");
  if (active?.record.key === release.generation) {
    for (const proc of perRelease) {
      const want = replicaCount(config, target, proc);
      const have = active.processes.filter((p) => p.processId === proc.id && !p.stopRequested).length;
      if (want !== have) changes.push({ type: "scale", message: `scale ${proc.id} in ${activeId}: ${have} → ${want}` });
    }
    return changes;
  }
  const existing = observed.releases.find((r) => r.record.key === release.generation);
  if (existing?.record.state === "starting") {
    changes.push({ type: "in-progress", message: `rollout of ${release.id} is already in progress` });
    return changes;
  }
  if (existing) changes.push({ type: "resume-release", message: `bring back ${release.id} (${existing.record.state}) from ${release.path}` });
  else changes.push({ type: "start-release", message: `start release ${release.id} from ${release.path}${release.revision ? ` (revision ${release.revision})` : ""}` });
  for (const proc of perRelease) {
    if (proc.policy === "singleton") continue;
    const n = replicaCount(config, target, proc);
    changes.push({ type: "start-release", message: `start ${proc.id}${n > 1 ? ` ×${n}` : ""} (${proc.policy})${proc.gated ? ", wait until healthy" : ""}` });
  }
  changes.push({ type: "switch", message: `switch traffic ${activeId ? `${activeId} → ` : "to "}${release.id}` });
  for (const proc of perRelease.filter((p) => p.policy === "singleton")) changes.push({ type: "start-release", message: `move singleton ${proc.id} to ${release.id}` });
  if (active) changes.push({ type: "drain", message: `drain ${activeId} (up to ${config.drainTimeoutMs} ms), then stop its processes` });
  return changes;
}
