// The port a restarting slot runs on. A slot keeps its port across crash restarts (nginx-style
// configs and logs stay readable), but someone may have bound it while the slot was down —
// another local user waiting for exactly that. Then the restart moves to a free port of the
// range instead of failing on the old one forever, and never sends traffic there.
import { RollbridgeError } from "../errors.js";
import { describeHolders, portHolders, type ListenerHolder } from "../process/listener-owner.js";
import { allocatePort, isPortFree } from "../process/ports.js";

/** A move away from a taken port: the new port, and who holds the old one. */
export interface PortMove {
  port: number;
  holders: ListenerHolder[];
  /** "held by pid 4242 (uid 1001)", or "in use" when no listener can be named. */
  heldBy: string;
}

/**
 * Null while `old` is free (the restart reuses it); else a free port of `range` (skipping
 * `inUse`, which holds `old`). Throws PORT_RANGE_EXHAUSTED, naming the holder, when there is none
 * (a fixed port): the restart is retried with its backoff and takes the port once it is free.
 */
export async function portForRestart(host: string, range: { from: number; to: number }, old: number, inUse: ReadonlySet<number>, instanceId: string, processId: string): Promise<PortMove | null> {
  if (await isPortFree(host, old)) return null;
  const holders = await portHolders(host, old);
  const heldBy = holders.length ? `held by ${describeHolders(holders)}` : "in use";
  try {
    return { port: await allocatePort(host, range, inUse), holders, heldBy };
  } catch (error) {
    throw new RollbridgeError("PORT_RANGE_EXHAUSTED", `${instanceId}'s port ${old} is ${heldBy}, and no other port of ${range.from}-${range.to} is free`, {
      cause: error,
      fix: `stop what holds port ${old} (ss -ltnp 'sport = :${old}'), or give processes[${processId}].port a range`,
    });
  }
}
