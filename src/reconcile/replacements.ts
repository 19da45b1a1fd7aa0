// Replacing a slot's process new-before-old (a manual, memory or self-requested restart of
// a proxied process): a successor starts on a new port and takes traffic once ready; the
// old process retires, finishes its requests and is stopped.
import type { Config } from "../config/schema.js";
import { errorMessage } from "../errors.js";
import { allocatePort } from "../process/ports.js";
import type { EventLog } from "./events.js";
import { retainOutput, type Instance, type Retiring, type Successor } from "./instance.js";
import { releaseTag, type SlotProcesses } from "./slot-processes.js";
import type { ReleaseRecord } from "./types.js";
import { processById } from "../config/process-by-id.js";

/** What replacements need from the executor. */
export interface ReplacementDeps {
  config: () => Config;
  events: EventLog;
  now: () => number;
  instances: Map<string, Map<string, Instance>>;
  recordFor: (key: string) => ReleaseRecord | undefined;
  portsInUse: () => Set<number>;
  syncProxy: () => void;
  releaseRef: (key: string) => { releaseKey: string; releaseId?: string };
}

/** Successors and retiring processes of slots. */
export class Replacements {
  constructor(
    private readonly deps: ReplacementDeps,
    private readonly slots: SlotProcesses,
  ) {}

  async startSuccessor(key: string, instanceId: string): Promise<void> {
    const rec = this.deps.recordFor(key);
    const inst = this.deps.instances.get(key)?.get(instanceId);
    const proc = inst && processById(this.deps.config(), inst.processId);
    if (!rec || !inst || !proc || inst.successor) return;
    const succ: Successor = { healthState: "none" };
    inst.successor = succ;
    try {
      if (proc.port) succ.port = await allocatePort(this.deps.config().proxy.upstreamHost, proc.port, this.deps.portsInUse());
      await this.slots.start(
        key,
        rec,
        proc,
        inst,
        succ,
        succ.port,
        (managed) =>
          this.deps.events.emit({
            type: "process-started",
            message: `started a replacement for ${inst.instanceId} (${releaseTag(this.deps.releaseRef(key))}, pid ${managed.pid ?? "?"}${succ.port ? `, port ${succ.port}` : ""}, reason ${inst.pendingRestart ?? "manual"})`,
            ...this.deps.releaseRef(key),
            data: { instanceId, pid: managed.pid, port: succ.port, reason: inst.pendingRestart ?? "manual", replacement: true },
          }),
        () => inst.successor === succ,
      );
    } catch (error) {
      succ.spawnError = errorMessage(error);
      this.deps.events.emit({
        level: "error",
        type: "process-start-failed",
        message: `could not start a replacement for ${inst.instanceId} (${releaseTag(this.deps.releaseRef(key))}): ${succ.spawnError}`,
        ...this.deps.releaseRef(key),
        data: { instanceId },
      });
    }
  }

  /** The successor takes the slot (and traffic); the old process retires. */
  promoteSuccessor(key: string, instanceId: string): void {
    const inst = this.deps.instances.get(key)?.get(instanceId);
    const succ = inst?.successor;
    const proc = inst && processById(this.deps.config(), inst.processId);
    if (!inst || !succ?.proc || succ.healthState !== "ready" || !proc) return;
    const old = inst.proc;
    if (old && old.phase !== "exited") inst.retiring.push({ proc: old, ...(inst.port === undefined ? {} : { port: inst.port }), since: this.deps.now(), stopRequested: false });
    // A process that already exited leaves the slot here; a retiring one keeps its lines
    // (and the ones it writes while draining) until it is forgotten.
    if (old && old.phase === "exited") retainOutput(inst, old, proc.outputLines);
    inst.health?.cancel();
    inst.proc = succ.proc;
    if (succ.port !== undefined) inst.port = succ.port;
    inst.health = succ.health;
    inst.healthState = "ready";
    if (succ.readyAt !== undefined) inst.readyAt = succ.readyAt;
    if (succ.startedAt !== undefined) inst.startedAt = succ.startedAt;
    inst.lastStartReason = inst.pendingRestart ?? "manual";
    delete inst.pendingRestart;
    delete inst.successor;
    this.deps.syncProxy();
    this.deps.events.emit({
      type: "process-replaced",
      message: `${instanceId} (${releaseTag(this.deps.releaseRef(key))}) replaced: pid ${succ.proc.pid} takes traffic, pid ${old?.pid ?? "?"} finishes its requests`,
      ...this.deps.releaseRef(key),
      data: { instanceId, pid: succ.proc.pid, previousPid: old?.pid, reason: inst.lastStartReason },
    });
  }

  abandonSuccessor(key: string, inst: Instance, reason: string): void {
    const succ = inst.successor;
    if (!succ) return;
    delete inst.successor;
    if (!inst.stopRequested) delete inst.pendingRestart;
    // Why the replacement failed is in its output: keep it for `logs`.
    retainOutput(inst, succ.proc, processById(this.deps.config(), inst.processId)?.outputLines ?? 50);
    succ.health?.cancel();
    if (succ.proc && succ.proc.phase !== "exited") void this.slots.gracefulStop(key, inst, succ.proc);
    if (!inst.stopRequested)
      this.deps.events.emit({
        level: "warn",
        type: "replacement-failed",
        message: `replacement of ${inst.instanceId} (${releaseTag(this.deps.releaseRef(key))}) abandoned: ${reason}; the running process stays`,
        ...this.deps.releaseRef(key),
        data: { instanceId: inst.instanceId },
      });
  }

  stopRetiring(key: string, inst: Instance, r: Retiring, reason: string): void {
    if (r.stopRequested) return;
    r.stopRequested = true;
    if (r.proc.phase === "exited") return;
    this.deps.events.emit({
      type: "process-stopping",
      message: `stopping ${inst.instanceId} (${releaseTag(this.deps.releaseRef(key))}, pid ${r.proc.pid}, ${reason})`,
      ...this.deps.releaseRef(key),
      data: { instanceId: inst.instanceId, pid: r.proc.pid, reason },
    });
    this.deps.syncProxy();
    void this.slots.gracefulStop(key, inst, r.proc);
  }
}
