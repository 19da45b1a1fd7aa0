// The observed state the planner reads: a read-only snapshot, built afresh each pass from the
// runtime's records (src/reconcile/runtime.ts: slots, their processes and health) and the
// proxy (connections, outstanding requests per backend, judged responses, the routed release).
// Nothing here changes either of them; the snapshot shares no mutable array with the slots.
import { errorMessage } from "../errors.js";
import type { ProxyServer } from "../proxy/types.js";
import type { Instance } from "../reconcile/instance.js";
import type { Runtime } from "../reconcile/runtime.js";
import { SERVICES_KEY, type ObservedProcess, type ObservedState, type ObservedSuccessor } from "../reconcile/types.js";

/** What the snapshot reads from the proxy. */
export type ObservedProxy = Pick<ProxyServer, "activeRelease" | "connections" | "responses" | "backendOutstanding">;

/** Every release with its processes, connections and (while judged) responses; the services; the rollout intent. */
export function observeState(runtime: Runtime, proxy: ObservedProxy): ObservedState {
  const releases = [...runtime.releases.values()].map((record) => ({
    record,
    processes: [...(runtime.instances.get(record.key)?.values() ?? [])].map((inst) => observeInstance(inst, (port) => (port === undefined ? 0 : proxy.backendOutstanding(record.key, inst.instanceId, port)))),
    connections: proxy.connections(record.key),
    ...(record.rollout ? { responses: proxy.responses(record.key) ?? { total: 0, failed: 0 } } : {}),
  }));
  const services = [...(runtime.instances.get(SERVICES_KEY)?.values() ?? [])].map((inst) => observeInstance(inst));
  const intent = runtime.rolloutIntent;
  return { releases, activeKey: proxy.activeRelease(), services, ...(intent ? { rolloutIntent: { ...intent } } : {}) };
}

/** One slot as the planner sees it: its current process, successor and retiring ones; `outstanding` counts a retiring one's requests. */
export function observeInstance(inst: Readonly<Instance>, outstanding: (port: number | undefined) => number = () => 0): ObservedProcess {
  const proc = inst.proc;
  let phase: ObservedProcess["phase"] = "absent";
  if (proc) phase = proc.spawnError ? "exited" : proc.phase;
  const obs: ObservedProcess = {
    instanceId: inst.instanceId,
    processId: inst.processId,
    replicaIndex: inst.replicaIndex,
    releaseKey: inst.releaseKey,
    phase,
    health: inst.healthState,
    stopRequested: inst.stopRequested,
    restarts: inst.restarts,
    restartTimes: [...inst.restartTimes],
    failed: inst.failed,
    lastStartReason: inst.lastStartReason,
    retiring: inst.retiring.filter((r) => r.proc.pid !== undefined).map((r) => ({ pid: r.proc.pid as number, phase: r.proc.phase, outstanding: outstanding(r.port), since: r.since, stopRequested: r.stopRequested })),
  };
  if (inst.pendingRestart !== undefined) obs.pendingRestart = inst.pendingRestart;
  if (inst.startedFor !== undefined) obs.startedFor = inst.startedFor;
  const succ = inst.successor;
  if (succ) {
    const succPhase: ObservedSuccessor["phase"] = succ.spawnError || succ.proc?.spawnError ? "exited" : succ.proc ? succ.proc.phase : "absent";
    obs.successor = { phase: succPhase, health: succ.healthState };
    if (succ.healthReason !== undefined) obs.successor.healthReason = succ.healthReason;
    if (succ.healthCode !== undefined) obs.successor.healthCode = succ.healthCode;
    const succSpawnError = succ.spawnError ?? (succ.proc?.spawnError ? errorMessage(succ.proc.spawnError) : undefined);
    if (succSpawnError !== undefined) obs.successor.spawnError = succSpawnError;
  }
  if (proc?.pid !== undefined) obs.pid = proc.pid;
  if (inst.port !== undefined) obs.port = inst.port;
  if (inst.healthReason !== undefined) obs.healthReason = inst.healthReason;
  if (inst.healthCode !== undefined) obs.healthCode = inst.healthCode;
  const exit = proc?.exitInfo ?? inst.lastExit;
  if (exit && (phase === "exited" || (phase === "absent" && inst.spawnError !== undefined))) obs.exit = exit;
  // A spawn failure is known to the process a moment before its exit is reported to the slot.
  const spawnError = inst.spawnError ?? (proc?.spawnError ? errorMessage(proc.spawnError) : undefined);
  if (spawnError !== undefined) obs.spawnError = spawnError;
  if (inst.startedAt !== undefined) obs.startedAt = inst.startedAt;
  return obs;
}
