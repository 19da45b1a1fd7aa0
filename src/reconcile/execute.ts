// The executor: owns release records and process slots, turns them into an ObservedState,
// and carries out the planner's actions. Every action is idempotent and none waits for a
// process or a drain: exits and health changes call `trigger` so the loop runs again.
import path from "node:path";
import type { Config, ProcessConfig } from "../config/schema.js";
import { errorMessage, isRollbridgeError } from "../errors.js";
import { HealthCheck } from "../observe/health.js";
import { ManagedProcess } from "../process/managed-process.js";
import { allocatePort } from "../process/ports.js";
import type { Backend, ProxyServer } from "../proxy/types.js";
import type { EventLog } from "./events.js";
import { observeInstance, renderProcess, type Instance } from "./instance.js";
import { instanceIdFor } from "./planner-config.js";
import type { Action, ObservedState, ReleaseRecord, ReleaseSpec, StartReason } from "./types.js";

export interface ExecutorOptions {
  config: Config;
  proxy: ProxyServer;
  events: EventLog;
  trigger: (reason: string) => void;
  daemonEnv?: Record<string, string | undefined>;
  now?: () => number;
}

export class Executor {
  config: Config;
  readonly releases = new Map<string, ReleaseRecord>();
  readonly instances = new Map<string, Map<string, Instance>>();
  private readonly proxy: ProxyServer;
  private readonly events: EventLog;
  private readonly trigger: (reason: string) => void;
  private readonly daemonEnv: Record<string, string | undefined>;
  private readonly now: () => number;
  private shuttingDown = false;

  constructor(options: ExecutorOptions) {
    this.config = options.config;
    this.proxy = options.proxy;
    this.events = options.events;
    this.trigger = options.trigger;
    this.daemonEnv = options.daemonEnv ?? process.env;
    this.now = options.now ?? Date.now;
  }

  observe(): ObservedState {
    const releases = [...this.releases.values()].map((record) => ({
      record,
      processes: [...(this.instances.get(record.key)?.values() ?? [])].map(observeInstance),
      connections: this.proxy.connections(record.key),
    }));
    return { releases, activeKey: this.proxy.activeRelease() };
  }

  async execute(actions: Action[]): Promise<void> {
    for (const action of actions) {
      if (this.shuttingDown) return;
      try {
        await this.apply(action);
      } catch (error) {
        this.events.emit({ level: "error", type: "action-failed", message: `${action.type} failed: ${errorMessage(error)}`, data: { action: action.type } });
      }
    }
    this.syncProxy();
  }

  private async apply(action: Action): Promise<void> {
    switch (action.type) {
      case "createRelease":
        return this.createRelease(action.spec);
      case "resumeRelease":
        return this.resumeRelease(action.key);
      case "startProcess":
        return this.startProcess(action.key, action.processId, action.replicaIndex, action.replicaCount, action.reason);
      case "stopProcess":
        return this.stopProcess(action.key, action.instanceId, action.reason);
      case "forgetProcess":
        this.instances.get(action.key)?.delete(action.instanceId);
        return;
      case "switchTraffic":
        return this.switchTraffic(action.key, action.previousKey);
      case "beginDrain":
        return this.beginDrain(action.key);
      case "closeConnections": {
        const rec = this.releases.get(action.key);
        const open = this.proxy.connections(action.key);
        this.events.emit({ level: "warn", type: "drain-timeout", message: `drain of ${rec?.spec.id ?? action.key} timed out; closing ${open.inflight} requests and ${open.websockets} WebSockets`, ...this.releaseRef(action.key), data: { ...open } });
        await this.proxy.closeRelease(action.key);
        return;
      }
      case "markStopped":
        return this.markStopped(action.key);
      case "markFailed":
        return this.markFailed(action.key, action.failure);
      case "markProcessFailed": {
        const inst = this.instances.get(action.key)?.get(action.instanceId);
        if (!inst || inst.failed) return;
        inst.failed = true;
        this.events.emit({ level: "error", type: "process-failed", message: `${action.instanceId} failed: ${action.reason}`, ...this.releaseRef(action.key), data: { instanceId: action.instanceId } });
        return;
      }
      case "pruneRelease":
        this.releases.delete(action.key);
        this.instances.delete(action.key);
        return;
      default: {
        const _exhaustive: never = action;
        return _exhaustive;
      }
    }
  }

  private createRelease(spec: ReleaseSpec): void {
    if (this.releases.has(spec.generation)) return;
    const now = this.now();
    this.releases.set(spec.generation, { key: spec.generation, spec, state: "starting", createdAt: now, startingAt: now, failedAttempts: 0 });
    this.instances.set(spec.generation, new Map());
    this.events.emit({ type: "rollout-started", message: `rolling out ${spec.id}`, releaseKey: spec.generation, releaseId: spec.id, data: { path: spec.path, revision: spec.revision } });
  }

  private resumeRelease(key: string): void {
    const rec = this.releases.get(key);
    if (!rec || rec.state === "starting" || rec.state === "active") return;
    const from = rec.state;
    rec.state = "starting";
    rec.startingAt = this.now();
    delete rec.drainDeadline;
    delete rec.drainStartedAt;
    delete rec.stoppedAt;
    // Slots whose process is gone are started afresh; live ones (a draining release) are kept.
    const slots = this.instances.get(key) ?? new Map<string, Instance>();
    for (const [id, inst] of slots) {
      const gone = !inst.proc || inst.proc.phase === "exited" || inst.proc.spawnError;
      if (gone || inst.failed) slots.delete(id);
    }
    this.instances.set(key, slots);
    this.events.emit({ type: "rollout-started", message: `rolling out ${rec.spec.id} (was ${from})`, releaseKey: key, releaseId: rec.spec.id, data: { path: rec.spec.path, from } });
  }

  private async startProcess(key: string, processId: string, replicaIndex: number, replicaCount: number, reason: StartReason): Promise<void> {
    const rec = this.releases.get(key);
    const proc = this.config.processes.find((p) => p.id === processId);
    if (!rec || !proc) return;
    const slots = this.instances.get(key) ?? new Map<string, Instance>();
    this.instances.set(key, slots);
    let inst = [...slots.values()].find((i) => i.processId === processId && i.replicaIndex === replicaIndex && !i.stopRequested);
    if (inst?.proc && inst.proc.phase !== "exited" && !inst.proc.spawnError) return; // already running
    if (!inst) {
      inst = {
        instanceId: instanceIdFor(processId, replicaIndex, replicaCount),
        processId,
        replicaIndex,
        replicaCount,
        releaseKey: key,
        healthState: "none",
        stopRequested: false,
        restarts: 0,
        restartTimes: [],
        failed: false,
        lastStartReason: reason,
        previousOutput: [],
      };
      slots.set(inst.instanceId, inst);
    } else if (inst.proc) {
      inst.previousOutput = [...inst.previousOutput, ...inst.proc.output().map((l) => l.line)].slice(-proc.outputLines);
      inst.lastExit = inst.proc.exitInfo;
    }
    if (reason === "crash" || reason === "memory") {
      inst.restarts += 1;
      inst.restartTimes = [...inst.restartTimes, this.now()].slice(-100);
    }
    inst.replicaCount = replicaCount;
    inst.lastStartReason = reason;
    inst.healthState = "none";
    delete inst.healthReason;
    delete inst.readyAt;
    delete inst.spawnError;
    inst.health?.cancel();
    delete inst.health;
    delete inst.proc;

    try {
      if (proc.port && inst.port === undefined) {
        inst.port = await allocatePort(this.config.proxy.upstreamHost, proc.port, this.portsInUse());
      }
      const rendered = renderProcess({
        config: this.config,
        proc,
        release: rec.spec,
        instanceId: inst.instanceId,
        replicaIndex,
        replicaCount,
        port: inst.port,
        ports: this.portsOf(key),
        daemonEnv: this.daemonEnv,
      });
      const cwd = path.resolve(rec.spec.path, rendered.cwd);
      const managed = new ManagedProcess({
        instanceId: inst.instanceId,
        command: rendered.command,
        cwd,
        env: rendered.env,
        outputLines: proc.outputLines,
        stopSignal: proc.stopSignal as NodeJS.Signals,
        gracefulStopMs: proc.gracefulStopMs,
        ipc: proc.health !== false && proc.health.ipc,
      });
      inst.proc = managed;
      inst.startedAt = this.now();
      const slot = inst;
      managed.onExit((exit) => this.onExit(rec, slot, managed, exit));
      managed.start();
      if (managed.spawnError) throw managed.spawnError;
      this.events.emit({ type: "process-started", message: `started ${inst.instanceId} (pid ${managed.pid ?? "?"}${inst.port ? `, port ${inst.port}` : ""}, reason ${reason})`, ...this.releaseRef(key), data: { instanceId: inst.instanceId, pid: managed.pid, port: inst.port, reason } });
      this.startReadiness(rec, proc, slot, managed);
    } catch (error) {
      inst.spawnError = errorMessage(error);
      // A failed attempt counts as an exit at this moment, so restart backoff measures from it.
      inst.lastExit = { code: null, signal: null, at: this.now(), requested: false };
      const code = isRollbridgeError(error) ? error.code : "SPAWN_FAILED";
      this.events.emit({ level: "error", type: "process-start-failed", message: `could not start ${inst.instanceId}: ${inst.spawnError}`, ...this.releaseRef(key), data: { instanceId: inst.instanceId, code } });
    }
  }

  /**
   * Companions are ready once spawned; the proxied process once its gate passes: an HTTP
   * 2xx on health.path and/or an IPC "online"/"ready" message when health.ipc is set.
   */
  private startReadiness(rec: ReleaseRecord, proc: ProcessConfig, inst: Instance, managed: ManagedProcess): void {
    const gated = proc.policy === "proxied";
    const health = proc.health;
    if (!gated || health === false || inst.port === undefined || (!health.path && !health.ipc)) {
      managed.markRunning();
      inst.healthState = gated ? "ready" : "none";
      if (gated) inst.readyAt = this.now();
      return;
    }
    inst.healthState = "pending";
    let httpReady = !health.path;
    let ipcReady = !health.ipc;
    const current = () => inst.proc === managed && inst.healthState === "pending";
    const becomeReady = (answeredAt: number) => {
      if (!current() || !httpReady || !ipcReady) return;
      managed.markRunning();
      inst.healthState = "ready";
      // Switch latency is measured from the moment the app answered, not when we noticed.
      inst.readyAt = Math.min(answeredAt, this.now());
      const startedAt = inst.startedAt ?? inst.readyAt;
      this.events.emit({ type: "process-healthy", message: `${inst.instanceId} healthy in ${inst.readyAt - startedAt} ms`, ...this.releaseRef(rec.key), data: { instanceId: inst.instanceId, ms: inst.readyAt - startedAt } });
      this.syncProxy();
      this.trigger("health");
    };
    if (health.ipc) {
      const timer = setTimeout(() => {
        if (!current() || ipcReady) return;
        inst.healthState = "failed";
        inst.healthReason = `${inst.instanceId} did not send "online" or "ready" over IPC within ${health.timeoutMs} ms`;
        this.events.emit({ level: "error", type: "health-failed", message: inst.healthReason, ...this.releaseRef(rec.key), data: { instanceId: inst.instanceId } });
        this.trigger("health");
      }, health.startDelayMs + health.timeoutMs);
      timer.unref();
      managed.onExit(() => clearTimeout(timer));
      managed.onMessage((message) => {
        if (message === "online" || message === "ready") {
          ipcReady = true;
          clearTimeout(timer);
          becomeReady(this.now());
        }
      });
    }
    if (health.path) {
      const check = new HealthCheck({ host: this.config.proxy.upstreamHost, port: inst.port, path: health.path, intervalMs: health.intervalMs, timeoutMs: health.timeoutMs, startDelayMs: health.startDelayMs });
      inst.health = check;
      check.onChange(() => {
        if (inst.health !== check || !current()) return;
        if (check.state === "ready") {
          httpReady = true;
          becomeReady(check.readyAt ?? this.now());
        } else if (check.state === "failed") {
          inst.healthState = "failed";
          inst.healthReason = check.reason ?? "health check failed";
          this.events.emit({ level: "error", type: "health-failed", message: `${inst.instanceId}: ${inst.healthReason}`, ...this.releaseRef(rec.key), data: { instanceId: inst.instanceId } });
          this.trigger("health");
        }
      });
      check.start();
    }
  }

  private onExit(rec: ReleaseRecord, inst: Instance, managed: ManagedProcess, exit: { code: number | null; signal: string | null; requested: boolean }): void {
    if (inst.proc !== managed) return;
    inst.health?.cancel();
    const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
    const crashed = !exit.requested && !inst.stopRequested;
    this.events.emit({
      level: crashed ? "warn" : "info",
      type: crashed ? "process-crashed" : "process-exited",
      message: `${inst.instanceId} ${crashed ? "crashed" : "exited"} (${how})`,
      ...this.releaseRef(rec.key),
      data: { instanceId: inst.instanceId, pid: managed.pid, code: exit.code, signal: exit.signal },
    });
    // Out of rotation at once, before the next pass.
    this.syncProxy();
    if (!this.shuttingDown) this.trigger("process-exit");
  }

  private async stopProcess(key: string, instanceId: string, reason: string): Promise<void> {
    const inst = this.instances.get(key)?.get(instanceId);
    if (!inst) return;
    // A restart-on-unhealthy is a crash as far as the restart policy is concerned.
    const restart = reason.startsWith("restart:");
    if (!restart) inst.stopRequested = true;
    inst.health?.cancel();
    const managed = inst.proc;
    if (!managed || managed.phase === "exited") return;
    if (managed.phase === "stopping") return;
    this.events.emit({ type: "process-stopping", message: `stopping ${instanceId} (${reason})`, ...this.releaseRef(key), data: { instanceId, pid: managed.pid, reason } });
    this.syncProxy();
    void managed.stop();
  }

  private switchTraffic(key: string | null, previousKey: string | null): void {
    const now = this.now();
    if (key) {
      const rec = this.releases.get(key);
      if (!rec) return;
      this.syncProxy();
      this.proxy.setActive(key);
      const wasActive = rec.state === "active";
      rec.state = "active";
      rec.activatedAt = now;
      rec.failedAttempts = 0;
      delete rec.failure;
      if (wasActive) return;
      const readyTimes = [...(this.instances.get(key)?.values() ?? [])].map((i) => i.readyAt).filter((t): t is number => t !== undefined);
      const readyAt = readyTimes.length ? Math.max(...readyTimes) : now;
      const previous = previousKey ? this.releases.get(previousKey) : undefined;
      this.events.emit({
        type: "traffic-switched",
        message: `traffic switched to ${rec.spec.id}${previous ? ` from ${previous.spec.id}` : ""}`,
        releaseKey: key,
        releaseId: rec.spec.id,
        data: { previousReleaseId: previous?.spec.id ?? null, switchLatencyMs: now - readyAt, rolloutMs: now - (rec.startingAt ?? now) },
      });
    } else {
      this.proxy.setActive(null);
      const previous = previousKey ? this.releases.get(previousKey) : undefined;
      this.events.emit({ type: "traffic-stopped", message: `no active release${previous ? ` (was ${previous.spec.id})` : ""}; new requests get 503` });
    }
  }

  private beginDrain(key: string): void {
    const rec = this.releases.get(key);
    if (!rec || rec.state === "draining" || rec.state === "stopped") return;
    const now = this.now();
    rec.state = "draining";
    rec.drainStartedAt = now;
    rec.drainDeadline = now + this.config.proxy.drainTimeoutMs;
    const open = this.proxy.connections(key);
    this.events.emit({ type: "drain-started", message: `draining ${rec.spec.id} with ${open.inflight + open.websockets} connections`, releaseKey: key, releaseId: rec.spec.id, data: { ...open, deadline: new Date(rec.drainDeadline).toISOString() } });
  }

  private async markStopped(key: string): Promise<void> {
    const rec = this.releases.get(key);
    if (!rec || rec.state === "stopped") return;
    const drainMs = rec.drainStartedAt ? this.now() - rec.drainStartedAt : undefined;
    const from = rec.state;
    rec.state = "stopped";
    rec.stoppedAt = this.now();
    await this.proxy.closeRelease(key);
    this.events.emit({ type: "release-stopped", message: `${rec.spec.id} stopped${from === "starting" ? " (superseded)" : ""}`, releaseKey: key, releaseId: rec.spec.id, data: { from, drainMs } });
  }

  private markFailed(key: string, failure: { reason: string; code: string; instanceId?: string }): void {
    const rec = this.releases.get(key);
    if (!rec || rec.state === "failed") return;
    const inst = failure.instanceId ? this.instances.get(key)?.get(failure.instanceId) : undefined;
    const output = inst ? [...inst.previousOutput, ...(inst.proc?.output().map((l) => l.line) ?? [])].slice(-20) : [];
    rec.state = "failed";
    rec.failedAttempts += 1;
    rec.failure = { ...failure, output, at: this.now() };
    this.events.emit({ level: "error", type: "rollout-failed", message: `rollout of ${rec.spec.id} failed: ${failure.reason}`, releaseKey: key, releaseId: rec.spec.id, data: { ...failure, output, attempts: rec.failedAttempts } });
  }

  /** Pushes every release's backends (proxied instances with a port) and readiness to the proxy. */
  syncProxy(): void {
    for (const [key, slots] of this.instances) {
      const backends: Backend[] = [];
      for (const inst of slots.values()) {
        const proc = this.config.processes.find((p) => p.id === inst.processId);
        if (proc?.policy !== "proxied" || inst.port === undefined) continue;
        const phase = inst.proc?.phase;
        const ready = inst.healthState === "ready" && !inst.stopRequested && (phase === "running" || phase === "starting");
        backends.push({ id: inst.instanceId, host: this.config.proxy.upstreamHost, port: inst.port, ready });
      }
      this.proxy.setBackends(key, backends);
    }
  }

  /** Stops every process (used on shutdown) and resolves when all have exited. */
  async stopEverything(): Promise<void> {
    this.shuttingDown = true;
    const stops: Promise<unknown>[] = [];
    for (const slots of this.instances.values()) {
      for (const inst of slots.values()) {
        inst.stopRequested = true;
        inst.health?.cancel();
        if (inst.proc && inst.proc.phase !== "exited") stops.push(inst.proc.stop());
      }
    }
    await Promise.allSettled(stops);
  }

  outputOf(inst: Instance): string[] {
    const proc = this.config.processes.find((p) => p.id === inst.processId);
    return [...inst.previousOutput, ...(inst.proc?.output().map((l) => l.line) ?? [])].slice(-(proc?.outputLines ?? 50));
  }

  private portsInUse(): Set<number> {
    const ports = new Set<number>();
    for (const slots of this.instances.values()) for (const inst of slots.values()) {
        // A crashed slot keeps its port for its restart; a stopped one gives it back.
        if (inst.port !== undefined && (!inst.stopRequested || inst.proc?.phase !== "exited")) ports.add(inst.port);
      }
    return ports;
  }

  private portsOf(key: string): Record<string, number> {
    const ports: Record<string, number> = {};
    for (const inst of this.instances.get(key)?.values() ?? []) {
      if (inst.port !== undefined && !(inst.processId in ports)) ports[inst.processId] = inst.port;
    }
    return ports;
  }

  private releaseRef(key: string): { releaseKey: string; releaseId?: string } {
    const id = this.releases.get(key)?.spec.id;
    return id === undefined ? { releaseKey: key } : { releaseKey: key, releaseId: id };
  }
}
