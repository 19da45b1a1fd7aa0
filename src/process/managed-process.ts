// A managed OS process: `/bin/sh -c command` in its own process group, its
// output kept in a ring buffer, its exit recorded as data. Stopping (or losing)
// the leader always ends the whole group, so nothing it spawned outlives it.
// A process an earlier daemon started can be adopted: it is watched through /proc
// (it is not our child, so its exit status is unknown) and stopped the same way.
import type { Readable } from "node:stream";
import { errorMessage } from "../errors.js";
import { readIdentity } from "./identity.js";
import { closeChildEnds, createOutputFifosAsync, openFifosForSpawn, removeOutputFifos, reopenFifos, type OpenedFifos } from "./output-fifo.js";
import { setTimeout as sleep } from "node:timers/promises";
import { waitForGroupGone } from "./group-liveness.js";
import { PartialLine, readLines, RingBuffer } from "./output-buffer.js";
import { spawnShell } from "./shell-command.js";
import { spawnFailure, spawnPreflight } from "./spawn-failure.js";
import type { ShellChild } from "./shell-command.js";
import type { ExitInfo, OutputLine, ProcessPhase, SpawnSpec } from "./types.js";

/** One process group, spawned by start() and ended by stop() or by its own exit. */
export class ManagedProcess {
  readonly spec: SpawnSpec;

  #phase: ProcessPhase = "starting";
  #started = false;
  #pid: number | undefined;
  #startedAt: number | undefined;
  #exitInfo: ExitInfo | undefined;
  #spawnError: Error | undefined;
  #child: ShellChild | undefined;
  #leaderExit: { code: number | null; signal: string | null; at: number } | undefined;
  #stopRequested = false;
  #stopPromise: Promise<ExitInfo> | undefined;
  #graceTimer: NodeJS.Timeout | undefined;
  /** When the grace period of a requested stop ends (SIGKILL to the group). */
  #killAt: number | undefined;
  #groupGone = false;
  #streamsClosed: Promise<void> = Promise.resolve();
  readonly #done: Promise<ExitInfo>;
  #resolveDone!: (exit: ExitInfo) => void;
  readonly #output: RingBuffer<OutputLine>;
  readonly #partial = { stdout: new PartialLine(), stderr: new PartialLine() };
  readonly #exitListeners: ((exit: ExitInfo) => void)[] = [];
  readonly #outputListeners: ((line: OutputLine) => void)[] = [];
  readonly #messageListeners: ((message: unknown) => void)[] = [];
  /** The output FIFOs in use (spec.output, unless they could not be made: then pipes). */
  #fifos: OpenedFifos | undefined;
  /** prepareOutput() created the FIFOs (true) or could not (false); undefined: start() creates them. */
  #fifosMade: boolean | undefined;
  #outputProblem: string | undefined;
  /** Set for a process adopted from an earlier daemon: its identity, polled through /proc. */
  #adopted: { startTime: number } | undefined;
  #pollTimer: NodeJS.Timeout | undefined;

  constructor(spec: SpawnSpec) {
    this.spec = spec;
    this.#output = new RingBuffer(Math.max(1, Math.floor(spec.outputLines)));
    this.#done = new Promise((resolve) => {
      this.#resolveDone = resolve;
    });
  }

  get pid(): number | undefined {
    return this.#pid;
  }

  get phase(): ProcessPhase {
    return this.#phase;
  }

  get startedAt(): number | undefined {
    return this.#startedAt;
  }

  get exitInfo(): ExitInfo | undefined {
    return this.#exitInfo;
  }

  get spawnError(): Error | undefined {
    return this.#spawnError;
  }

  /** The FIFOs its output goes to (recorded in the state file so the next daemon can reopen them); undefined with pipes. */
  get outputFifos(): { stdout: string; stderr: string } | undefined {
    return this.#fifos === undefined ? undefined : this.spec.output;
  }

  /** Why its output is not captured as asked (FIFOs fell back to pipes, or could not be reopened). */
  get outputProblem(): string | undefined {
    return this.#outputProblem;
  }

  /** True for a process adopted from an earlier daemon (not our child). */
  get adopted(): boolean {
    return this.#adopted !== undefined;
  }

  /**
   * A process an earlier daemon started and this one takes over: `pid` (its group leader, pgid =
   * pid) with the start time the caller verified. Its output FIFOs (spec.output) are reopened;
   * its end is noticed by polling /proc every ADOPTED_POLL_MS, reported with an unknown status.
   */
  static adopt(spec: SpawnSpec, found: { pid: number; startTime: number; startedAt: number }): ManagedProcess {
    const managed = new ManagedProcess(spec);
    managed.#takeOver(found);
    return managed;
  }

  #takeOver(found: { pid: number; startTime: number; startedAt: number }): void {
    this.#started = true;
    this.#pid = found.pid;
    this.#startedAt = found.startedAt;
    this.#adopted = { startTime: found.startTime };
    if (this.spec.output !== undefined) {
      try {
        this.#fifos = reopenFifos(this.spec.output);
        this.#streamsClosed = this.#readFifos(this.#fifos);
      } catch (error) {
        this.#outputProblem = `its output is not captured: ${errorMessage(error)}`;
      }
    }
    let polling = false;
    this.#pollTimer = setInterval(() => {
      if (polling) return;
      polling = true;
      void readIdentity(found.pid)
        .then((identity) => {
          if (identity === null || identity.startTime !== found.startTime) this.#onLeaderExit(null, null);
        })
        .finally(() => (polling = false));
    }, ADOPTED_POLL_MS);
    this.#pollTimer.unref();
  }

  /**
   * Creates the output FIFOs ahead of start() without blocking the event loop. A failure is not
   * thrown: start() then uses pipes and says why (outputProblem), as when it creates them itself.
   */
  async prepareOutput(): Promise<void> {
    if (this.spec.output === undefined || this.#started || this.#fifosMade !== undefined) return;
    try {
      await createOutputFifosAsync(this.spec.output);
      this.#fifosMade = true;
    } catch (error) {
      this.#fifosMade = false;
      this.#outputProblem = pipesInstead(error);
    }
  }

  /**
   * Spawns the group; a spawn failure is recorded (spawnError: a SPAWN_FAILED error naming its
   * cause, exitInfo) and reported to onExit, never thrown.
   */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#startedAt = Date.now();
    // A missing cwd or program is named here: the shell would only exit 127, execa would quote the command line.
    const problem = spawnPreflight(this.spec);
    if (problem !== null) {
      this.#recordSpawnFailure(problem);
      return;
    }
    if (this.spec.output !== undefined && this.#fifosMade !== false) {
      try {
        this.#fifos = openFifosForSpawn(this.spec.output, this.#fifosMade === true);
      } catch (error) {
        // Output still works through pipes; it just does not outlive the daemon.
        this.#outputProblem = pipesInstead(error);
      }
    }
    const fifos = this.#fifos;
    let child: ShellChild;
    try {
      child = spawnShell(this.spec, fifos?.childFds);
    } catch (error) {
      this.#dropFifos();
      this.#recordSpawnFailure(spawnFailure(this.spec, error));
      return;
    } finally {
      // The child has its own copies now: holding ours would hide its end of output.
      if (fifos) closeChildEnds(fifos);
    }
    this.#child = child;
    this.#pid = child.pid;
    this.#streamsClosed = fifos ? this.#readFifos(fifos) : Promise.all([this.#readStream(child.stdout, "stdout"), this.#readStream(child.stderr, "stderr")]).then(() => undefined);
    child.on("exit", (code, signal) => this.#onLeaderExit(code, signal));
    child.on("error", () => {
      // Spawn failures arrive through the result below; send/kill errors are handled where they happen.
    });
    if (this.spec.ipc === true) {
      child.on("message", (message: unknown) => emit(this.#messageListeners, message));
    }
    child.then(
      (result) => {
        // Without an exit event the process never ran: a spawn failure (bad cwd, missing shell).
        if (this.#leaderExit === undefined && this.#pid === undefined && result.failed) {
          this.#recordSpawnFailure(spawnFailure(this.spec, result));
        }
      },
      (error: unknown) => {
        if (this.#leaderExit === undefined && this.#pid === undefined) this.#recordSpawnFailure(spawnFailure(this.spec, error));
      },
    );
  }

  /** The caller has seen the process become ready (health check passed). */
  markRunning(): void {
    if (this.#phase === "starting") this.#phase = "running";
  }

  /**
   * A graceful stop has begun (quiet/drain hooks run before any signal): the process shows as
   * stopping, and an exit from now on counts as requested, not as a crash.
   */
  markStopping(): void {
    if (this.#leaderExit !== undefined || !this.#started) return;
    this.#stopRequested = true;
    this.#phase = "stopping";
  }

  /** Called once with the final exit; a listener added after the exit is called on the next tick. */
  onExit(listener: (exit: ExitInfo) => void): void {
    const exit = this.#exitInfo;
    if (exit === undefined) {
      this.#exitListeners.push(listener);
    } else {
      queueMicrotask(() => emit([listener], exit));
    }
  }

  onOutput(listener: (line: OutputLine) => void): void {
    this.#outputListeners.push(listener);
  }

  /** IPC messages from the child (only with spec.ipc). */
  onMessage(listener: (message: unknown) => void): void {
    this.#messageListeners.push(listener);
  }

  /** Sends an IPC message to the child; false when there is no open channel. */
  send(message: unknown): boolean {
    const child = this.#child;
    if (child === undefined || this.spec.ipc !== true || !child.connected) return false;
    try {
      // The callback keeps a failed write from surfacing as an 'error' event.
      return child.send(message as never, () => undefined);
    } catch {
      return false;
    }
  }

  /** Retained output lines, oldest first. */
  output(): OutputLine[] {
    return this.#output.toArray();
  }

  /**
   * Stops the whole group: `message` over IPC (when given and deliverable) or
   * the stop signal (to the group, or to the leader alone with stopSignalTarget:
   * process), then SIGKILL to the group after the grace period.
   * Resolves once the leader has exited and no member of the group is left.
   * Idempotent: every call returns the same promise.
   */
  stop(options: { signal?: NodeJS.Signals; graceMs?: number; message?: unknown } = {}): Promise<ExitInfo> {
    if (this.#stopPromise !== undefined) return this.#stopPromise;
    if (this.#exitInfo !== undefined) {
      this.#stopPromise = Promise.resolve(this.#exitInfo);
      return this.#stopPromise;
    }
    this.#stopPromise = this.#done;
    if (!this.#started) {
      // Nothing ever ran; record a requested exit so observers see a final state.
      this.#started = true;
      this.#stopRequested = true;
      this.#leaderExit = { code: null, signal: null, at: Date.now() };
      this.#groupGone = true;
      void this.#settle();
      return this.#stopPromise;
    }
    // Already exiting on its own (crash or spawn failure): that exit is the answer.
    if (this.#leaderExit !== undefined || this.#pid === undefined) return this.#stopPromise;

    this.#stopRequested = true;
    this.#phase = "stopping";
    const delivered = options.message !== undefined && this.send(options.message);
    if (!delivered) {
      const signal = options.signal ?? this.spec.stopSignal;
      // A pre-fork server (stopSignalTarget: process) stops its workers itself; SIGKILL is never held back from the group.
      const leaderOnly = this.spec.stopSignalTarget === "process" && signal !== "SIGKILL";
      try {
        if (leaderOnly) this.#signalLeader(signal);
        else this.kill(signal);
      } catch {
        if (leaderOnly) this.#signalLeader("SIGTERM");
        else this.kill("SIGTERM");
      }
    }
    const graceMs = Math.max(0, options.graceMs ?? this.spec.gracefulStopMs);
    this.#killAt = Date.now() + graceMs;
    this.#graceTimer = setTimeout(() => this.kill("SIGKILL"), graceMs);
    return this.#stopPromise;
  }

  /**
   * Sends a notice signal (drainSignal) the way the stop signal goes: to the group, or to the
   * leader alone with stopSignalTarget: process. Not a stop: nothing else follows from it.
   */
  notify(signal: NodeJS.Signals): void {
    if (this.#leaderExit !== undefined || this.#stopRequested) return;
    if (this.spec.stopSignalTarget === "process") this.#signalLeader(signal);
    else this.kill(signal);
  }

  /** Signals the whole group; a group that is already gone is not an error. */
  kill(signal: NodeJS.Signals): void {
    const pid = this.#pid;
    if (pid === undefined || this.#groupGone) return;
    try {
      process.kill(-pid, signal);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "ESRCH" && code !== "EPERM") throw error;
    }
  }

  /** Signals the group leader alone (stopSignalTarget: process); one that is gone is not an error. */
  #signalLeader(signal: NodeJS.Signals): void {
    const pid = this.#pid;
    if (pid === undefined || this.#leaderExit !== undefined) return;
    try {
      process.kill(pid, signal);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "ESRCH" && code !== "EPERM") throw error;
    }
  }

  #onLeaderExit(code: number | null, signal: string | null): void {
    if (this.#leaderExit !== undefined) return;
    clearInterval(this.#pollTimer);
    const at = Date.now();
    this.#leaderExit = { code, signal, at };
    if (this.#stopRequested && this.#graceTimer !== undefined) {
      // The grace timer (already armed) SIGKILLs members that outlive it.
      void this.#settle();
      return;
    }
    // A crash, or the leader ending during stop hooks (markStopping, no signal sent yet): end
    // whatever it spawned at once, so a restart can rebind its port.
    this.kill("SIGKILL");
    void this.#settle();
  }

  #recordSpawnFailure(error: Error): void {
    if (this.#leaderExit !== undefined) return;
    this.#spawnError = error;
    this.#pid = undefined;
    this.#leaderExit = { code: null, signal: null, at: Date.now() };
    this.#groupGone = true;
    // Listeners always fire asynchronously, even when execa threw synchronously.
    setImmediate(() => void this.#settle());
  }

  /** Waits for the group to empty and the pipes to drain, then records the exit and tells listeners. */
  async #settle(): Promise<void> {
    let gone = true;
    try {
      gone = await this.#waitForGroupGone();
      // Final output can trail the exit event; the group is gone, so the pipes close promptly.
      const drained = new AbortController();
      await Promise.race([this.#streamsClosed, sleep(STREAM_DRAIN_MS, undefined, { signal: drained.signal }).catch(() => undefined)]);
      drained.abort();
    } catch {
      // Never let bookkeeping errors escape; the exit is still recorded below.
    }
    clearTimeout(this.#graceTimer);
    clearInterval(this.#pollTimer);
    this.#dropFifos();
    // Only a group seen empty stops further signals (its id could be reused); a stuck member can still be killed.
    this.#groupGone = gone;
    this.#partial.stdout.flush((line) => this.#addLine("stdout", line));
    this.#partial.stderr.flush((line) => this.#addLine("stderr", line));
    const leader = this.#leaderExit ?? { code: null, signal: null, at: Date.now() };
    const exit: ExitInfo = { code: leader.code, signal: leader.signal, at: leader.at, requested: this.#stopRequested, ...(this.#adopted ? { unknown: true as const } : {}) };
    this.#exitInfo = exit;
    this.#phase = "exited";
    this.#resolveDone(exit);
    const listeners = this.#exitListeners.splice(0);
    emit(listeners, exit);
  }

  /** True once no live member is left; false when it gave up on a member that survives SIGKILL (D state). */
  #waitForGroupGone(): Promise<boolean> {
    const pid = this.#pid;
    if (pid === undefined || this.#groupGone) return Promise.resolve(true);
    // A crash was SIGKILLed at once; a stop is SIGKILLed when its grace period ends.
    return waitForGroupGone(pid, this.#killAt);
  }

  #readFifos(fifos: OpenedFifos): Promise<void> {
    return Promise.all([this.#readStream(fifos.readers.stdout, "stdout"), this.#readStream(fifos.readers.stderr, "stderr")]).then(() => undefined);
  }

  /**
   * A handover: the new daemon reads the FIFOs now, so this one closes its reading ends (the
   * FIFOs stay; the process keeps its own read-write ends, so its writes never fail).
   */
  releaseOutput(): void {
    const fifos = this.#fifos;
    if (fifos === undefined) return;
    fifos.readers.stdout.destroy();
    fifos.readers.stderr.destroy();
  }

  /** Closes the reading ends and removes the FIFOs (the process is gone, or never ran). */
  #dropFifos(): void {
    const fifos = this.#fifos;
    if (fifos === undefined || this.spec.output === undefined) return;
    fifos.readers.stdout.destroy();
    fifos.readers.stderr.destroy();
    removeOutputFifos(this.spec.output);
  }

  #readStream(stream: Readable | null | undefined, name: "stdout" | "stderr"): Promise<void> {
    return readLines(stream, this.#partial[name], (line) => this.#addLine(name, line));
  }

  #addLine(stream: "stdout" | "stderr", text: string): void {
    const line: OutputLine = { at: Date.now(), stream, pid: this.#pid ?? null, line: text };
    this.#output.push(line);
    emit(this.#outputListeners, line);
  }
}

const STREAM_DRAIN_MS = 1_000;
/** How often an adopted process's pid is looked up in /proc (its exit must be noticed within a second). */
const ADOPTED_POLL_MS = 200;

/** Calls each listener; a throwing listener must not break the process bookkeeping. */
function emit<T>(listeners: readonly ((value: T) => void)[], value: T): void {
  for (const listener of listeners) {
    try {
      listener(value);
    } catch (error) {
      process.emitWarning(`rollbridge: a process listener threw: ${toError(error).message}`);
    }
  }
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** Why a process's output goes to pipes: its FIFOs could not be made or opened. */
function pipesInstead(error: unknown): string {
  return `its output goes to pipes, not FIFOs (it will not survive a daemon crash): ${errorMessage(error)}`;
}
