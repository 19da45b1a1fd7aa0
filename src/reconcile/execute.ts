// The executor: the one writer of the runtime records (runtime.ts), it turns them into an
// ObservedState and carries out the planner's actions on them. Every action is idempotent and
// none waits for a process or a drain: a process's exit or readiness result is queued as an
// observation that the next pass records when it begins (beginPass), and wakes the loop. Others
// read the records through `executor.runtime` and ask for changes with intents.
import type { Config, ProcessConfig } from "../config/schema.js";
import type { ManagedProcess } from "../process/managed-process.js";
import type { AdoptedProcess, Adoption } from "./adoption.js";
import { errorMessage, isRollbridgeError, type ErrorCode } from "../errors.js";
import { allocatePort } from "../process/ports.js";
import type { Backend, ProxyServer } from "../proxy/types.js";
import type { EventLog } from "./events.js";
import { newInstance, retainOutput, slotOutput, type Instance } from "./instance.js";
import { observeState } from "../observe/observed-state.js";
import type { OutputLine } from "../process/types.js";
import { Replacements } from "./replacements.js";
import { ActionFailures } from "./failure-policy.js";
import type { FailingActionStatus } from "../control/protocol.js";
import { portForRestart } from "./restart-port.js";
import { SlotProcesses, releaseTag, type InstanceOutputLine } from "./slot-processes.js";
import { instanceIdFor } from "./planner-config.js";
import { baseReleaseId, numberedBecause, releaseIdFor } from "./release-identity.js";
import { SERVICES_KEY, type Action, type ObservedState, type ReleaseFailure, type ReleaseRecord, type ReleaseSpec, type StartReason, type StopKind } from "./types.js";
import { Runtime, type RuntimeRecords } from "./runtime.js";
import { processById } from "../config/process-by-id.js";

export interface ExecutorOptions {
  config: Config;
  proxy: ProxyServer;
  events: EventLog;
  trigger: (reason: string) => void;
  daemonEnv?: Record<string, string | undefined>;
  now?: () => number;
  /** The private directory for the output FIFOs (they outlive the daemon); undefined: pipes. */
  outputDir?: () => string | undefined;
  /** A release was rolled back on its live traffic: the desired file should name `toKey` again. */
  onRolledBack?: (fromKey: string, toKey: string) => void;
}

export class Executor {
  private currentConfig: Config;
  /** The records, read-only, and the intent queue (runtime.ts): what everything outside a pass reads and asks through. */
  readonly runtime: Runtime;
  /** The same records, writable: changed only by this executor's actions and the intents a pass applies. */
  private readonly records: RuntimeRecords;
  private readonly slots: SlotProcesses;
  private readonly failures = new ActionFailures();
  private readonly replacements: Replacements;
  private readonly proxy: ProxyServer;
  private readonly events: EventLog;
  private readonly trigger: (reason: string) => void;
  private readonly daemonEnv: Record<string, string | undefined>;
  private readonly now: () => number;
  private shuttingDown = false;
  private readonly outputDir: () => string | undefined;
  private readonly onRolledBack: ((fromKey: string, toKey: string) => void) | undefined;

  constructor(options: ExecutorOptions) {
    this.currentConfig = options.config;
    this.proxy = options.proxy;
    this.events = options.events;
    this.trigger = options.trigger;
    this.daemonEnv = options.daemonEnv ?? process.env;
    this.now = options.now ?? Date.now;
    this.outputDir = options.outputDir ?? (() => undefined);
    this.onRolledBack = options.onRolledBack;
    const { runtime, records } = Runtime.create(this.trigger);
    this.runtime = runtime;
    this.records = records;
    const releaseRef = (key: string) => this.releaseRef(key);
    const syncProxy = () => this.syncProxy();
    this.slots = new SlotProcesses({
      config: () => this.config,
      events: this.events,
      trigger: this.trigger,
      now: this.now,
      daemonEnv: this.daemonEnv,
      portsOf: (key) => this.portsOf(key),
      syncProxy,
      releaseRef,
      shuttingDown: () => this.shuttingDown,
      outputDir: this.outputDir,
      runtime,
      records,
    });
    this.replacements = new Replacements(
      { config: () => this.config, events: this.events, now: this.now, instances: this.instances, recordFor: (key) => this.recordFor(key), portsInUse: () => this.portsInUse(), syncProxy, releaseRef },
      this.slots,
    );
  }

  private get releases(): Map<string, ReleaseRecord> {
    return this.records.releases;
  }

  private get instances(): Map<string, Map<string, Instance>> {
    return this.records.instances;
  }

  /**
   * Records what happened to the processes since the last pass (exits, readiness results), then
   * applies the intents queued meanwhile (restarts, apply again, promote / abort): the
   * loop calls this when a pass begins, before it observes. A process recorded ready goes into
   * the proxy's rotation here.
   */
  beginPass(): void {
    const observed = this.records.applyObservations();
    this.records.applyIntents();
    if (observed > 0) this.syncProxy();
  }

  /**
   * Releases restored from the state file as history (stopped or failed, no slots), before the
   * first pass; a key already known is kept. Each gets a display id no other release has.
   */
  restoreRelease(record: ReleaseRecord): void {
    if (this.releases.has(record.key)) return;
    if ([...this.releases.values()].some((other) => other.spec.id === record.spec.id)) record.spec.id = releaseIdFor(record.spec, this.releases.values());
    this.records.addRelease(record);
  }

  /**
   * Seeds the records with what an earlier daemon left running (adoption.ts verified it), before
   * the first pass: its releases in their recorded states, each adopted process in its slot (a
   * replacement or a replaced process as a retiring one, so the planner drains and stops it),
   * health checks started, traffic routed to the active release once its processes answer.
   * Returns each adopted process with its verified identity (the state file records them).
   */
  adopt(adoption: Adoption): { managed: ManagedProcess; adopted: AdoptedProcess }[] {
    const now = this.now();
    if (adoption.servicesSpec) this.records.serviceRecord = { key: SERVICES_KEY, spec: adoption.servicesSpec, state: "active", createdAt: now, activatedAt: now, failedAttempts: 0 };
    for (const record of adoption.releases) this.records.addRelease(record);
    const placed: { inst: Instance; adopted: AdoptedProcess }[] = [];
    for (const adopted of adoption.processes) {
      const rec = this.recordFor(adopted.releaseKey);
      if (!rec || !this.config.processes.some((p) => p.id === adopted.processId)) continue;
      const slots = this.records.slotsFor(adopted.releaseKey);
      let inst = slots.get(adopted.instanceId);
      if (!inst) {
        inst = newInstance(adopted.instanceId, adopted.processId, adopted.replicaIndex, adopted.replicaCount, adopted.releaseKey, adopted.lastStartReason);
        inst.restarts = adopted.restarts;
        slots.set(inst.instanceId, inst);
      }
      // Ports first: every process renders with its siblings' ports ({{ports.<id>}}).
      if (adopted.role === "current") inst.port = adopted.port;
      placed.push({ inst, adopted });
    }
    const taken: { managed: ManagedProcess; adopted: AdoptedProcess }[] = [];
    for (const { inst, adopted } of placed) {
      const rec = this.recordFor(adopted.releaseKey) as ReleaseRecord;
      const proc = processById(this.config, adopted.processId) as ProcessConfig;
      const managed = this.slots.adopt(rec, proc, inst, adopted.port, adopted.identity);
      taken.push({ managed, adopted });
      if (adopted.role === "current" && !inst.proc) {
        inst.proc = managed;
        inst.startedAt = adopted.identity.startedAt;
        // No IPC channel survives the daemon: readiness is the HTTP check and the listener's owner.
        const gate: ProcessConfig = proc.health === false ? proc : { ...proc, health: { ...proc.health, ipc: false } };
        this.slots.watchReadiness(rec, gate, inst, inst, managed, inst.port, () => inst.proc === managed);
      } else {
        inst.retiring.push({ proc: managed, ...(adopted.port === undefined ? {} : { port: adopted.port }), since: now, stopRequested: false });
      }
      this.events.emit({
        type: "process-adopted",
        message: `adopted ${inst.instanceId} (${this.tag(adopted.releaseKey)}, pid ${adopted.identity.pid}${adopted.port === undefined ? "" : `, port ${adopted.port}`}${adopted.role === "current" ? "" : `, ${adopted.role === "successor" ? "an unfinished replacement: it is drained and stopped" : "replaced: it is drained and stopped"}`}) from the daemon that died`,
        ...this.releaseRef(adopted.releaseKey),
        data: { instanceId: inst.instanceId, pid: adopted.identity.pid, port: adopted.port, role: adopted.role },
      });
    }
    if (adoption.activeKey !== null && this.releases.has(adoption.activeKey)) this.proxy.setActive(adoption.activeKey);
    this.syncProxy();
    for (const record of adoption.releases) if (record.rollout?.phase === "bake") this.resumeBake(record);
    return taken;
  }

  /**
   * An adopted bake window goes on: the proxy counts the release's responses again (from an
   * empty window: the earlier daemon's counts died with it); the planner judges the time left.
   */
  private resumeBake(rec: ReleaseRecord): void {
    const progress = rec.rollout;
    if (!progress?.judge) return;
    this.proxy.judge(rec.key, progress.judge);
    const previous = this.releases.get(progress.previousKey);
    this.events.emit({
      type: "bake-resumed",
      message: `the bake window of ${rec.spec.id} resumes after the daemon restart (switched ${new Date(progress.phaseStartedAt).toISOString()}); ${previous?.spec.id ?? "the previous release"} stays ready to take traffic back; responses are counted afresh`,
      releaseKey: rec.key,
      releaseId: rec.spec.id,
      data: { previousReleaseId: previous?.spec.id ?? null, switchedAt: new Date(progress.phaseStartedAt).toISOString() },
    });
  }

  /** The config the actions run with; a reloaded one gives failed actions (terminal ones too) a fresh start. */
  get config(): Config {
    return this.currentConfig;
  }

  set config(next: Config) {
    this.currentConfig = next;
    this.failures.clear();
  }

  /** Every output line of every process started from now on (for `logs --follow`). */
  onOutput(listener: (line: InstanceOutputLine) => void): () => void {
    return this.slots.onOutput(listener);
  }

  /** The read-only snapshot the planner reads (src/observe/observed-state.ts). */
  observe(): ObservedState {
    return observeState(this.runtime, this.proxy);
  }

  /**
   * Carries out the plan's actions in order, each under the failure policy (failure-policy.ts):
   * one that threw earlier waits out its backoff (or, terminal, is not run again) while the
   * others go on. Returns how many actions ran; skipped ones do not make the loop look again at
   * once, it requeues for the earliest retry instead (nextRetryAt).
   */
  async execute(actions: Action[]): Promise<number> {
    this.failures.retain(actions);
    let ran = 0;
    for (const action of actions) {
      if (this.shuttingDown) return ran;
      if (!this.failures.mayRun(action, this.now())) continue;
      ran++;
      try {
        await this.apply(action);
        this.failures.succeeded(action);
      } catch (error) {
        const failure = this.failures.failed(action, error, this.now());
        const next = failure.nextAttemptAt === null ? null : failure.nextAttemptAt - failure.lastFailedAt;
        const retry = next === null ? `${failure.code ?? "terminal"}: not retried until the desired state or config changes` : `retrying in ${next} ms (attempt ${failure.attempts})`;
        this.events.emit({
          level: "error",
          type: "action-failed",
          message: `${action.type} failed: ${failure.error}; ${retry}`,
          ...(failure.key === null ? {} : this.releaseRef(failure.key)),
          data: { action: action.type, code: failure.code, attempts: failure.attempts, terminal: failure.terminal, nextAttemptInMs: next },
        });
      }
    }
    // An intent for a release that is not in a canary step or bake window any more is spent.
    const intent = this.records.rolloutIntent;
    if (intent && !this.releases.get(intent.key)?.rollout) this.records.rolloutIntent = undefined;
    this.syncProxy();
    return ran;
  }

  /** When the earliest action that backs off may run again; undefined when none does. */
  nextRetryAt(): number | undefined {
    return this.failures.nextAttemptAt();
  }

  /** The failing actions, for status. */
  failingActions(now: number): FailingActionStatus[] {
    return this.failures.status(now);
  }

  /** A new desired state or config: failed actions (terminal ones too) get a fresh start. */
  forgetFailures(): void {
    this.failures.clear();
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
        return this.stopProcess(action.key, action.instanceId, action.kind, action.reason);
      case "forgetProcess":
        this.instances.get(action.key)?.delete(action.instanceId);
        return;
      case "startService":
        return this.startService(action.processId, action.spec, action.forKey);
      case "adoptServices":
        return this.adoptServices(action.key);
      case "startSuccessor":
        return this.replacements.startSuccessor(action.key, action.instanceId);
      case "promoteSuccessor":
        return this.replacements.promoteSuccessor(action.key, action.instanceId);
      case "abandonSuccessor": {
        const inst = this.instances.get(action.key)?.get(action.instanceId);
        if (inst) this.replacements.abandonSuccessor(action.key, inst, action.reason);
        return;
      }
      case "stopRetired": {
        const inst = this.instances.get(action.key)?.get(action.instanceId);
        const r = inst?.retiring.find((x) => x.proc.pid === action.pid);
        if (inst && r) this.replacements.stopRetiring(action.key, inst, r, action.reason);
        return;
      }
      case "forgetRetired": {
        const inst = this.instances.get(action.key)?.get(action.instanceId);
        if (inst) {
          const proc = processById(this.config, inst.processId);
          for (const r of inst.retiring) if (r.proc.pid === action.pid) retainOutput(inst, r.proc, proc?.outputLines ?? 50);
          inst.retiring = inst.retiring.filter((x) => x.proc.pid !== action.pid);
        }
        return;
      }
      case "switchTraffic":
        return this.switchTraffic(action.key, action.previousKey);
      case "beginDrain":
        return this.beginDrain(action.key);
      case "closeConnections": {
        const rec = this.releases.get(action.key);
        const open = this.proxy.connections(action.key);
        this.events.emit({
          level: "warn",
          type: "drain-timeout",
          message: `drain of ${rec?.spec.id ?? action.key} timed out; closing ${open.inflight} requests and ${open.websockets} WebSockets`,
          ...this.releaseRef(action.key),
          data: { ...open },
        });
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
        this.events.emit({ level: "error", type: "process-failed", message: `${action.instanceId} (${this.tag(action.key)}) failed: ${action.reason}`, ...this.releaseRef(action.key), data: { instanceId: action.instanceId } });
        return;
      }
      case "pruneRelease":
        this.records.forgetRelease(action.key);
        return;
      case "beginCanary":
        return this.beginCanary(action);
      case "beginBake":
        return this.beginBake(action);
      case "finishRollout":
        return this.finishRollout(action.key, action.outcome);
      case "rollBack":
        return this.rollBack(action.key, action.previousKey, action.failure);
      default: {
        const _exhaustive: never = action;
        return _exhaustive;
      }
    }
  }

  private createRelease(desired: ReleaseSpec): void {
    if (this.releases.has(desired.generation)) return;
    const now = this.now();
    // One id, one release: a different release that would share an id is numbered (v1-2).
    const spec: ReleaseSpec = { ...desired, id: releaseIdFor(desired, this.releases.values()) };
    const numbered = numberedBecause(spec, this.releases.values());
    this.records.addRelease({ key: spec.generation, spec, state: "starting", createdAt: now, startingAt: now, failedAttempts: 0 });
    this.events.emit({
      type: "rollout-started",
      message: `rolling out ${spec.id}${numbered ? `: ${numbered}` : ""}`,
      releaseKey: spec.generation,
      releaseId: spec.id,
      data: { path: spec.path, revision: spec.revision, ...(numbered ? { baseId: baseReleaseId(spec) } : {}) },
    });
  }

  /** The display id a desired release has (or will get when it is created): see release-identity.ts. */
  releaseIdFor(spec: ReleaseSpec): string {
    return releaseIdFor(spec, this.releases.values());
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
    const slots = this.records.slotsFor(key);
    for (const [id, inst] of slots) {
      const gone = !inst.proc || inst.proc.phase === "exited" || inst.proc.spawnError;
      if (gone || inst.failed) slots.delete(id);
    }
    this.events.emit({ type: "rollout-started", message: `rolling out ${rec.spec.id} (was ${from})`, releaseKey: key, releaseId: rec.spec.id, data: { path: rec.spec.path, from } });
  }

  /** Starts a daemon-wide service for the first time (templated from the release being rolled out). */
  private async startService(processId: string, spec: ReleaseSpec, forKey: string): Promise<void> {
    if (!this.records.serviceRecord) {
      const now = this.now();
      this.records.serviceRecord = { key: SERVICES_KEY, spec, state: "active", createdAt: now, activatedAt: now, failedAttempts: 0 };
    }
    const existing = [...(this.instances.get(SERVICES_KEY)?.values() ?? [])].some((i) => i.processId === processId && !i.stopRequested);
    await this.startProcess(SERVICES_KEY, processId, 0, 1, "deploy");
    const inst = [...(this.instances.get(SERVICES_KEY)?.values() ?? [])].find((i) => i.processId === processId && !i.stopRequested);
    if (inst && !existing) inst.startedFor = forKey;
  }

  /** After a switch, services restart (if they crash) from the new release: their template is refreshed. */
  private adoptServices(key: string): void {
    const rec = this.releases.get(key);
    const services = this.records.serviceRecord;
    if (!rec || !services) return;
    const changed = services.spec.generation !== rec.spec.generation;
    services.spec = rec.spec;
    for (const inst of this.instances.get(SERVICES_KEY)?.values() ?? []) delete inst.startedFor;
    if (changed) this.events.emit({ type: "services-refreshed", message: `services now restart from ${rec.spec.id}`, releaseKey: key, releaseId: rec.spec.id });
  }

  /** Release records, plus the services' pseudo-release. */
  private recordFor(key: string): ReleaseRecord | undefined {
    return this.records.recordFor(key);
  }

  private async startProcess(key: string, processId: string, replicaIndex: number, replicaCount: number, reason: StartReason): Promise<void> {
    const rec = this.recordFor(key);
    const proc = processById(this.config, processId);
    if (!rec || !proc) return;
    const slots = this.records.slotsFor(key);
    let inst = [...slots.values()].find((i) => i.processId === processId && i.replicaIndex === replicaIndex && !i.stopRequested);
    if (inst?.proc && inst.proc.phase !== "exited" && !inst.proc.spawnError) return; // already running
    if (!inst) {
      inst = newInstance(instanceIdFor(processId, replicaIndex, replicaCount), processId, replicaIndex, replicaCount, key, reason);
      slots.set(inst.instanceId, inst);
    } else if (inst.proc) {
      retainOutput(inst, inst.proc, proc.outputLines);
      inst.lastExit = inst.proc.exitInfo;
    }
    if (reason === "crash") {
      inst.restarts += 1;
      inst.restartTimes = [...inst.restartTimes, this.now()].slice(-100);
    }
    inst.replicaCount = replicaCount;
    inst.lastStartReason = reason;
    inst.healthState = "none";
    delete inst.pendingRestart;
    delete inst.healthReason;
    delete inst.healthCode;
    delete inst.readyAt;
    delete inst.spawnError;
    inst.health?.cancel();
    delete inst.health;
    delete inst.proc;

    try {
      if (proc.port && inst.port === undefined) {
        inst.port = await allocatePort(this.config.proxy.upstreamHost, proc.port, this.portsInUse());
      } else if (proc.port && inst.port !== undefined) {
        const moved = await portForRestart(this.config.proxy.upstreamHost, proc.port, inst.port, this.portsInUse(), inst.instanceId, inst.processId);
        if (moved) {
          this.events.emit({
            level: "warn",
            type: "port-moved",
            message: `${inst.instanceId} (${this.tag(key)}): its port ${inst.port} is ${moved.heldBy}: restarting on port ${moved.port}`,
            ...this.releaseRef(key),
            data: { instanceId: inst.instanceId, from: inst.port, to: moved.port, holders: moved.holders },
          });
          inst.port = moved.port;
        }
      }
      const slot = inst;
      const port = inst.port;
      await this.slots.start(
        key,
        rec,
        proc,
        slot,
        slot,
        port,
        (started) =>
          this.events.emit({
            type: "process-started",
            message: `started ${slot.instanceId} (${this.tag(key)}, pid ${started.pid ?? "?"}${port ? `, port ${port}` : ""}, reason ${reason})`,
            ...this.releaseRef(key),
            data: { instanceId: slot.instanceId, pid: started.pid, port, reason },
          }),
        (managed) => slot.proc === managed,
      );
    } catch (error) {
      inst.spawnError = errorMessage(error);
      // A failed attempt counts as an exit at this moment, so restart backoff measures from it.
      inst.lastExit = { code: null, signal: null, at: this.now(), requested: false };
      const code = isRollbridgeError(error) ? error.code : "SPAWN_FAILED";
      this.events.emit({ level: "error", type: "process-start-failed", message: `could not start ${inst.instanceId} (${this.tag(key)}): ${inst.spawnError}`, ...this.releaseRef(key), data: { instanceId: inst.instanceId, code } });
    }
  }

  /** Stops a slot's process; a "retire" stop ends the slot (successor and retiring ones too), a "restart" keeps it. */
  private async stopProcess(key: string, instanceId: string, kind: StopKind, reason: string): Promise<void> {
    const inst = this.instances.get(key)?.get(instanceId);
    if (!inst) return;
    if (kind === "retire") {
      inst.stopRequested = true;
      if (inst.successor) this.replacements.abandonSuccessor(key, inst, reason);
      for (const r of inst.retiring) this.replacements.stopRetiring(key, inst, r, reason);
    }
    inst.health?.cancel();
    const managed = inst.proc;
    if (!managed || managed.phase === "exited" || managed.phase === "stopping") return;
    this.events.emit({ type: "process-stopping", message: `stopping ${instanceId} (${this.tag(key)}, ${reason})`, ...this.releaseRef(key), data: { instanceId, pid: managed.pid, reason } });
    this.syncProxy();
    void this.slots.gracefulStop(key, inst, managed);
  }

  private switchTraffic(key: string | null, previousKey: string | null): void {
    const now = this.now();
    if (key) {
      const rec = this.releases.get(key);
      if (!rec) return;
      this.syncProxy();
      this.proxy.setCanary(null);
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

  /** A canary step: the release takes `weight`% of new requests beside the active one, judged from its first step on. */
  private beginCanary(action: Extract<Action, { type: "beginCanary" }>): void {
    const rec = this.releases.get(action.key);
    if (!rec || rec.state !== "starting") return;
    const now = this.now();
    const first = rec.rollout === undefined;
    rec.rollout = { previousKey: action.previousKey, phase: "canary", step: action.step, phaseStartedAt: now, judgingSince: rec.rollout?.judgingSince ?? now, judge: rec.rollout?.judge ?? action.judge };
    this.syncProxy();
    if (first) this.proxy.judge(action.key, action.judge);
    this.proxy.setCanary({ releaseKey: action.key, weight: action.weight, sticky: action.sticky });
    const previous = this.releases.get(action.previousKey);
    this.events.emit({
      type: "canary-step",
      message: `canary ${action.weight}% of new requests to ${rec.spec.id} (step ${action.step + 1} of ${action.steps}); ${previous?.spec.id ?? "the active release"} takes the rest`,
      releaseKey: action.key,
      releaseId: rec.spec.id,
      data: { step: action.step + 1, steps: action.steps, weight: action.weight, sticky: action.sticky, previousReleaseId: previous?.spec.id ?? null },
    });
  }

  /** After the switch: the previous release stays running and ready while the new one is judged. */
  private beginBake(action: Extract<Action, { type: "beginBake" }>): void {
    const rec = this.releases.get(action.key);
    if (!rec || rec.state !== "active") return;
    const now = this.now();
    const judged = rec.rollout !== undefined;
    rec.rollout = { previousKey: action.previousKey, phase: "bake", step: rec.rollout?.step ?? 0, phaseStartedAt: now, judgingSince: rec.rollout?.judgingSince ?? now, judge: rec.rollout?.judge ?? action.judge };
    if (!judged) this.proxy.judge(action.key, action.judge);
    const previous = this.releases.get(action.previousKey);
    this.events.emit({
      type: "bake-started",
      message: `${rec.spec.id} bakes for ${action.bakeMs / 1000} s; ${previous?.spec.id ?? "the previous release"} stays ready to take traffic back`,
      releaseKey: action.key,
      releaseId: rec.spec.id,
      data: { bakeMs: action.bakeMs, previousReleaseId: previous?.spec.id ?? null },
    });
  }

  /** The rollout is decided in the new release's favour, or superseded: it stops being judged (and gets no canary share). */
  private finishRollout(key: string, outcome: "passed" | "superseded"): void {
    const rec = this.releases.get(key);
    if (!rec?.rollout) return;
    const counts = this.proxy.responses(key);
    const phase = rec.rollout.phase;
    delete rec.rollout;
    this.proxy.judge(key, null);
    if (phase === "canary" && rec.state === "starting") this.proxy.setCanary(null);
    if (this.records.rolloutIntent?.key === key) this.records.rolloutIntent = undefined;
    const tally = counts ? `: ${counts.failed} of ${counts.total} responses failed in the window` : "";
    this.events.emit({
      type: outcome === "passed" ? "rollout-passed" : "rollout-superseded",
      message: outcome === "passed" ? `${rec.spec.id} passed${tally}` : `the ${phase === "canary" ? "canary" : "bake window"} of ${rec.spec.id} ends: a newer desired state supersedes it`,
      releaseKey: key,
      releaseId: rec.spec.id,
      data: { ...(counts ?? {}) },
    });
  }

  /**
   * Traffic back to the previous release at once (one pointer swap: it never stopped), the new
   * release drains and ends failed, not retried by itself; the desired file follows (onRolledBack).
   */
  private rollBack(key: string, previousKey: string, failure: { reason: string; code: ErrorCode }): void {
    const rec = this.releases.get(key);
    const previous = this.releases.get(previousKey);
    if (!rec || !previous || (rec.state !== "active" && rec.state !== "starting")) return;
    const now = this.now();
    const counts = this.proxy.responses(key);
    const progress = rec.rollout;
    this.proxy.setCanary(null);
    if (this.proxy.activeRelease() !== previousKey) this.proxy.setActive(previousKey);
    previous.state = "active";
    this.proxy.judge(key, null);
    delete rec.rollout;
    rec.state = "draining";
    rec.drainStartedAt = now;
    rec.drainDeadline = now + this.config.proxy.drainTimeoutMs;
    rec.failedAttempts += 1;
    rec.failure = { reason: failure.reason, code: failure.code, output: [], at: now, noRetry: true };
    if (this.records.rolloutIntent?.key === key) this.records.rolloutIntent = undefined;
    if (this.records.serviceRecord?.spec.generation === rec.spec.generation) this.adoptServices(previousKey);
    const event = this.events.emit({
      level: "error",
      type: "rolled-back",
      message: `${rec.spec.id} ${failure.reason.replace(/^rolled back/, `rolled back to ${previous.spec.id}`)}`,
      releaseKey: key,
      releaseId: rec.spec.id,
      data: { previousReleaseId: previous.spec.id, phase: progress?.phase ?? null, failed: counts?.failed ?? null, total: counts?.total ?? null, code: failure.code, reason: failure.reason },
    });
    rec.failure.seq = event.seq;
    this.onRolledBack?.(key, previousKey);
  }

  private beginDrain(key: string): void {
    const rec = this.releases.get(key);
    if (!rec || rec.state === "draining" || rec.state === "stopped") return;
    const now = this.now();
    rec.state = "draining";
    rec.drainStartedAt = now;
    rec.drainDeadline = now + this.config.proxy.drainTimeoutMs;
    const open = this.proxy.connections(key);
    const told = this.slots.tellDraining(rec, this.instances.get(key)?.values() ?? [], rec.drainDeadline);
    this.events.emit({
      type: "drain-started",
      message: `draining ${rec.spec.id} with ${open.inflight + open.websockets} connection${open.inflight + open.websockets === 1 ? "" : "s"}`,
      releaseKey: key,
      releaseId: rec.spec.id,
      data: { ...open, deadline: new Date(rec.drainDeadline).toISOString(), told },
    });
  }

  private async markStopped(key: string): Promise<void> {
    const rec = this.releases.get(key);
    if (!rec || rec.state === "stopped") return;
    const drainMs = rec.drainStartedAt ? this.now() - rec.drainStartedAt : undefined;
    const from = rec.state;
    // A rolled-back release ends failed (its failure is why), not merely stopped.
    rec.state = rec.failure?.noRetry ? "failed" : "stopped";
    rec.stoppedAt = this.now();
    await this.proxy.closeRelease(key);
    this.events.emit({ type: "release-stopped", message: `${rec.spec.id} stopped${from === "starting" ? " (superseded)" : ""}`, releaseKey: key, releaseId: rec.spec.id, data: { from, drainMs } });
  }

  private markFailed(key: string, failure: Omit<ReleaseFailure, "at">): void {
    const rec = this.releases.get(key);
    this.records.abandoned.delete(key);
    if (!rec || rec.state === "failed") return;
    const inst = failure.instanceId ? this.instances.get(key)?.get(failure.instanceId) : undefined;
    const output = inst ? slotOutput(inst, 20).map((l) => l.line) : [];
    rec.state = "failed";
    rec.failedAttempts += 1;
    rec.failure = { ...failure, output, at: this.now() };
    const event = this.events.emit({
      level: "error",
      type: "rollout-failed",
      message: `rollout of ${rec.spec.id} failed: ${failure.reason}`,
      releaseKey: key,
      releaseId: rec.spec.id,
      data: { ...failure, output, attempts: rec.failedAttempts },
    });
    rec.failure.seq = event.seq;
  }

  /**
   * Pushes every release's backends (proxied instances with a port) and readiness to the proxy:
   * readiness as recorded, and whether the process still runs as it is now (an exit takes it out
   * of rotation at once, before the pass that records it).
   */
  syncProxy(): void {
    for (const [key, slots] of this.instances) {
      const backends: Backend[] = [];
      const host = this.config.proxy.upstreamHost;
      for (const inst of slots.values()) {
        const proc = processById(this.config, inst.processId);
        if (proc?.policy !== "proxied") continue;
        if (inst.port !== undefined) {
          const phase = inst.proc?.phase;
          const ready = inst.healthState === "ready" && !inst.stopRequested && (phase === "running" || phase === "starting");
          backends.push({ id: inst.instanceId, host, port: inst.port, ready });
        }
        // Replaced processes stay listed (not ready) so their in-flight requests finish and are counted.
        for (const r of inst.retiring) if (r.port !== undefined && r.proc.phase !== "exited") backends.push({ id: inst.instanceId, host, port: r.port, ready: false });
      }
      this.proxy.setBackends(key, backends, this.releases.get(key)?.spec.id);
    }
  }

  /**
   * A handover is done: the new daemon supervises every process now. This executor stops reading
   * their output and never acts on them again (no restart, no stop).
   */
  releaseAll(): void {
    this.shuttingDown = true;
    for (const slots of this.instances.values()) {
      for (const inst of slots.values()) {
        // Health probes go on: the proxy keeps routing this daemon's last requests to ready backends.
        for (const p of [inst.proc, inst.successor?.proc, ...inst.retiring.map((r) => r.proc)]) p?.releaseOutput();
      }
    }
  }

  /** Stops every process (used on shutdown) and resolves when all have exited. */
  async stopEverything(): Promise<void> {
    this.shuttingDown = true;
    const stopGroup = async (entries: [string, Instance][]) => {
      const stops: Promise<unknown>[] = [];
      for (const [key, inst] of entries) {
        inst.stopRequested = true;
        inst.health?.cancel();
        inst.successor?.health?.cancel();
        for (const p of [inst.proc, inst.successor?.proc, ...inst.retiring.map((r) => r.proc)]) {
          if (p && p.phase !== "exited") stops.push(this.slots.gracefulStop(key, inst, p));
        }
      }
      await Promise.allSettled(stops);
    };
    const entries = (key: string) => [...(this.instances.get(key)?.values() ?? [])].map((inst): [string, Instance] => [key, inst]);
    // Release processes first: they may still use the services while they stop.
    await stopGroup([...this.instances.keys()].filter((key) => key !== SERVICES_KEY).flatMap(entries));
    await stopGroup(entries(SERVICES_KEY));
  }

  /** The slot's retained output, oldest first (its `outputLines` most recent lines, across restarts). */
  outputOf(inst: Instance): OutputLine[] {
    const proc = processById(this.config, inst.processId);
    return slotOutput(inst, proc?.outputLines ?? 50);
  }

  private portsInUse(): Set<number> {
    const ports = new Set<number>();
    for (const slots of this.instances.values())
      for (const inst of slots.values()) {
        // A crashed slot keeps its port for its restart; a stopped one gives it back.
        if (inst.port !== undefined && (!inst.stopRequested || inst.proc?.phase !== "exited")) ports.add(inst.port);
      }
    return ports;
  }

  private portsOf(key: string): Record<string, number> {
    const ports: Record<string, number> = {};
    for (const slots of [this.instances.get(SERVICES_KEY), this.instances.get(key)]) {
      for (const inst of slots?.values() ?? []) {
        if (inst.port !== undefined && !inst.stopRequested) ports[inst.processId] = inst.port;
      }
    }
    return ports;
  }

  /** How a process line names its release: the release id, or "service" for daemon-wide services. */
  private tag(key: string): string {
    return releaseTag(this.releaseRef(key));
  }

  private releaseRef(key: string): { releaseKey: string; releaseId?: string } {
    const id = this.releases.get(key)?.spec.id;
    return id === undefined ? { releaseKey: key } : { releaseKey: key, releaseId: id };
  }
}
