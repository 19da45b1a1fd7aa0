// Port allocation for managed processes: probe by binding, never by guessing.
import net from "node:net";
import { RollbridgeError } from "../errors.js";

/** True when a TCP server can bind host:port right now (the probe server is closed again). */
export async function isPortFree(host: string, port: number): Promise<boolean> {
  return (await probePort(host, port)) === "free";
}

/**
 * First free port of `range` on `host`, skipping `exclude`. The scan starts
 * where the previous allocation for this range left off, so back-to-back
 * releases get different ports and a just-freed port (the old release's) is
 * reused last.
 */
export async function allocatePort(host: string, range: { from: number; to: number }, exclude: ReadonlySet<number>): Promise<number> {
  const size = range.to - range.from + 1;
  const key = `${host}|${range.from}-${range.to}`;
  const start = (cursors.get(key) ?? 0) % Math.max(size, 1);
  const failures = new Map<string, number>();
  for (let i = 0; i < size; i += 1) {
    const port = range.from + ((start + i) % size);
    // A port another allocation is probing right now is as good as taken.
    if (exclude.has(port) || probing.has(port)) continue;
    probing.add(port);
    let result: ProbeResult;
    try {
      result = await probePort(host, port);
    } finally {
      probing.delete(port);
    }
    if (result === "free") {
      cursors.set(key, port - range.from + 1);
      return port;
    }
    failures.set(result, (failures.get(result) ?? 0) + 1);
  }
  throw new RollbridgeError("PORT_RANGE_EXHAUSTED", `no free port in ${range.from}-${range.to} on ${host}`, {
    fix: "widen processes[].port or stop what holds those ports (ss -ltnp)",
    details: { host, from: range.from, to: range.to, excluded: [...exclude].sort((a, b) => a - b), failures: Object.fromEntries(failures) },
  });
}

/** "free", or the bind error code (EADDRINUSE, EACCES, EADDRNOTAVAIL, ...). */
type ProbeResult = "free" | string;

const cursors = new Map<string, number>();
const probing = new Set<number>();

function probePort(host: string, port: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? "EUNKNOWN"));
    server.listen({ host, port, exclusive: true }, () => {
      server.close(() => resolve("free"));
    });
  });
}
