// Parsing the kernel's socket tables (/proc/net/tcp, /proc/net/tcp6) and /proc/<pid>/fd links:
// pure functions, so they are unit-tested on sample text. listener-owner.ts does the reading.
import net from "node:net";
import os from "node:os";

/** One LISTEN socket of /proc/net/tcp or /proc/net/tcp6. */
export interface TcpListener {
  family: 4 | 6;
  /** Canonical text form ("127.0.0.1", "::", "::ffff:127.0.0.1"). */
  address: string;
  port: number;
  /** The socket's owner as the kernel records it (the uid that created it). */
  uid: number;
  /** The socket inode: what /proc/<pid>/fd/N links to as `socket:[inode]`. */
  inode: number;
}

// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...; st 0A is LISTEN.
const LISTEN_ROW = /^\s*\d+:\s+([0-9A-Fa-f]+):([0-9A-Fa-f]{4})\s+\S+\s+0A\s+\S+\s+\S+\s+\S+\s+(\d+)\s+\d+\s+(\d+)(?:\s|$)/;

/**
 * The LISTEN sockets in the text of /proc/net/tcp (family 4) or /proc/net/tcp6 (family 6); the
 * header, other states (a busy host has thousands of connections) and malformed rows are
 * skipped. Addresses are printed by the kernel as 32-bit words in the host's byte order, hence
 * `littleEndian` (the machine's own order by default).
 */
export function parseTcpListeners(text: string, family: 4 | 6, littleEndian: boolean = os.endianness() === "LE"): TcpListener[] {
  const listeners: TcpListener[] = [];
  for (const line of text.split("\n")) {
    const match = LISTEN_ROW.exec(line);
    if (match === null) continue;
    const address = decodeAddress(match[1] ?? "", family, littleEndian);
    if (address === null) continue;
    listeners.push({ family, address, port: Number.parseInt(match[2] ?? "", 16), uid: Number(match[3]), inode: Number(match[4]) });
  }
  return listeners;
}

/** The inode of a `socket:[inode]` link target (readlink of /proc/<pid>/fd/N), else null. */
export function parseSocketLink(target: string): number | null {
  const match = /^socket:\[(\d+)\]$/.exec(target);
  return match ? Number(match[1]) : null;
}

/**
 * The LISTEN sockets on `port` that can accept a connection to one of `addresses` (the upstream
 * host's addresses, canonical): those bound to that address, to the wildcard of its family, and
 * for IPv4 also `::` (a dual-stack socket) and the IPv4-mapped IPv6 form.
 */
export function listenersFor(entries: readonly TcpListener[], addresses: readonly string[], port: number): TcpListener[] {
  const wanted = new Set<string>();
  for (const raw of addresses) {
    const address = canonicalAddress(raw);
    if (address === null) continue;
    if (net.isIPv4(address)) {
      wanted.add(`4|${address}`).add("4|0.0.0.0").add(`6|::ffff:${address}`).add("6|::");
    } else {
      wanted.add(`6|${address}`).add("6|::");
    }
  }
  return entries.filter((e) => e.port === port && wanted.has(`${e.family}|${e.address}`));
}

/** The canonical text form of an IP address (as net.SocketAddress prints it), or null for a non-address. */
export function canonicalAddress(address: string): string | null {
  const family = net.isIP(address);
  if (family === 0) return null;
  return new net.SocketAddress({ address, family: family === 4 ? "ipv4" : "ipv6" }).address;
}

/** "127.0.0.1:20001" or "[::1]:20001". */
export function formatEndpoint(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

function decodeAddress(hex: string, family: 4 | 6, littleEndian: boolean): string | null {
  const size = family === 4 ? 4 : 16;
  if (hex.length !== size * 2 || !/^[0-9A-Fa-f]+$/.test(hex)) return null;
  const bytes = Buffer.from(hex, "hex");
  if (littleEndian) {
    // Each 32-bit word was printed as a host-order integer: undo that per word.
    for (let offset = 0; offset < size; offset += 4) bytes.subarray(offset, offset + 4).reverse();
  }
  if (family === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  const groups: string[] = [];
  for (let offset = 0; offset < 16; offset += 2) groups.push(bytes.readUInt16BE(offset).toString(16));
  return canonicalAddress(groups.join(":"));
}
