// Asking the daemon (if one answers) what it manages, for commands that also work without one
// (recover, predeploy-cleanup): its pid and its processes must never be treated as leftovers.
import type { Config } from "../config/resolved-config.js";
import { request } from "../control/client.js";
import { endpointFor } from "./context.js";
import { RollbridgeError, errorMessage, isRollbridgeError } from "../errors.js";
import type { StatusDocument } from "../control/protocol.js";

/** What a running daemon manages. */
export interface LiveDaemon {
  pid: number;
  activeReleaseId: string | null;
  /** The daemon's pid and the pid (= process group) of every process it reports. */
  managed: Set<number>;
}

/** The daemon answering on control.path, or null when none does. Other failures are thrown. */
export async function liveDaemon(config: Config): Promise<LiveDaemon | null> {
  let status: StatusDocument;
  try {
    status = await request<StatusDocument>(await endpointFor(config), "GET", "/status", undefined, 5000);
  } catch (error) {
    if (isRollbridgeError(error, "DAEMON_NOT_RUNNING")) return null;
    // A socket that is not the daemon's: refused as it is (nothing was sent, nothing is stopped).
    if (isRollbridgeError(error, "UNTRUSTED_SOCKET")) throw error;
    // Something holds the socket but cannot say what it manages: stopping anything now would be a guess.
    throw new RollbridgeError("TIMEOUT", `a daemon holds ${config.control.path} but did not answer (${errorMessage(error)}): cannot tell which processes it manages, so nothing was stopped`, {
      cause: error,
      fix: "check that daemon (its log, rollbridge status); once it answers or is stopped, run this again",
    });
  }
  const managed = new Set<number>([status.daemonPid]);
  for (const p of status.processes) if (typeof p.pid === "number") managed.add(p.pid);
  return { pid: status.daemonPid, activeReleaseId: status.activeRelease?.id ?? null, managed };
}
