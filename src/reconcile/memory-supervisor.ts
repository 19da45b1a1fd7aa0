// Samples managed process groups from /proc, one scan per pass for all of them: every
// process's RSS and CPU time every USAGE_INTERVAL_MS (for `status` and /metrics), and each
// memory-supervised group on its checkIntervalMs: a warning event once past warnBytes, and
// past limitBytes a restart with reason "memory" (graceful: a proxied process is replaced
// new-before-old). The samples are this supervisor's own (status reads them through
// usageOf); a restart is an intent the next reconcile pass applies (runtime.ts), never a
// change of the runtime records from here.
import { sampleGroupsMemory, type GroupUsage } from "../process/memory.js";
import type { EventLog } from "./events.js";
import type { Executor } from "./execute.js";
import type { Instance, ProcessUsage } from "./instance.js";
import type { ManagedProcess } from "../process/managed-process.js";
import { releaseTag } from "./slot-processes.js";
import { processById } from "../config/process-by-id.js";

const TICK_MS = 250;
/** How often every process's usage is sampled: the window `status` averages CPU % over. */
export const USAGE_INTERVAL_MS = 2000;

/** The last sample of a slot: its process's usage and the members of its group. */
export interface SlotSample {
  usage: ProcessUsage;
  children: { pid: number; command: string; rssBytes: number }[];
}

export class MemorySupervisor {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private readonly lastSample = new WeakMap<Readonly<Instance>, number>();
  private readonly lastUsage = new WeakMap<Readonly<Instance>, number>();
  private readonly samples = new WeakMap<Readonly<Instance>, SlotSample>();
  /** The warnBytes warning is given once per OS process. */
  private readonly warned = new WeakSet<ManagedProcess>();
  /** Duration of the last sampling pass over every supervised process (for the bench). */
  lastPassMs = 0;

  constructor(
    private readonly executor: Executor,
    private readonly events: EventLog,
    private readonly now: () => number = Date.now,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), TICK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The slot's last sample (of its current process or an earlier one: the usage says which pid). */
  usageOf(inst: Readonly<Instance>): SlotSample | undefined {
    return this.samples.get(inst);
  }

  /** One pass: samples every process whose usage or memory-check interval has elapsed (all of them with `force`). */
  async tick(force = false): Promise<void> {
    if (this.running) return;
    this.running = true;
    const started = performance.now();
    try {
      const now = this.now();
      const due: { key: string; inst: Readonly<Instance>; pgid: number; supervised: boolean }[] = [];
      for (const [key, slots] of this.executor.runtime.instances) {
        for (const inst of slots.values()) {
          const spec = processById(this.executor.config, inst.processId);
          const pid = inst.proc?.pid;
          if (pid === undefined || inst.proc?.phase === "exited") continue;
          const supervised = spec?.memory !== undefined && !inst.stopRequested && (force || now - (this.lastSample.get(inst) ?? 0) >= spec.memory.checkIntervalMs);
          const usageDue = force || now - (this.lastUsage.get(inst) ?? 0) >= USAGE_INTERVAL_MS;
          if (!supervised && !usageDue) continue;
          if (supervised) this.lastSample.set(inst, now);
          this.lastUsage.set(inst, now);
          due.push({ key, inst, pgid: pid, supervised });
        }
      }
      if (due.length > 0) {
        const samples = await sampleGroupsMemory(due.map((d) => d.pgid));
        const at = performance.now();
        if (samples) {
          for (const { key, inst, pgid, supervised } of due) {
            const sample = samples.get(pgid);
            if (!sample || inst.proc?.pid !== pgid) continue; // the process moved on meanwhile
            this.samples.set(inst, next(this.samples.get(inst)?.usage, pgid, sample, at));
            if (supervised) this.check(key, inst, sample);
          }
        }
      }
    } finally {
      this.lastPassMs = performance.now() - started;
      this.running = false;
    }
  }

  private check(key: string, inst: Readonly<Instance>, sample: GroupUsage): void {
    const limits = processById(this.executor.config, inst.processId)?.memory;
    if (!limits) return;
    const releaseId = this.executor.runtime.recordFor(key)?.spec.id;
    const ref = releaseId === undefined ? { releaseKey: key } : { releaseKey: key, releaseId };
    const proc = inst.proc;
    if (limits.warnBytes > 0 && sample.rssBytes > limits.warnBytes && proc && !this.warned.has(proc)) {
      this.warned.add(proc);
      this.events.emit({
        level: "warn",
        type: "memory-warning",
        message: `${inst.instanceId} (${releaseTag(ref)}) uses ${mb(sample.rssBytes)} (warning at ${mb(limits.warnBytes)}, limit ${mb(limits.limitBytes)})`,
        ...ref,
        data: { instanceId: inst.instanceId, rssBytes: sample.rssBytes, warnBytes: limits.warnBytes },
      });
    }
    if (sample.rssBytes > limits.limitBytes && this.executor.runtime.restartAsked(key, inst.instanceId) === undefined) {
      this.events.emit({
        level: "warn",
        type: "memory-limit",
        message: `${inst.instanceId} (${releaseTag(ref)}) uses ${mb(sample.rssBytes)}, over its limit of ${mb(limits.limitBytes)}: restarting it`,
        ...ref,
        data: { instanceId: inst.instanceId, rssBytes: sample.rssBytes, limitBytes: limits.limitBytes },
      });
      // The pass that applies it counts it (memoryRestarts, lastMemoryRestartAt) and restarts the slot.
      this.executor.runtime.request({ type: "restart", targets: [{ key, instanceId: inst.instanceId }], reason: "memory", at: this.now() });
    }
  }
}

/** The slot's new sample, with the CPU % since the previous sample of the same process. */
function next(last: ProcessUsage | undefined, pid: number, sample: GroupUsage, at: number): SlotSample {
  const previous = last?.pid === pid ? last : undefined;
  const seconds = previous ? (at - previous.sampledAt) / 1000 : 0;
  // A member that exits unreaped by the group takes its CPU time along: never below zero.
  const cpuPercent = previous && seconds > 0 ? Math.round((Math.max(0, sample.cpuSeconds - previous.cpuSeconds) / seconds) * 1000) / 10 : null;
  return { usage: { pid, rssBytes: sample.rssBytes, cpuSeconds: sample.cpuSeconds, cpuPercent, sampledAt: at }, children: sample.children };
}

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
