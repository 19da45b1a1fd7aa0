// Port allocation for managed processes: probe by binding, never by guessing.
import { readFileSync } from "node:fs";
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

/** Ports of a range the kernel may also hand out as local ports of outgoing connections. */
export interface EphemeralOverlap {
  /** The kernel's ephemeral range (net.ipv4.ip_local_port_range). */
  ephemeral: { from: number; to: number };
  /** How many ports of the range are in it and not reserved (net.ipv4.ip_local_reserved_ports). */
  exposed: number;
  /** The lowest and highest of those ports. */
  first: number;
  last: number;
  /** ip_local_reserved_ports as it is now ("" when nothing is reserved), for a fix that keeps it. */
  reserved: string;
}

const EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range";
const RESERVED_PORTS_FILE = "/proc/sys/net/ipv4/ip_local_reserved_ports";

/**
 * Which ports of `range` lie in the kernel's ephemeral range and are not reserved from it: any
 * outgoing connection on the host (an app's database pool, a health probe) may take one as its
 * local port between the daemon choosing it and the app listening on it, and the app's listen
 * then fails with EADDRINUSE. Null when none does, or off Linux (no /proc/sys to read).
 */
export function ephemeralOverlap(range: { from: number; to: number }, read: (file: string) => string = (file) => readFileSync(file, "utf8")): EphemeralOverlap | null {
  let ephemeral: { from: number; to: number };
  let reservedText: string;
  try {
    const [from, to] = read(EPHEMERAL_RANGE_FILE).trim().split(/\s+/).map(Number);
    if (!Number.isInteger(from) || !Number.isInteger(to)) return null;
    ephemeral = { from: from as number, to: to as number };
  } catch {
    return null;
  }
  try {
    reservedText = read(RESERVED_PORTS_FILE).trim();
  } catch {
    reservedText = "";
  }
  const reserved = parsePortList(reservedText);
  let exposed = 0;
  let first = 0;
  let last = 0;
  for (let port = Math.max(range.from, ephemeral.from); port <= Math.min(range.to, ephemeral.to); port++) {
    if (reserved.some((r) => port >= r.from && port <= r.to)) continue;
    if (exposed === 0) first = port;
    last = port;
    exposed++;
  }
  return exposed === 0 ? null : { ephemeral, exposed, first, last, reserved: reservedText };
}

/** `8080,9000-9100` (ip_local_reserved_ports' format) as ranges; malformed entries are skipped. */
function parsePortList(text: string): Array<{ from: number; to: number }> {
  const out: Array<{ from: number; to: number }> = [];
  for (const item of text.split(",")) {
    const [a, b] = item.trim().split("-").map(Number);
    if (Number.isInteger(a)) out.push({ from: a as number, to: Number.isInteger(b) ? (b as number) : (a as number) });
  }
  return out;
}
