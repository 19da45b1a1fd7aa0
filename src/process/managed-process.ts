// A managed OS process: `/bin/sh -c command` in its own process group, its
// output kept in a ring buffer, its exit recorded as data. Stopping (or losing)
// the leader always ends the whole group, so nothing it spawned outlives it.
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import { groupHasLiveMembers } from "./memory.js";
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
  #child: ChildHandle | undefined;
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

  /** Spawns the group; a spawn failure is recorded (spawnError, exitInfo) and reported to onExit, never thrown. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#startedAt = Date.now();
    let child: ChildHandle;
    try {
      child = execa("/bin/sh", ["-c", shellCommand(this.spec.command)], {
        cwd: this.spec.cwd,
        env: this.spec.env,
        extendEnv: false,
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
        // Own session and process group: pgid = pid, so -pid reaches everything it spawns.
        detached: true,
        reject: false,
        // Output goes to the ring buffer only; execa must not accumulate it.
        buffer: false,
        forceKillAfterDelay: false,
        ipc: this.spec.ipc === true,
        serialization: "json",
      });
    } catch (error) {
      this.#recordSpawnFailure(toError(error));
      return;
    }
    this.#child = child;
    this.#pid = child.pid;
    this.#streamsClosed = Promise.all([
      this.#readStream(child.stdout, "stdout"),
      this.#readStream(child.stderr, "stderr"),
    ]).then(() => undefined);
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
          this.#recordSpawnFailure(result instanceof Error ? result : new Error(result.message ?? "spawn failed"));
        }
      },
      (error: unknown) => {
        if (this.#leaderExit === undefined && this.#pid === undefined) this.#recordSpawnFailure(toError(error));
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
   * the stop signal, then SIGKILL to the group after the grace period.
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
      try {
        this.kill(options.signal ?? this.spec.stopSignal);
      } catch {
        this.kill("SIGTERM");
      }
    }
    const graceMs = Math.max(0, options.graceMs ?? this.spec.gracefulStopMs);
    this.#killAt = Date.now() + graceMs;
    this.#graceTimer = setTimeout(() => this.kill("SIGKILL"), graceMs);
    return this.#stopPromise;
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

  #onLeaderExit(code: number | null, signal: string | null): void {
    if (this.#leaderExit !== undefined) return;
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
      await Promise.race([
        this.#streamsClosed,
        sleep(STREAM_DRAIN_MS, undefined, { signal: drained.signal }).catch(() => undefined),
      ]);
      drained.abort();
    } catch {
      // Never let bookkeeping errors escape; the exit is still recorded below.
    }
    clearTimeout(this.#graceTimer);
    // Only a group seen empty stops further signals (its id could be reused); a stuck member can still be killed.
    this.#groupGone = gone;
    this.#partial.stdout.flush((line) => this.#addLine("stdout", line));
    this.#partial.stderr.flush((line) => this.#addLine("stderr", line));
    const leader = this.#leaderExit ?? { code: null, signal: null, at: Date.now() };
    const exit: ExitInfo = { code: leader.code, signal: leader.signal, at: leader.at, requested: this.#stopRequested };
    this.#exitInfo = exit;
    this.#phase = "exited";
    this.#resolveDone(exit);
    const listeners = this.#exitListeners.splice(0);
    emit(listeners, exit);
  }

  /** True once no live member is left; false when it gave up on a member that survives SIGKILL (D state). */
  async #waitForGroupGone(): Promise<boolean> {
    const pid = this.#pid;
    if (pid === undefined || this.#groupGone) return true;
    // A crash was SIGKILLed at once; a stop is SIGKILLed when its grace period ends.
    const giveUpAt = Math.max(this.#killAt ?? 0, Date.now()) + GIVE_UP_AFTER_KILL_MS;
    while (await groupAlive(pid)) {
      if (Date.now() >= giveUpAt) return false;
      await sleep(POLL_MS);
    }
    return true;
  }

  #readStream(stream: Readable | null | undefined, name: "stdout" | "stderr"): Promise<void> {
    if (stream == null) return Promise.resolve();
    const partial = this.#partial[name];
    const decoder = new TextDecoder();
    return new Promise((resolve) => {
      stream.on("data", (chunk: Buffer | string) => {
        const text = typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
        partial.push(text, (line) => this.#addLine(name, line));
      });
      stream.once("error", () => resolve());
      stream.once("close", () => {
        partial.push(decoder.decode(), (line) => this.#addLine(name, line));
        partial.flush((line) => this.#addLine(name, line));
        resolve();
      });
    });
  }

  #addLine(stream: "stdout" | "stderr", text: string): void {
    const line: OutputLine = { at: Date.now(), stream, line: text };
    this.#output.push(line);
    emit(this.#outputListeners, line);
  }
}

type ChildHandle = ReturnType<typeof execa>;

/**
 * The script given to /bin/sh. A simple command is exec'd, so the group leader
 * is the program itself: its exit status and signal are the ones reported, and
 * it receives signals without a shell in between (dash does not exec the last
 * command by itself). A compound command keeps its shell as leader; that shell
 * traps the signals apps use for reload or quiet (children still get the
 * default action), so a HUP or TSTP sent to the group is not mistaken for a
 * crash of the leader, while the stop signal still ends it.
 */
export function shellCommand(command: string): string {
  const trimmed = command.trim();
  if (isSimpleCommand(trimmed)) return trimmed.startsWith("exec ") ? trimmed : `exec ${trimmed}`;
  return `trap : HUP USR1 USR2 TSTP TTIN TTOU\n${command}`;
}

const SHELL_WORDS = new Set([
  "!", ".", ":", "alias", "break", "case", "cd", "command", "continue", "eval", "exit", "export", "for", "getopts",
  "hash", "if", "local", "read", "readonly", "return", "set", "shift", "source", "times", "trap", "type", "ulimit",
  "umask", "unalias", "unset", "until", "wait", "while",
]);

/** One command word with arguments: no lists, pipes, redirections, groups, substitutions or leading assignments. */
function isSimpleCommand(command: string): boolean {
  if (command === "" || /[;&|<>()`\n]/.test(command)) return false;
  const first = command.split(/\s+/, 1)[0] ?? "";
  return !first.includes("=") && !SHELL_WORDS.has(first);
}

const MAX_LINE_CHARS = 16 * 1024;
const POLL_MS = 10;
/** After the last SIGKILL, how long to wait for the group before reporting the exit anyway (a member stuck in D state). */
const GIVE_UP_AFTER_KILL_MS = 5_000;
const STREAM_DRAIN_MS = 1_000;

/** Whether any non-zombie member of the group is left. */
async function groupAlive(pgid: number): Promise<boolean> {
  try {
    process.kill(-pgid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
  }
  // kill(2) also finds zombies, which an unreaping PID 1 may keep forever.
  return (await groupHasLiveMembers(pgid)) ?? true;
}

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

/** The unterminated tail of a stream, capped at MAX_LINE_CHARS (the rest of an overlong line is dropped). */
class PartialLine {
  #text = "";
  #overflow = false;

  push(chunk: string, onLine: (line: string) => void): void {
    let rest = chunk;
    for (let newline = rest.indexOf("\n"); newline >= 0; newline = rest.indexOf("\n")) {
      this.#append(rest.slice(0, newline));
      onLine(this.#take());
      rest = rest.slice(newline + 1);
    }
    this.#append(rest);
  }

  flush(onLine: (line: string) => void): void {
    if (this.#text.length > 0 || this.#overflow) onLine(this.#take());
  }

  #append(text: string): void {
    if (this.#overflow || text.length === 0) return;
    const room = MAX_LINE_CHARS - this.#text.length;
    if (text.length > room) {
      this.#text += text.slice(0, room);
      this.#overflow = true;
    } else {
      this.#text += text;
    }
  }

  #take(): string {
    const line = this.#text.endsWith("\r") ? this.#text.slice(0, -1) : this.#text;
    this.#text = "";
    this.#overflow = false;
    return line;
  }
}

/** Fixed-capacity FIFO: pushing onto a full buffer drops the oldest entry. */
class RingBuffer<T> {
  readonly #items: (T | undefined)[];
  #start = 0;
  #size = 0;

  constructor(readonly capacity: number) {
    this.#items = new Array<T | undefined>(capacity);
  }

  push(item: T): void {
    const index = (this.#start + this.#size) % this.capacity;
    this.#items[index] = item;
    if (this.#size < this.capacity) {
      this.#size += 1;
    } else {
      this.#start = (this.#start + 1) % this.capacity;
    }
  }

  toArray(): T[] {
    const result: T[] = [];
    for (let i = 0; i < this.#size; i += 1) {
      result.push(this.#items[(this.#start + i) % this.capacity] as T);
    }
    return result;
  }
}
