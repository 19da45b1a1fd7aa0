// `restart`: which running instances a selection names, marked for the next pass to restart.
import type { RestartRequest, RestartResponse } from "../control/protocol.js";
import { RollbridgeError } from "../errors.js";
import type { Instance } from "../reconcile/instance.js";
import { SERVICES_KEY } from "../reconcile/types.js";
import type { DaemonParts } from "./parts.js";
import { processById } from "../config/process-by-id.js";

/**
 * Selects instances of the active release and the daemon-wide services (a process id, a
 * replica id, or a policy) and asks the executor to restart them. With no selection: all of
 * them, as `pm2 reload all` does — the proxied process replaced with zero downtime (after the
 * others have been started again), the others stopped and started.
 */
export function restart(daemon: DaemonParts, request: RestartRequest): RestartResponse {
  const processArg = request.process;
  const policyArg = request.policy;
  const activeKey = daemon.proxy.activeRelease();
  const active = activeKey ? daemon.executor.runtime.releases.get(activeKey) : undefined;
  if (!activeKey || !active) throw new RollbridgeError("UNKNOWN_RELEASE", "no active release: nothing to restart", { fix: "deploy a release first (rollbridge deploy --release-path P)" });
  const policyOf = (processId: string) => processById(daemon.config, processId)?.policy ?? "unknown";
  const live = (key: string) => [...(daemon.executor.runtime.instances.get(key)?.values() ?? [])].filter((i) => !i.stopRequested && !i.failed).map((inst) => ({ key, inst }));
  const candidates: { key: string; inst: Readonly<Instance> }[] = [...live(activeKey), ...live(SERVICES_KEY)];
  const slots = candidates.map((c) => c.inst);
  if (processArg !== undefined) {
    const known = new Set([...daemon.config.processes.map((p) => p.id), ...slots.map((s) => s.instanceId)]);
    if (!known.has(processArg)) throw new RollbridgeError("UNKNOWN_PROCESS", `unknown process "${processArg}"`, { fix: `use one of: ${[...known].join(", ")}` });
  }
  const selected = candidates.filter(({ inst: s }) => {
    if (processArg !== undefined && s.processId !== processArg && s.instanceId !== processArg) return false;
    if (policyArg !== undefined && policyOf(s.processId) !== policyArg) return false;
    return true;
  });
  if (selected.length === 0) {
    const what = processArg ? `process "${processArg}"` : policyArg ? `${policyArg} process` : "process";
    throw new RollbridgeError("UNKNOWN_PROCESS", `no running ${what} in release ${active.spec.id} to restart`, {
      fix: `running: ${slots.map((s) => `${s.instanceId} (${policyOf(s.processId)})`).join(", ") || "none"}; rollbridge restart with no flags restarts all of them`,
    });
  }
  // Live slots only (not stopping, not failed): the next pass marks each of them (runtime.ts).
  daemon.executor.runtime.request({ type: "restart", targets: selected.map(({ key, inst }) => ({ key, instanceId: inst.instanceId })), reason: "manual", at: Date.now() });
  const instances = selected.map(({ inst: s }) => ({
    instanceId: s.instanceId,
    processId: s.processId,
    policy: policyOf(s.processId),
    releaseId: daemon.executor.runtime.recordFor(s.releaseKey)?.spec.id ?? active.spec.id,
    pid: s.proc?.pid ?? null,
    zeroDowntime: policyOf(s.processId) === "proxied",
  }));
  daemon.events.emit({
    type: "restart-requested",
    message: `manual restart of ${instances.map((i) => i.instanceId).join(", ") || "nothing (already restarting)"}`,
    releaseKey: activeKey,
    releaseId: active.spec.id,
    data: { instances: instances.map((i) => i.instanceId), process: processArg ?? null, policy: policyArg ?? null },
  });
  return { releaseId: active.spec.id, instances };
}
