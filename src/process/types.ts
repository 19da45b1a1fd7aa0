// A managed OS process: spawned in its own process group, its exit recorded as data.

export type ProcessPhase = "starting" | "running" | "stopping" | "exited";

export interface SpawnSpec {
  /** Instance id, e.g. "web" or "worker#2". */
  instanceId: string;
  /** Shell command line (run through /bin/sh -c). Already templated. */
  command: string;
  cwd: string;
  /** Full environment for the child (caller merges process.env, ROLLBRIDGE_* and config env). */
  env: Record<string, string>;
  /** Lines of stdout+stderr to retain. */
  outputLines: number;
  stopSignal: NodeJS.Signals;
  /** "process": the stop signal goes to the leader only (it stops its own children); SIGKILL always goes to the group. Default "group". */
  stopSignalTarget?: "group" | "process";
  gracefulStopMs: number;
  /** Open an IPC channel (for Node children that call process.send). */
  ipc?: boolean;
  /** stdout and stderr as FIFOs that outlive the daemon (output-fifo.ts); plain pipes when unset. */
  output?: { stdout: string; stderr: string };
}

export interface ExitInfo {
  code: number | null;
  signal: string | null;
  at: number;
  /** True when the exit followed a stop() we requested. */
  requested: boolean;
  /** The exit status is unknown: an adopted process is not the daemon's child, so only its disappearance is seen. */
  unknown?: true;
}

/** One line a process wrote, with when, which stream, and which OS process (a slot has one per restart). */
export interface OutputLine {
  at: number;
  stream: "stdout" | "stderr";
  pid: number | null;
  line: string;
}
