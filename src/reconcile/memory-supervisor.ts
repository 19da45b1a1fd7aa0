// Samples each memory-supervised process group's RSS from /proc on its checkIntervalMs: a
// warning event once past warnBytes, and past limitBytes a restart with reason "memory"
// (graceful: a proxied process is replaced new-before-old).
import { sampleGroupsMemory, type GroupMemory } from "../process/memory.js";
import type { EventLog } from "./events.js";
import type { Executor } from "./execute.js";
import type { Instance } from "./instance.js";

const TICK_MS = 250;

export class MemorySupervisor {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private readonly lastSample = new WeakMap<Instance, number>();
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

  /** One pass: samples every supervised process whose interval has elapsed. */
  async tick(force = false): Promise<void> {
    if (this.running) return;
    this.running = true;
    const started = performance.now();
    try {
      const now = this.now();
      const due: { key: string; inst: Instance; pgid: number }[] = [];
      for (const [key, slots] of this.executor.instances) {
        for (const inst of slots.values()) {
          const spec = this.executor.config.processes.find((p) => p.id === inst.processId);
          const pid = inst.proc?.pid;
          if (!spec?.memory || pid === undefined || inst.proc?.phase === "exited" || inst.stopRequested) continue;
          if (!force && now - (this.lastSample.get(inst) ?? 0) < spec.memory.checkIntervalMs) continue;
          this.lastSample.set(inst, now);
          due.push({ key, inst, pgid: pid });
        }
      }
      if (due.length > 0) {
        const samples = await sampleGroupsMemory(due.map((d) => d.pgid));
        if (samples) for (const { key, inst, pgid } of due) this.check(key, inst, pgid, samples.get(pgid));
      }
    } finally {
      this.lastPassMs = performance.now() - started;
      this.running = false;
    }
  }

  private check(key: string, inst: Instance, pgid: number, sample: GroupMemory | undefined): void {
    if (!sample || inst.proc?.pid !== pgid) return; // the process moved on meanwhile
    inst.rssBytes = sample.rssBytes;
    inst.children = sample.children;
    const limits = this.executor.config.processes.find((p) => p.id === inst.processId)?.memory;
    if (!limits) return;
    const releaseId = this.executor.recordFor(key)?.spec.id;
    const ref = releaseId === undefined ? { releaseKey: key } : { releaseKey: key, releaseId };
    if (limits.warnBytes > 0 && sample.rssBytes > limits.warnBytes && !inst.memoryWarned) {
      inst.memoryWarned = true;
      this.events.emit({ level: "warn", type: "memory-warning", message: `${inst.instanceId} uses ${mb(sample.rssBytes)} (warning at ${mb(limits.warnBytes)}, limit ${mb(limits.limitBytes)})`, ...ref, data: { instanceId: inst.instanceId, rssBytes: sample.rssBytes, warnBytes: limits.warnBytes } });
    }
    if (sample.rssBytes > limits.limitBytes && !inst.pendingRestart) {
      inst.memoryRestarts += 1;
      inst.lastMemoryRestartAt = this.now();
      this.events.emit({ level: "warn", type: "memory-limit", message: `${inst.instanceId} uses ${mb(sample.rssBytes)}, over its limit of ${mb(limits.limitBytes)}: restarting it`, ...ref, data: { instanceId: inst.instanceId, rssBytes: sample.rssBytes, limitBytes: limits.limitBytes } });
      this.executor.requestRestart([{ key, instanceId: inst.instanceId }], "memory");
    }
  }
}

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
