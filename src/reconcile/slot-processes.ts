// The OS-process side of a slot: rendering and spawning its process, wiring readiness, exits,
// IPC requests and output (log files, `logs --follow`), and the graceful stop sequence. The
// executor decides *when*; this decides *how*. What it does inside an action (start, adopt,
// stop) it records on the slot at once; what a process's own callbacks see between passes (its
// exit, its readiness result) is announced (events) at once and recorded by the next pass: the
// callback queues an observation (runtime.ts) and wakes the loop.
import { randomBytes } from "node:crypto";
import path from "node:path";
import type { Config, ProcessConfig } from "../config/schema.js";
import { errorMessage, isRollbridgeError } from "../errors.js";
import { RotatingLogFile } from "../process/log-file.js";
import { ManagedProcess } from "../process/managed-process.js";
import { stopGracefully, type StopSequenceOptions } from "../process/stop-sequence.js";
import type { ExitInfo, OutputLine, SpawnSpec } from "../process/types.js";
import type { EventLog } from "./events.js";
import type { TemplateContext } from "../config/template.js";
import { renderHooks, renderProcess, type Instance, type ReadinessTarget, type RenderedHooks, type RenderedProcess, type Successor } from "./instance.js";
import { startReadiness } from "./readiness.js";
import type { ReleaseRecord } from "./types.js";
import type { Observation, Runtime, RuntimeRecords } from "./runtime.js";
import { processById } from "../config/process-by-id.js";

/** One line of a managed process's output, with where it came from (for `logs --follow`). */
export interface InstanceOutputLine extends OutputLine {
  instanceId: string;
  processId: string;
  releaseId: string;
}

/** What the slot runner needs from the executor. */
export interface SlotProcessDeps {
  config: () => Config;
  events: EventLog;
  trigger: (reason: string) => void;
  now: () => number;
  daemonEnv: Record<string, string | undefined>;
  portsOf: (key: string) => Record<string, number>;
  syncProxy: () => void;
  releaseRef: (key: string) => { releaseKey: string; releaseId?: string };
  shuttingDown: () => boolean;
  /** The private directory for output FIFOs; undefined: plain pipes (output then dies with the daemon). */
  outputDir: () => string | undefined;
  /** Where an app's own restart request goes: an intent for the next pass. */
  runtime: Runtime;
  /** The executor's records: what an action does to a process is recorded here, what a callback sees is noted for the next pass. */
  records: RuntimeRecords;
}

/** A process of an earlier daemon that passed every check (adoption.ts), to be taken over. */
export interface AdoptedIdentity {
  pid: number;
  startTime: number;
  startedAt: number;
  output?: { stdout: string; stderr: string };
}

/** How a process line names where it belongs: its release id, or "service" for a daemon-wide one. */
export function releaseTag(ref: { releaseId?: string }): string {
  return ref.releaseId ?? "service";
}

/** Spawns, watches and stops the OS processes behind slots. */
export class SlotProcesses {
  private readonly outputListeners = new Set<(line: InstanceOutputLine) => void>();
  /** What each process's templates saw, and its hooks as rendered at spawn (the fallback at stop time). */
  private readonly rendered = new WeakMap<ManagedProcess, { context: TemplateContext; hooks: RenderedHooks }>();

  constructor(private readonly deps: SlotProcessDeps) {}

  /**
   * The one way a process starts, a slot's first (or next) process and its successor alike:
   * rendered and spawned on `port`, recorded on `target` (the slot itself, or its successor)
   * with its start time, started, announced (`announce`, the process-started event), then its
   * readiness watched for as long as `isCurrent(process)` holds. A spawn failure is thrown once
   * the process is recorded (its exit then reaches the slot like any other, with the next pass).
   */
  async start(
    key: string,
    rec: ReleaseRecord,
    proc: ProcessConfig,
    inst: Instance,
    target: Instance | Successor,
    port: number | undefined,
    announce: (managed: ManagedProcess) => void,
    isCurrent: (managed: ManagedProcess) => boolean,
  ): Promise<ManagedProcess> {
    const managed = this.spawn(rec, proc, inst, port);
    // The FIFOs first, without blocking the loop (the proxy serves meanwhile); then the spawn.
    await managed.prepareOutput();
    target.proc = managed;
    target.startedAt = this.deps.now();
    this.launch(key, inst, managed);
    if (managed.spawnError) {
      this.deps.records.recordProcess(managed);
      throw managed.spawnError;
    }
    announce(managed);
    this.watchReadiness(rec, proc, inst, target, managed, port, () => isCurrent(managed));
    return managed;
  }

  /** Renders and creates (does not start) the OS process for a slot, wired to its callbacks. */
  private spawn(rec: ReleaseRecord, proc: ProcessConfig, inst: Instance, port: number | undefined): ManagedProcess {
    const { rendered, cwd } = this.render(rec, proc, inst, port);
    const outputDir = this.deps.outputDir();
    const managed = new ManagedProcess({ ...this.spawnSpec(proc, inst, rendered, cwd), ...(outputDir === undefined ? {} : { output: fifoPaths(outputDir, inst.instanceId) }) });
    this.wire(rec, proc, inst, managed, rendered, cwd);
    return managed;
  }

  /** Starts a spawned process; output that cannot go to FIFOs is reported (it then goes to pipes). */
  private launch(key: string, inst: Instance, managed: ManagedProcess): void {
    managed.start();
    if (managed.outputProblem !== undefined) {
      this.deps.events.emit({
        level: "warn",
        type: "output-fifo-failed",
        message: `${inst.instanceId} (${releaseTag(this.deps.releaseRef(key))}): ${managed.outputProblem}`,
        ...this.deps.releaseRef(key),
        data: { instanceId: inst.instanceId },
      });
    }
  }

  /**
   * Takes over a process an earlier daemon started (verified by adoption.ts): rendered again for
   * its stop hooks and log file, its output FIFOs reopened, wired like one spawned here.
   */
  adopt(rec: ReleaseRecord, proc: ProcessConfig, inst: Instance, port: number | undefined, found: AdoptedIdentity): ManagedProcess {
    const { rendered, cwd } = this.render(rec, proc, inst, port);
    const spec = { ...this.spawnSpec(proc, inst, rendered, cwd), ...(found.output === undefined ? {} : { output: found.output }) };
    const managed = ManagedProcess.adopt(spec, found);
    this.wire(rec, proc, inst, managed, rendered, cwd);
    this.deps.records.recordProcess(managed);
    if (managed.outputProblem !== undefined) {
      this.deps.events.emit({
        level: "warn",
        type: "output-fifo-failed",
        message: `${inst.instanceId} (${releaseTag(this.deps.releaseRef(rec.key))}, pid ${found.pid}): ${managed.outputProblem}`,
        ...this.deps.releaseRef(rec.key),
        data: { instanceId: inst.instanceId, pid: found.pid },
      });
    }
    return managed;
  }

  private render(rec: ReleaseRecord, proc: ProcessConfig, inst: Instance, port: number | undefined): { rendered: RenderedProcess; cwd: string } {
    const rendered = renderProcess({
      config: this.deps.config(),
      proc,
      release: rec.spec,
      instanceId: inst.instanceId,
      replicaIndex: inst.replicaIndex,
      replicaCount: inst.replicaCount,
      port,
      ports: this.deps.portsOf(rec.key),
      daemonEnv: this.deps.daemonEnv,
    });
    return { rendered, cwd: path.resolve(rec.spec.path, rendered.cwd) };
  }

  private spawnSpec(proc: ProcessConfig, inst: Instance, rendered: RenderedProcess, cwd: string): SpawnSpec {
    return {
      instanceId: inst.instanceId,
      command: rendered.command,
      cwd,
      env: rendered.env,
      outputLines: proc.outputLines,
      stopSignal: proc.stopSignal as NodeJS.Signals,
      stopSignalTarget: proc.stopSignalTarget,
      gracefulStopMs: proc.gracefulStopMs,
      ipc: (proc.health !== false && proc.health.ipc) || proc.stopMessage !== undefined || proc.policy === "proxied",
    };
  }

  /** Log file, stop hooks, exit, output and IPC of a slot's process. */
  private wire(rec: ReleaseRecord, proc: ProcessConfig, inst: Instance, managed: ManagedProcess, rendered: RenderedProcess, cwd: string): void {
    if (rendered.logFile && proc.logFile) {
      const file = path.resolve(cwd, rendered.logFile);
      if (inst.logFile?.path !== file) {
        inst.logFile = new RotatingLogFile({
          path: file,
          maxBytes: proc.logFile.maxBytes,
          keep: proc.logFile.keep,
          gzip: proc.logFile.gzip,
          onError: (error) => this.deps.events.emit({ level: "warn", type: "log-file-error", message: `cannot write ${inst.instanceId}'s log file ${file}: ${errorMessage(error)}`, ...this.deps.releaseRef(rec.key) }),
        });
      }
      const log = inst.logFile;
      managed.onOutput((line) => log.write(line.line));
    }
    this.rendered.set(managed, { context: rendered.templateContext, hooks: rendered.hooks });
    managed.onExit((exit) => this.onExit(rec, inst, managed, exit));
    managed.onOutput((line) => this.emitOutput(rec, inst, line));
    managed.onMessage((message) => this.onMessage(rec, inst, managed, message));
  }

  /** A Node process may ask to be replaced ("offline", {event: "request-restart"}). */
  private onMessage(rec: ReleaseRecord, inst: Instance, managed: ManagedProcess, message: unknown): void {
    const asks = message === "offline" || (typeof message === "object" && message !== null && (message as { event?: unknown }).event === "request-restart");
    if (!asks || inst.proc !== managed || inst.stopRequested || this.deps.runtime.restartAsked(rec.key, inst.instanceId) !== undefined) return;
    this.deps.events.emit({
      type: "restart-requested",
      message: `${inst.instanceId} (${releaseTag(this.deps.releaseRef(rec.key))}) asked to be replaced`,
      ...this.deps.releaseRef(rec.key),
      data: { instanceId: inst.instanceId, pid: managed.pid },
    });
    // Outside a pass: the next one marks the slot and the planner replaces the process.
    this.deps.runtime.request({ type: "restart", targets: [{ key: rec.key, instanceId: inst.instanceId }], reason: "requested", at: this.deps.now() });
  }

  /**
   * Watches a process's readiness (inside the action that started or adopted it): a result known
   * at once is recorded now, a later one is announced when it comes and recorded by the next pass.
   */
  watchReadiness(rec: ReleaseRecord, proc: ProcessConfig, inst: Instance, target: ReadinessTarget, managed: ManagedProcess, port: number | undefined, isCurrent: () => boolean): void {
    const noted = { key: rec.key, instanceId: inst.instanceId, process: managed };
    startReadiness(proc, target, managed, port, {
      host: this.deps.config().proxy.upstreamHost,
      now: this.deps.now,
      isCurrent,
      listenTimeoutMs: this.deps.config().proxy.healthTimeoutMs,
      onReady: (readyAt) => {
        if (proc.policy !== "proxied") return;
        const startedAt = managed.startedAt ?? readyAt;
        this.deps.events.emit({
          type: "process-healthy",
          message: `${inst.instanceId} (${releaseTag(this.deps.releaseRef(rec.key))}${target === inst ? "" : ", replacement"}) healthy in ${readyAt - startedAt} ms`,
          ...this.deps.releaseRef(rec.key),
          data: { instanceId: inst.instanceId, pid: managed.pid, ms: readyAt - startedAt },
        });
        // Into rotation (or switched to) once the next pass has recorded it.
        this.note({ type: "ready", ...noted, at: readyAt });
      },
      onFailed: (reason, failure) => {
        const notOwned = failure.code === "LISTENER_NOT_OWNED";
        this.deps.events.emit({
          level: "error",
          type: notOwned ? "listener-not-owned" : "health-failed",
          message: `${inst.instanceId} (${releaseTag(this.deps.releaseRef(rec.key))}): ${reason}`,
          ...this.deps.releaseRef(rec.key),
          data: { instanceId: inst.instanceId, pid: managed.pid, port, code: failure.code, ...(failure.holders ? { holders: failure.holders } : {}) },
        });
        this.note({ type: "unhealthy", ...noted, reason, code: failure.code });
      },
    });
    // An ungated process (or a gated one with no port) is running, or ready, from here on.
    this.deps.records.recordProcess(managed);
  }

  /** Queues what a callback saw for the next pass and asks for that pass (none while shutting down). */
  private note(observation: Observation): void {
    this.deps.records.note(observation);
    if (!this.deps.shuttingDown()) this.deps.trigger(observation.type === "exited" ? "process-exit" : "health");
  }

  /** A process's exit, between passes or during one: announced now, recorded on the slot by the next pass. */
  private onExit(rec: ReleaseRecord, inst: Instance, managed: ManagedProcess, exit: ExitInfo): void {
    const role = inst.proc === managed ? "current" : inst.successor?.proc === managed ? "successor" : "retiring";
    if (role === "current") inst.health?.cancel();
    if (role === "successor") inst.successor?.health?.cancel();
    if (managed.spawnError) {
      this.onSpawnFailed(rec, inst, managed, role, managed.spawnError);
      return;
    }
    const how = exit.unknown ? "exit status unknown: an adopted process is not the daemon's child" : exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
    const crashed = role === "current" && !exit.requested && !inst.stopRequested;
    const tag = releaseTag(this.deps.releaseRef(rec.key));
    const label = role === "current" ? `${inst.instanceId} (${tag})` : `${inst.instanceId} (${tag}, ${role === "successor" ? "replacement" : "replaced"}, pid ${managed.pid})`;
    this.deps.events.emit({
      level: crashed ? "warn" : "info",
      type: crashed ? "process-crashed" : "process-exited",
      message: `${label} ${crashed ? "crashed" : "exited"} (${how})`,
      ...this.deps.releaseRef(rec.key),
      data: { instanceId: inst.instanceId, pid: managed.pid, code: exit.code, signal: exit.signal },
    });
    // Out of rotation at once, before the next pass (the proxy follows the process itself).
    this.deps.syncProxy();
    this.note({ type: "exited", key: rec.key, instanceId: inst.instanceId, process: managed });
  }

  /**
   * A process that never ran: its start failure (a missing cwd or program) is the news, not an
   * "exit". One that failed while being spawned was reported by the executor already; one whose
   * failure came back from the spawn afterwards is reported here, with its cause (and recorded
   * on the slot by the next pass).
   */
  private onSpawnFailed(rec: ReleaseRecord, inst: Instance, managed: ManagedProcess, role: "current" | "successor" | "retiring", error: Error): void {
    const target = role === "current" ? inst : role === "successor" ? inst.successor : undefined;
    if (target && target.spawnError === undefined) {
      const tag = releaseTag(this.deps.releaseRef(rec.key));
      const label = role === "current" ? `${inst.instanceId} (${tag})` : `a replacement for ${inst.instanceId} (${tag})`;
      this.deps.events.emit({
        level: "error",
        type: "process-start-failed",
        message: `could not start ${label}: ${errorMessage(error)}`,
        ...this.deps.releaseRef(rec.key),
        data: { instanceId: inst.instanceId, code: isRollbridgeError(error) ? error.code : "SPAWN_FAILED" },
      });
    }
    this.deps.syncProxy();
    this.note({ type: "exited", key: rec.key, instanceId: inst.instanceId, process: managed });
  }

  /**
   * Tells a release's live processes that its drain began, before anything is stopped: an IPC
   * `{event: "draining", ...}` where there is a channel, and `drainSignal` where configured.
   * Returns how many processes heard it (either way).
   */
  tellDraining(rec: ReleaseRecord, instances: Iterable<Instance>, deadline: number): number {
    const config = this.deps.config();
    const notice = { event: "draining", releaseId: rec.spec.id, deadline: new Date(deadline).toISOString(), deadlineMs: deadline, drainTimeoutMs: config.proxy.drainTimeoutMs };
    let told = 0;
    for (const inst of instances) {
      const managed = inst.proc;
      if (inst.stopRequested || managed === undefined || managed.phase === "exited" || managed.phase === "stopping") continue;
      const signal = processById(config, inst.processId)?.drainSignal;
      let heard = managed.send(notice);
      if (signal !== undefined) {
        try {
          managed.notify(signal);
          heard = true;
        } catch (error) {
          this.deps.events.emit({
            level: "warn",
            type: "process-stop-step",
            message: `${inst.instanceId} (${releaseTag(this.deps.releaseRef(rec.key))}): could not send drainSignal ${signal}: ${errorMessage(error)}`,
            ...this.deps.releaseRef(rec.key),
            data: { instanceId: inst.instanceId, pid: managed.pid },
          });
        }
      }
      if (heard) told++;
    }
    return told;
  }

  /**
   * The configured stop sequence (lifecycle hooks, stopMessage/stopSignal, SIGKILL after the
   * grace), begun by an action (or at shutdown): the process is recorded as stopping at once.
   */
  gracefulStop(key: string, inst: Instance, managed: ManagedProcess): Promise<unknown> {
    const stopping = this.stopSequence(key, inst, managed);
    this.deps.records.recordProcess(managed);
    return stopping;
  }

  private stopSequence(key: string, inst: Instance, managed: ManagedProcess): Promise<unknown> {
    const proc = processById(this.deps.config(), inst.processId);
    if (!proc) return managed.stop();
    const options: StopSequenceOptions = {
      lifecycle: { ...this.hooksFor(key, inst, proc, managed), drainTimeoutMs: proc.lifecycle.drainTimeoutMs },
      stopSignal: proc.stopSignal as NodeJS.Signals,
      gracefulStopMs: proc.gracefulStopMs,
      env: managed.spec.env,
      cwd: managed.spec.cwd,
      onStep: (step) => {
        if (step.phase === "stop" && step.ok && !proc.lifecycle.quietCommand && !proc.lifecycle.drainCommand && !proc.lifecycle.stopCommand) return;
        this.deps.events.emit({
          level: step.ok ? "info" : "warn",
          type: "process-stop-step",
          message: `${inst.instanceId} (${releaseTag(this.deps.releaseRef(key))}, pid ${managed.pid}) ${step.phase}: ${step.detail}`,
          ...this.deps.releaseRef(key),
          data: { instanceId: inst.instanceId, pid: managed.pid, phase: step.phase, ok: step.ok, ms: step.ms },
        });
      },
    };
    if (proc.stopMessage !== undefined) options.stopMessage = proc.stopMessage;
    return stopGracefully(managed, options);
  }

  /**
   * The hooks of the config in force now (a reload may have changed them), rendered with the
   * values the process started with; if they no longer render, the ones rendered at its start.
   */
  private hooksFor(key: string, inst: Instance, proc: ProcessConfig, managed: ManagedProcess): RenderedHooks {
    const known = this.rendered.get(managed);
    if (!known) return {};
    try {
      return renderHooks(proc, known.context);
    } catch (error) {
      this.deps.events.emit({
        level: "warn",
        type: "process-stop-step",
        message: `${inst.instanceId} (${releaseTag(this.deps.releaseRef(key))}, pid ${managed.pid}): the reloaded lifecycle hooks do not render (${errorMessage(error)}); using the ones it started with`,
        ...this.deps.releaseRef(key),
        data: { instanceId: inst.instanceId, pid: managed.pid },
      });
      return known.hooks;
    }
  }

  /** Every output line of every process started from now on (slots get a new process per restart). */
  onOutput(listener: (line: InstanceOutputLine) => void): () => void {
    this.outputListeners.add(listener);
    return () => this.outputListeners.delete(listener);
  }

  private emitOutput(rec: ReleaseRecord, inst: Instance, line: OutputLine): void {
    if (this.outputListeners.size === 0) return;
    const out: InstanceOutputLine = { ...line, instanceId: inst.instanceId, processId: inst.processId, releaseId: rec.spec.id };
    for (const listener of this.outputListeners) {
      try {
        listener(out);
      } catch {
        // a broken follower must not break process bookkeeping
      }
    }
  }
}

/** Two FIFO paths for a new process: its instance id (made file-safe) and a random part, so no two processes share one. */
function fifoPaths(dir: string, instanceId: string): { stdout: string; stderr: string } {
  const base = `${instanceId.replace(/[^A-Za-z0-9_.-]/g, "_")}-${randomBytes(6).toString("hex")}`;
  return { stdout: path.join(dir, `${base}.out`), stderr: path.join(dir, `${base}.err`) };
}
