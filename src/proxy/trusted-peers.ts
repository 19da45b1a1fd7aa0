// Which peers may speak for their clients: X-Forwarded-* from a trusted peer (nginx on loopback,
// a load balancer's subnet, anything on the unix-socket listener) are kept and appended to; from
// anyone else they are replaced by what the proxy itself sees. Decided once per connection.

import { BlockList, isIP } from "node:net";
import type { Socket } from "node:net";

const kTrust = Symbol("rollbridge.trust");
const kUnixPeer = Symbol("rollbridge.unixPeer");

type MarkedSocket = Socket & { [kTrust]?: boolean; [kUnixPeer]?: true };

/** Marks a connection accepted on the unix-socket listener: its peer is trusted (the socket's mode and group decide who can connect). */
export function markUnixPeer(socket: Socket): void {
  (socket as MarkedSocket)[kUnixPeer] = true;
}

/** True for a connection accepted on the unix-socket listener. */
export function isUnixPeer(socket: Socket): boolean {
  return (socket as MarkedSocket)[kUnixPeer] === true;
}

/** The trusted address blocks; `trusts` caches its answer on the socket, so keep-alive requests cost one property read. */
export class TrustedPeers {
  private readonly blocks = new BlockList();

  /** `cidrs`: addresses or CIDR blocks, IPv4 and IPv6 (validated by the config; a bad entry throws). */
  constructor(cidrs: readonly string[]) {
    for (const entry of cidrs) {
      const slash = entry.indexOf("/");
      const address = slash === -1 ? entry : entry.slice(0, slash);
      const family = isIP(address);
      if (family === 0) throw new Error(`trusted proxy ${JSON.stringify(entry)} is not an address or CIDR block`);
      const type = family === 4 ? "ipv4" : "ipv6";
      const prefix = slash === -1 ? (family === 4 ? 32 : 128) : Number(entry.slice(slash + 1));
      this.blocks.addSubnet(address, prefix, type);
    }
  }

  trusts(socket: Socket): boolean {
    const marked = socket as MarkedSocket;
    const known = marked[kTrust];
    if (known !== undefined) return known;
    const answer = this.decide(marked);
    marked[kTrust] = answer;
    return answer;
  }

  private decide(socket: MarkedSocket): boolean {
    if (socket[kUnixPeer] === true) return true;
    // A TCP peer whose address is unknown (the socket already closed) is never trusted.
    const address = socket.remoteAddress;
    if (address === undefined) return false;
    // BlockList matches IPv4-mapped IPv6 addresses (::ffff:127.0.0.1) against IPv4 blocks.
    return this.blocks.check(address, socket.remoteFamily === "IPv6" || address.includes(":") ? "ipv6" : "ipv4");
  }
}
