// How a managed process's command runs: `/bin/sh -c` in its own session and
// process group. A simple command is exec'd so the program itself leads the
// group; a compound one keeps a shell that ignores the reload and quiet signals.
import { execa } from "execa";
import type { SpawnSpec } from "./types.js";

/** The spawned leader as execa returns it: a child process that is also a promise of its result. */
export type ShellChild = ReturnType<typeof execa>;

/** Spawns `spec.command` under /bin/sh as the leader of a new process group, its output to pipes or the given fds; a spawn failure may throw or arrive through the result. */
export function spawnShell(spec: SpawnSpec, output?: { stdout: number; stderr: number }): ShellChild {
  return execa("/bin/sh", ["-c", shellCommand(spec.command)], {
    cwd: spec.cwd,
    env: spec.env,
    extendEnv: false,
    stdin: "ignore",
    // Output FIFOs (output-fifo.ts) when given: they outlive the daemon, a pipe does not. (Typed
    // as "pipe" to keep one ShellChild type; with fds, child.stdout and child.stderr are null.)
    stdout: (output?.stdout ?? "pipe") as "pipe",
    stderr: (output?.stderr ?? "pipe") as "pipe",
    // Own session and process group: pgid = pid, so -pid reaches everything it spawns.
    detached: true,
    reject: false,
    // Output goes to the ring buffer only; execa must not accumulate it.
    buffer: false,
    forceKillAfterDelay: false,
    ipc: spec.ipc === true,
    serialization: "json",
  });
}

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
  "!",
  ".",
  ":",
  "alias",
  "break",
  "case",
  "cd",
  "command",
  "continue",
  "eval",
  "exit",
  "export",
  "for",
  "getopts",
  "hash",
  "if",
  "local",
  "read",
  "readonly",
  "return",
  "set",
  "shift",
  "source",
  "times",
  "trap",
  "type",
  "ulimit",
  "umask",
  "unalias",
  "unset",
  "until",
  "wait",
  "while",
]);

/**
 * The program a simple command runs (`node` of `exec node server.js`), when it can be read
 * without a shell: a first word of plain characters (no quotes, expansions or globs). Null for
 * compound commands and words only the shell can resolve.
 */
export function programOf(command: string): string | null {
  const trimmed = command.trim().replace(/^exec\s+/, "");
  if (!isSimpleCommand(trimmed)) return null;
  const first = trimmed.split(/\s+/, 1)[0] ?? "";
  return /^[A-Za-z0-9_.+/@%,:-]+$/.test(first) ? first : null;
}

/** One command word with arguments: no lists, pipes, redirections, groups, substitutions or leading assignments. */
function isSimpleCommand(command: string): boolean {
  if (command === "" || hasOperator(command)) return false;
  const first = command.split(/\s+/, 1)[0] ?? "";
  return !first.includes("=") && !SHELL_WORDS.has(first);
}

/**
 * True when the command has a list, pipe, redirection, group or substitution outside quotes
 * (quoted text is literal, so a quoted template value such as '/srv/app (copy)' is no operator).
 */
function hasOperator(command: string): boolean {
  let quote: "'" | '"' | null = null;
  for (let i = 0; i < command.length; i += 1) {
    const c = command[i]!;
    if (quote === "'") {
      if (c === "'") quote = null;
    } else if (quote === '"') {
      if (c === "\\") i += 1;
      else if (c === '"') quote = null;
      else if (c === "`" || (c === "$" && command[i + 1] === "(")) return true;
    } else if (c === "\\") {
      i += 1;
    } else if (c === "'" || c === '"') {
      quote = c;
    } else if (/[;&|<>()`\n]/.test(c)) {
      return true;
    }
  }
  return quote !== null;
}
