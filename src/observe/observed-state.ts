// The observed state the planner reads: a read-only snapshot, built afresh each pass from the
// runtime's records (src/reconcile/runtime.ts: slots, their processes as recorded — phase, exit,
// spawn failure — and health) and the proxy (connections, outstanding requests per backend,
// judged responses, the routed release). A process that exited since the pass began still shows
// as it was recorded: the next pass records its exit. Nothing here changes the records or the
// proxy; the snapshot shares no mutable array with the slots.
import type { ProxyServer } from "../proxy/types.js";
import type { Instance } from "../reconcile/instance.js";
import type { Runtime } from "../reconcile/runtime.js";
import { SERVICES_KEY, type ObservedProcess, type ObservedState, type ObservedSuccessor } from "../reconcile/types.js";

/** What the snapshot reads from the proxy. */
export type ObservedProxy = Pick<ProxyServer, "activeRelease" | "connections" | "responses" | "backendOutstanding">;

/** Every release with its processes, connections and (while judged) responses; the services; the rollout intent; the abandoned rollouts. */
export function observeState(runtime: Runtime, proxy: ObservedProxy): ObservedState {
  const releases = [...runtime.releases.values()].map((record) => ({
    record,
    processes: [...(runtime.instances.get(record.key)?.values() ?? [])].map((inst) => observeInstance(runtime, inst, (port) => (port === undefined ? 0 : proxy.backendOutstanding(record.key, inst.instanceId, port)))),
    connections: proxy.connections(record.key),
    ...(record.rollout ? { responses: proxy.responses(record.key) ?? { total: 0, failed: 0 } } : {}),
  }));
  const services = [...(runtime.instances.get(SERVICES_KEY)?.values() ?? [])].map((inst) => observeInstance(runtime, inst));
  const intent = runtime.rolloutIntent;
  const abandoned = runtime.abandoned;
  return {
    releases,
    activeKey: proxy.activeRelease(),
    services,
    ...(intent ? { rolloutIntent: { ...intent } } : {}),
    ...(abandoned.size > 0 ? { abandoned: Object.fromEntries(abandoned) } : {}),
  };
}

/** One slot as the planner sees it: its current process, successor and retiring ones; `outstanding` counts a retiring one's requests. */
export function observeInstance(runtime: Runtime, inst: Readonly<Instance>, outstanding: (port: number | undefined) => number = () => 0): ObservedProcess {
  const proc = inst.proc;
  const seen = proc && runtime.processState(proc);
  const phase: ObservedProcess["phase"] = seen ? seen.phase : "absent";
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
    retiring: inst.retiring.filter((r) => r.proc.pid !== undefined).map((r) => ({ pid: r.proc.pid as number, phase: runtime.processState(r.proc).phase, outstanding: outstanding(r.port), since: r.since, stopRequested: r.stopRequested })),
  };
  if (inst.pendingRestart !== undefined) obs.pendingRestart = inst.pendingRestart;
  if (inst.startedFor !== undefined) obs.startedFor = inst.startedFor;
  const succ = inst.successor;
  if (succ) {
    const succSeen = succ.proc && runtime.processState(succ.proc);
    const succPhase: ObservedSuccessor["phase"] = succ.spawnError ? "exited" : succSeen ? succSeen.phase : "absent";
    obs.successor = { phase: succPhase, health: succ.healthState };
    if (succ.healthReason !== undefined) obs.successor.healthReason = succ.healthReason;
    if (succ.healthCode !== undefined) obs.successor.healthCode = succ.healthCode;
    const succSpawnError = succ.spawnError ?? succSeen?.spawnError;
    if (succSpawnError !== undefined) obs.successor.spawnError = succSpawnError;
  }
  if (proc?.pid !== undefined) obs.pid = proc.pid;
  if (inst.port !== undefined) obs.port = inst.port;
  if (inst.healthReason !== undefined) obs.healthReason = inst.healthReason;
  if (inst.healthCode !== undefined) obs.healthCode = inst.healthCode;
  const exit = seen?.exit ?? inst.lastExit;
  if (exit && (phase === "exited" || (phase === "absent" && inst.spawnError !== undefined))) obs.exit = exit;
  // A spawn failure recorded on the process (by the action that spawned it) before the next pass records it on the slot.
  const spawnError = inst.spawnError ?? seen?.spawnError;
  if (spawnError !== undefined) obs.spawnError = spawnError;
  if (inst.startedAt !== undefined) obs.startedAt = inst.startedAt;
  return obs;
}
