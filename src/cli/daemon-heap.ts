// The daemon's own V8 heap settings. A smaller young generation keeps the daemon's RSS lower,
// and a smaller one than this costs CPU per request for little memory (docs/systemd.md#memory
// has the measurements). V8 reads the flag only when Node starts, so
// `rollbridge daemon` started without it starts again with it, once:
// - Node with process.execve (22.15+): the process replaces itself, keeping its pid, so a pid
//   file, LISTEN_PID and systemd's main pid go on naming the process that serves;
// - older Node, or sockets passed by socket activation (Node's execve keeps only stdio open):
//   the daemon runs as a child in its own process group, and this process forwards
//   the signals it gets and ends as the child ends (its exit code, or the signal that killed
//   it). Passed sockets (LISTEN_FDS) go to the child, which takes LISTEN_PID as its own; the
//   daemon's pid (status, events, the config record, systemd's MAINPID) is the child's.
// A flag the user gave (NODE_OPTIONS, node's command line; any value) is theirs and wins, and
// ROLLBRIDGE_DAEMON_REEXEC set in the environment (to anything, e.g. `off`) starts nothing.
//
// One more V8 setting is made at run time instead, so it needs no second start and works
// wherever the daemon starts from (NODE_OPTIONS refuses it): WebAssembly stays on V8's
// baseline compiler (Liftoff). undici's HTTP parser is WebAssembly, compiled at the proxy's
// first upstream connection; its optimising tier-up, once traffic gets busy, took ~35 MB of
// RSS for a moment (measured here under 50 connections: peak 112-118 MB with it, 78-81 MB
// without, idle and CPU per request the same within the noise).
import { spawn, type ChildProcess } from "node:child_process";
import { setFlagsFromString } from "node:v8";

/** What the daemon adds to Node's command line when it is missing. */
export const DAEMON_HEAP_FLAGS: readonly string[] = ["--max-semi-space-size=4"];

/** Set in the restarted daemon's environment (to the pid that restarted it), so it happens once. */
export const REEXEC_ENV = "ROLLBRIDGE_DAEMON_REEXEC";

/** Set at run time (see the header) unless the user gave it, or its --no- form, to node. */
export const DAEMON_RUNTIME_FLAG = "--liftoff-only";

/** The signals a parent passes on to the daemon it runs. */
const FORWARDED: readonly NodeJS.Signals[] = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR2"];

/** The flags of DAEMON_HEAP_FLAGS whose option is in neither `execArgv` nor `nodeOptions` (`--a_b` is `--a-b` to V8). */
export function missingHeapFlags(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const given = [...execArgv, ...(nodeOptions ?? "").split(/\s+/)].map(optionName);
  return DAEMON_HEAP_FLAGS.filter((flag) => !given.includes(optionName(flag)));
}

/** How `rollbridge daemon` goes on: here (flags present, or already restarted), or as this child. */
export type HeapStart = { kind: "here" } | { kind: "child"; child: ChildProcess };

/**
 * Restarts the daemon with the heap flags when they are missing (see the header). Returns only
 * when this process is to run the daemon itself, or when it started the daemon as a child.
 * In the restarted daemon, removes the marker and adopts LISTEN_PID meant for its parent.
 */
export function startWithHeapFlags(env: NodeJS.ProcessEnv = process.env): HeapStart {
  const marker = env[REEXEC_ENV];
  if (marker !== undefined) {
    delete env[REEXEC_ENV];
    // Started as the child of a parent that was given the sockets: they are ours now.
    if (marker === String(process.ppid) && env.LISTEN_PID === marker) env.LISTEN_PID = String(process.pid);
    return { kind: "here" };
  }
  const missing = missingHeapFlags(process.execArgv, env.NODE_OPTIONS);
  const script = process.argv[1];
  if (missing.length === 0 || script === undefined) return { kind: "here" };
  const args = [...process.execArgv, ...missing, script, ...process.argv.slice(2)];
  const childEnv = { ...env, [REEXEC_ENV]: String(process.pid) };
  const passed = env.LISTEN_PID === String(process.pid) && /^[1-9][0-9]?$/.test(env.LISTEN_FDS ?? "") ? Number(env.LISTEN_FDS) : 0;
  // Node's execve closes every descriptor but stdio: with passed sockets, a child gets them.
  const execve = (process as { execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never }).execve;
  if (typeof execve === "function" && passed === 0) execve.call(process, process.execPath, [process.execPath, ...args], childEnv);
  const child = spawn(process.execPath, args, {
    // Its own process group: a Ctrl-C reaches it once, through the forwarding below.
    detached: true,
    stdio: ["inherit", "inherit", "inherit", ...Array.from({ length: passed }, (_, i) => 3 + i)],
    env: childEnv,
  });
  return { kind: "child", child };
}

/**
 * Keeps WebAssembly on the baseline compiler (see the header) unless node's command line
 * names the option (`--liftoff-only`, `--no-liftoff-only`, underscores or not). Called before
 * anything compiles WebAssembly: V8 reads the flag when it compiles a module. Returns whether it was set.
 */
export function applyRuntimeFlags(execArgv: readonly string[] = process.execArgv): boolean {
  if (!needsRuntimeFlag(execArgv)) return false;
  setFlagsFromString(DAEMON_RUNTIME_FLAG);
  return true;
}

/** True unless `execArgv` already says something about DAEMON_RUNTIME_FLAG's option. */
export function needsRuntimeFlag(execArgv: readonly string[]): boolean {
  const wanted = optionName(DAEMON_RUNTIME_FLAG);
  return !execArgv.some((arg) => {
    const name = optionName(arg);
    return name === wanted || name === wanted.replace(/^--/, "--no-");
  });
}

/** Forwards signals to the daemon child until it ends; resolves with its exit code, or ends this process with its signal. */
export function followDaemonChild(child: ChildProcess): Promise<number> {
  const handlers = FORWARDED.map((signal) => {
    const handler = () => void child.kill(signal);
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  return new Promise((resolve) => {
    const done = (code: number | null, signal: NodeJS.Signals | null) => {
      for (const [s, handler] of handlers) process.off(s, handler);
      // Died of a signal: so does this process, for whoever waits on it (a shell shows 143, systemd the signal).
      if (signal !== null) process.kill(process.pid, signal);
      resolve(code ?? 1);
    };
    child.once("exit", done);
    child.once("error", (error) => {
      process.stderr.write(`rollbridge: could not start the daemon with ${DAEMON_HEAP_FLAGS.join(" ")}: ${error.message}\n`);
      done(1, null);
    });
  });
}

function optionName(arg: string): string {
  const name = arg.split("=")[0] ?? arg;
  return name.startsWith("--") ? `--${name.slice(2).replaceAll("_", "-")}` : name;
}
