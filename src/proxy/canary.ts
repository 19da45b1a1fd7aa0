// The canary split: while a canary step runs, `weight`% of new requests and new WebSockets go
// to the new release, the rest to the active (old) one. Which side a request takes:
// - sticky "none": an exact share, request by request (a running sum of the weight: 25% sends
//   every fourth request), so a step's share holds even over a few hundred requests;
// - sticky "ip": a hash of the client's address (the front proxy's X-Forwarded-For first entry
//   when it is a trusted peer) against the weight, so one client stays on one side, and a client
//   on the new side stays there as the weight rises;
// - sticky "cookie": the release cookie of proxy.affinity (`rb_release=<release id>`, set on every
//   response during the canary) names the side a client was given; without one (or naming
//   neither side), the running sum decides.
import type { IncomingMessage } from "node:http";
import type { ReleaseCookie } from "./affinity.js";
import type { ReleaseSlot, RouteTable, UpstreamPool } from "./route-table.js";
import type { TrustedPeers } from "./trusted-peers.js";

export type CanarySticky = "cookie" | "ip" | "none";

/** A canary step in the proxy: the new release and its share of new requests. */
export class CanarySplit<P extends UpstreamPool> {
  private sum = 0;

  /** With sticky "cookie": the release cookie responses set (the affinity one); else null. */
  readonly cookie: ReleaseCookie | null;

  constructor(
    readonly release: ReleaseSlot<P>,
    public weight: number,
    readonly sticky: CanarySticky,
    private readonly trust: TrustedPeers,
    private readonly table: RouteTable<P>,
    cookie: ReleaseCookie,
  ) {
    this.cookie = sticky === "cookie" ? cookie : null;
  }

  /** The new release when this request goes to it; null: the active release takes it. */
  choose(req: IncomingMessage): ReleaseSlot<P> | null {
    const release = this.release;
    if (release.ready.length === 0) return null;
    switch (this.sticky) {
      case "none":
        return this.next() ? release : null;
      case "ip":
        return addressBucket(clientAddress(req, this.trust)) < this.weight ? release : null;
      case "cookie": {
        const id = this.cookie?.read(req) ?? null;
        if (id === release.id) return release;
        if (id !== null && id === this.table.active?.id) return null;
        return this.next() ? release : null;
      }
      default: {
        const _exhaustive: never = this.sticky;
        return _exhaustive;
      }
    }
  }

  private next(): boolean {
    this.sum += this.weight;
    if (this.sum < 100) return false;
    this.sum -= 100;
    return true;
  }
}

/** 0..99 from an address, spread evenly (FNV-1a). */
export function addressBucket(address: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < address.length; i++) {
    h ^= address.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % 100;
}

/** The client's address: the first X-Forwarded-For entry from a trusted front proxy, else the peer's. */
export function clientAddress(req: IncomingMessage, trust: TrustedPeers): string {
  if (trust.trusts(req.socket)) {
    const xff = req.headers["x-forwarded-for"];
    const first = (Array.isArray(xff) ? xff[0] : xff)?.split(",")[0]?.trim();
    if (first) return first;
  }
  return req.socket.remoteAddress ?? "";
}
