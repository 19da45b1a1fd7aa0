// Which output lines `logs` shows: every retained line of the matching processes (a process
// id, a replica id, or all), merged into one list in time order, then those written since a
// time, then the last N. `logs --follow` starts with the same selection, then follows.
import { RollbridgeError } from "../errors.js";
import type { DaemonParts } from "./parts.js";
import type { InstanceOutputLine } from "../reconcile/slot-processes.js";
import type { LogQuery } from "../control/daemon-api.js";
import type { LogLine } from "../control/protocol.js";

/** The retained lines the query selects, oldest first. Throws UNKNOWN_PROCESS for an id nothing matches. */
export function retainedLines(daemon: DaemonParts, query: LogQuery): LogLine[] {
  const matches = (processId: string, instanceId: string) => query.process === null || processId === query.process || instanceId === query.process;
  let found = false;
  const lines: LogLine[] = [];
  for (const [key, slots] of daemon.executor.runtime.instances) {
    const rec = daemon.executor.runtime.recordFor(key);
    if (!rec) continue;
    for (const inst of slots.values()) {
      if (!matches(inst.processId, inst.instanceId)) continue;
      found = true;
      for (const l of daemon.executor.outputOf(inst)) {
        if (query.since !== null && l.at < query.since) continue;
        lines.push(wireLine({ ...l, instanceId: inst.instanceId, processId: inst.processId, releaseId: rec.spec.id }));
      }
    }
  }
  if (query.process !== null && !found && !daemon.config.processes.some((p) => p.id === query.process)) {
    const known = [...new Set([...daemon.config.processes.map((p) => p.id), ...[...daemon.executor.runtime.instances.values()].flatMap((slots) => [...slots.values()].map((i) => i.instanceId))])];
    throw new RollbridgeError("UNKNOWN_PROCESS", `unknown process "${query.process}"`, { fix: `use one of: ${known.join(", ")}` });
  }
  // ISO times of one clock sort as the times do; the sort is stable, so one process keeps its order.
  lines.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  return query.lines === null ? lines : lines.slice(lines.length - Math.min(lines.length, query.lines));
}

/** A line as the control API sends it. */
export function wireLine(l: InstanceOutputLine): LogLine {
  return { at: new Date(l.at).toISOString(), instanceId: l.instanceId, processId: l.processId, releaseId: l.releaseId, pid: l.pid, stream: l.stream, line: l.line };
}

/** Every line written from now on by a process the query selects (`logs --follow`). */
export function followLines(daemon: DaemonParts, query: LogQuery, listener: (line: LogLine) => void): () => void {
  const filter = query.process;
  return daemon.executor.onOutput((line) => {
    if (!filter || line.processId === filter || line.instanceId === filter) listener(wireLine(line));
  });
}
