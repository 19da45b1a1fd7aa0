// `rollbridge upgrade` (and SIGUSR2): the running daemon starts its successor from the
// installed code and hands it the listening sockets. The sockets go as descriptors (fd 3, 4, …
// of the successor, the way socket activation passes them), named in ROLLBRIDGE_HANDOVER; the
// two daemons talk over Node's IPC channel: the successor says "ready" once it has adopted every
// process, serves on the sockets and owns the control socket, or "failed" with the reason.
// Descriptors rather than `send(msg, handle)`: a net.Server that arrives over IPC is listening at
// once, and its connections would be accepted (and left unanswered) before the successor has
// adopted anything; a descriptor is accepted on only once the successor listens on it, so until
// then the old daemon alone serves, and connections in between wait in the shared backlog.
import { spawn, type ChildProcess } from "node:child_process";
import { RollbridgeError } from "../errors.js";
import { LISTEN_FDS_START, type InheritedListeners } from "./inherited-listeners.js";

/** The variable naming the predecessor and which passed descriptor is which listener. */
export const HANDOVER_ENV = "ROLLBRIDGE_HANDOVER";

/** What a successor finds in ROLLBRIDGE_HANDOVER. */
export interface Handover {
  /** The pid of the daemon handing over (its state file is adopted although it still runs). */
  from: number;
  listeners: InheritedListeners;
}

/** The listening descriptors of the running daemon, by name. */
export interface HandoverFds {
  proxy: number | null;
  proxySocket: number | null;
  metrics: number | null;
}

/** Messages over the IPC channel, successor → predecessor. */
export type SuccessorMessage = { type: "rollbridge-ready"; pid: number } | { type: "rollbridge-failed"; pid: number; message: string };

/**
 * Reads and removes ROLLBRIDGE_HANDOVER from `env` (no managed process inherits it). Null when
 * unset, or when this process has no IPC channel to its predecessor (then it starts as usual).
 */
export function takeHandover(env: NodeJS.ProcessEnv, hasChannel: boolean): Handover | null {
  const text = env[HANDOVER_ENV];
  delete env[HANDOVER_ENV];
  if (text === undefined || !hasChannel) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new RollbridgeError("CONFIG_INVALID", `${HANDOVER_ENV} is not JSON`, { fix: "it is set by `rollbridge upgrade` only: unset it" });
  }
  const value = parsed as { from?: unknown; proxy?: unknown; proxySocket?: unknown; metrics?: unknown };
  const fd = (v: unknown): number | null => (typeof v === "number" && Number.isInteger(v) && v >= LISTEN_FDS_START && v < LISTEN_FDS_START + 3 ? v : null);
  if (typeof value.from !== "number" || !Number.isInteger(value.from) || value.from <= 1) {
    throw new RollbridgeError("CONFIG_INVALID", `${HANDOVER_ENV} names no predecessor pid`, { fix: "it is set by `rollbridge upgrade` only: unset it" });
  }
  return { from: value.from, listeners: { proxy: fd(value.proxy), proxySocket: fd(value.proxySocket), metrics: fd(value.metrics), ignored: null } };
}

/** Tells the predecessor how the start went (no-op without a channel). */
export function tellPredecessor(message: SuccessorMessage): Promise<void> {
  return new Promise((resolve) => {
    if (typeof process.send !== "function" || !process.connected) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });
}

/** Closes the channel so neither daemon keeps the other alive. */
export function leavePredecessor(): void {
  if (process.connected) process.disconnect();
}

export interface SuccessorOptions {
  /** The CLI entry point (the installed code) and its Node flags. */
  script: string;
  execArgv: readonly string[];
  configPath: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  fds: HandoverFds;
  timeoutMs: number;
}

/** A started successor: its pid once it said ready. */
export interface StartedSuccessor {
  pid: number;
}

/**
 * Starts the successor daemon (detached: its own session, like one ensure-daemon starts; its
 * stdout and stderr are this daemon's, so the log file or the journal goes on) and resolves
 * once it says ready. Rejects with DAEMON_START_FAILED when it fails, exits or stays silent
 * past `timeoutMs`; a successor still running then is SIGKILLed by its pid.
 */
export function startSuccessor(options: SuccessorOptions): Promise<StartedSuccessor> {
  const passed: number[] = [];
  const names: Partial<Record<keyof HandoverFds, number>> = {};
  for (const key of ["proxy", "proxySocket", "metrics"] as const) {
    const fd = options.fds[key];
    if (fd === null) continue;
    names[key] = LISTEN_FDS_START + passed.length;
    passed.push(fd);
  }
  const env = { ...options.env, [HANDOVER_ENV]: JSON.stringify({ from: process.pid, ...names }), ROLLBRIDGE_DAEMON_REEXEC: "handover" };
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [...options.execArgv, options.script, "daemon", "--config", options.configPath], {
      detached: true,
      cwd: options.cwd,
      env,
      stdio: ["ignore", "inherit", "inherit", ...passed, "ipc"],
    });
  } catch (cause) {
    return Promise.reject(new RollbridgeError("DAEMON_START_FAILED", `could not start the new daemon: ${(cause as Error).message}`, { cause }));
  }
  return new Promise<StartedSuccessor>((resolve, reject) => {
    let settled = false;
    const finish = (error: RollbridgeError | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.removeAllListeners("message");
      if (error === null) {
        child.unref();
        if (child.connected) child.disconnect();
        resolve({ pid: child.pid as number });
        return;
      }
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        try {
          process.kill(child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      reject(error);
    };
    const fix = "the running daemon keeps serving, untouched; fix the cause (rollbridge validate, the daemon log) and run rollbridge upgrade again";
    const timer = setTimeout(() => finish(new RollbridgeError("DAEMON_START_FAILED", `the new daemon (pid ${child.pid ?? "?"}) did not get ready within ${options.timeoutMs} ms`, { fix })), options.timeoutMs);
    child.on("message", (message: SuccessorMessage) => {
      if (message?.type === "rollbridge-ready" && message.pid === child.pid) finish(null);
      else if (message?.type === "rollbridge-failed") finish(new RollbridgeError("DAEMON_START_FAILED", `the new daemon (pid ${child.pid ?? "?"}) failed to start: ${message.message}`, { fix }));
    });
    child.once("error", (error) => finish(new RollbridgeError("DAEMON_START_FAILED", `could not start the new daemon: ${error.message}`, { cause: error, fix })));
    child.once("exit", (code, signal) => finish(new RollbridgeError("DAEMON_START_FAILED", `the new daemon (pid ${child.pid ?? "?"}) exited (${signal ? `signal ${signal}` : `code ${code}`}) before it was ready`, { fix })));
  });
}
