// Types of bench/socket-holder.mjs, for the tests that import it (test/helpers/socket-holder.ts).
import type { ChildProcess, SpawnOptions } from "node:child_process";

export interface SocketHolder {
  /** The held socket's port (give it to the config as proxy.port). */
  port: number;
  /** The pid of every daemon started so far, in order (the last one is the current daemon). */
  starts: number[];
  /** Starts the restart loop with the held socket as fd 3 (usable as startDaemon's spawnDaemon); its stdout and stderr are pipes. */
  spawn(command: string, args: string[], options: SpawnOptions): ChildProcess;
  /** Waits until daemon number `n` (1-based) has been started and returns its pid. */
  started(n: number, timeoutMs?: number): Promise<number>;
  /** Stops restarting (SIGKILL to the loop), then SIGTERM to the current daemon and waits until it is gone (SIGKILL after 15 s). */
  stop(): Promise<void>;
}

export function holdSocket(): Promise<SocketHolder>;
