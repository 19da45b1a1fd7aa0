// The route table: releases with their backends, the active-release pointer, per-release
// connection tracking, and the requests held while the active release has no ready backend.
// It knows nothing about HTTP libraries: the adapter passes in how to create an upstream pool.

import type { IncomingMessage } from "node:http";
import type { CanarySplit } from "./canary.js";
import type { CutOptions } from "./closing.js";
import type { ResponseWindow } from "./response-window.js";
import type { Backend, ReleaseConnections } from "./types.js";

/** What the table needs from an upstream connection pool (undici's Pool fits). */
export interface UpstreamPool {
  close(): Promise<void>;
  destroy(): Promise<void>;
}

/**
 * An in-flight request or an open WebSocket that closeRelease/close must be able to end. The
 * links make it a member of one TrackedList without allocating per request (a Set churned at
 * tens of thousands of adds/deletes a second shows up as GC time).
 */
export interface Tracked {
  /** Ends it now (the proxy is closing). */
  destroy(): void;
  /** Ends it as cleanly as its protocol allows (the drain deadline); its sockets go to `options.closer`. */
  cut(options: CutOptions): void;
  prevTracked: Tracked | null;
  nextTracked: Tracked | null;
}

/** An intrusive doubly-linked list of Tracked items: O(1) add/delete, no allocation. */
export class TrackedList {
  size = 0;
  private head: Tracked | null = null;

  add(item: Tracked): void {
    item.prevTracked = null;
    item.nextTracked = this.head;
    if (this.head !== null) this.head.prevTracked = item;
    this.head = item;
    this.size++;
  }

  /** Only for an item currently in this list. */
  delete(item: Tracked): void {
    const { prevTracked: prev, nextTracked: next } = item;
    if (prev !== null) prev.nextTracked = next;
    else this.head = next;
    if (next !== null) next.prevTracked = prev;
    item.prevTracked = null;
    item.nextTracked = null;
    this.size--;
  }

  toArray(): Tracked[] {
    const items: Tracked[] = [];
    for (let item = this.head; item !== null; item = item.nextTracked) items.push(item);
    return items;
  }

  clear(): void {
    this.head = null;
    this.size = 0;
  }
}

/** A request or upgrade waiting for a ready backend; tryRoute returns false to keep waiting. */
export interface Waiter extends Tracked {
  tryRoute(): boolean;
}

/** A release and the backend of it that a held request goes to (see RouteTable.heldRoute). */
export interface HeldRoute<P extends UpstreamPool> {
  release: ReleaseSlot<P>;
  backend: BackendSlot<P>;
}

export interface BackendSlot<P extends UpstreamPool> {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  /** "http://host:port" */
  readonly origin: string;
  ready: boolean;
  /** In-flight HTTP requests plus open WebSockets on this backend (least-outstanding balancing). */
  outstanding: number;
  readonly pool: P;
}

export interface ReleaseSlot<P extends UpstreamPool> {
  readonly key: string;
  /** The release's display id (what the release cookie names); its key until one is given. */
  id: string;
  /**
   * May a pinned client (affinity, a sticky canary) reach it? Set when it becomes active, so a
   * release that was never switched to is never reachable by a cookie; gone with the release.
   */
  pinnable: boolean;
  /** When affinity last routed a request here while another release was active (epoch ms, 0: never). */
  lastPinnedAt: number;
  backends: BackendSlot<P>[];
  /** The subset of `backends` that may receive traffic, in the order given. */
  ready: BackendSlot<P>[];
  /** Round-robin cursor used to break ties between equally loaded backends. */
  rr: number;
  readonly inflight: TrackedList;
  readonly websockets: TrackedList;
  /** Pools of backends removed by setBackends, closing gracefully. */
  readonly retiring: Set<P>;
  /** Its responses over a sliding window while it is judged (a canary step, its bake window). */
  judge: ResponseWindow | null;
}

/** Releases, the active pointer, and held requests; one instance per proxy. */
export class RouteTable<P extends UpstreamPool> {
  active: ReleaseSlot<P> | null = null;
  /** A canary step: its release takes a share of new requests beside the active one. */
  canary: CanarySplit<P> | null = null;
  /** New requests and upgrades are held (hold timeout, then 503): by `rollbridge pause`, or at the daemon's start. */
  paused = false;
  /** `rollbridge pause` until `rollbridge resume`: what status reports as paused. */
  pausedByUser = false;
  private startHold = false;
  private readonly releases = new Map<string, ReleaseSlot<P>>();
  private readonly byId = new Map<string, ReleaseSlot<P>>();
  private readonly waiters = new Set<Waiter>();
  private readonly createPool: (origin: string) => P;

  constructor(createPool: (origin: string) => P) {
    this.createPool = createPool;
  }

  /** Replaces a release's backends, keeping the pool of every backend that is still listed. */
  setBackends(releaseKey: string, backends: Backend[], releaseId?: string): void {
    const release = this.ensure(releaseKey);
    if (releaseId !== undefined && releaseId !== release.id) {
      if (this.byId.get(release.id) === release) this.byId.delete(release.id);
      release.id = releaseId;
    }
    this.byId.set(release.id, release);
    const previous = new Map<string, BackendSlot<P>>();
    for (const slot of release.backends) previous.set(slotKey(slot), slot);
    const next: BackendSlot<P>[] = [];
    for (const backend of backends) {
      const key = slotKey(backend);
      let slot = previous.get(key);
      if (slot === undefined) {
        const origin = `http://${backend.host.includes(":") ? `[${backend.host}]` : backend.host}:${backend.port}`;
        slot = { id: backend.id, host: backend.host, port: backend.port, origin, ready: backend.ready, outstanding: 0, pool: this.createPool(origin) };
      } else {
        previous.delete(key);
        slot.ready = backend.ready;
      }
      if (!next.includes(slot)) next.push(slot);
    }
    for (const gone of previous.values()) this.retire(release, gone.pool);
    release.backends = next;
    release.ready = next.filter((slot) => slot.ready);
    this.wake();
  }

  setActive(releaseKey: string | null): void {
    this.active = releaseKey === null ? null : this.ensure(releaseKey);
    if (this.active !== null) this.active.pinnable = true;
    this.wake();
  }

  /** Allows or forbids pinned clients to reach a release (a canary that lost is forbidden at once). */
  setPinnable(releaseKey: string, pinnable: boolean): void {
    const release = this.releases.get(releaseKey);
    if (release !== undefined) release.pinnable = pinnable;
  }

  /** The release named `releaseId` when a pinned client may reach it now (pinnable, a ready backend), else null. */
  pinned(releaseId: string): ReleaseSlot<P> | null {
    const release = this.byId.get(releaseId);
    return release !== undefined && release.pinnable && release.ready.length > 0 ? release : null;
  }

  /** As pinned(), by release key. */
  pinnedByKey(releaseKey: string): ReleaseSlot<P> | null {
    const release = this.releases.get(releaseKey);
    return release !== undefined && release.pinnable && release.ready.length > 0 ? release : null;
  }

  /** The release slot for a key, if the table has it. */
  peek(releaseKey: string): ReleaseSlot<P> | undefined {
    return this.releases.get(releaseKey);
  }

  /** The release slot for a key (created when unknown). */
  slot(releaseKey: string): ReleaseSlot<P> {
    return this.ensure(releaseKey);
  }

  /** Holds new requests (pause) or lets the held ones go, oldest first (resume). */
  setPaused(paused: boolean): void {
    this.pausedByUser = paused;
    this.updateHold();
  }

  /** Holds new requests while the daemon starts (until it adopted what an earlier one left); a pause outlives it. */
  setStartHold(hold: boolean): void {
    this.startHold = hold;
    this.updateHold();
  }

  private updateHold(): void {
    this.paused = this.pausedByUser || this.startHold;
    if (!this.paused) this.wake();
  }

  /** Least outstanding among the release's ready backends, ties broken round-robin; null if none. */
  pick(release: ReleaseSlot<P>, exclude: readonly BackendSlot<P>[] | null): BackendSlot<P> | null {
    const ready = release.ready;
    const n = ready.length;
    if (n === 1 && exclude === null) return ready[0] as BackendSlot<P>;
    if (n === 0) return null;
    const start = release.rr;
    release.rr = start + 1 >= n ? 0 : start + 1;
    let best: BackendSlot<P> | null = null;
    for (let i = 0; i < n; i++) {
      const slot = ready[(start + i) % n] as BackendSlot<P>;
      if (exclude !== null && exclude.includes(slot)) continue;
      if (best === null || slot.outstanding < best.outstanding) best = slot;
    }
    return best;
  }

  hold(waiter: Waiter): void {
    this.waiters.add(waiter);
  }

  /**
   * Where a held request or upgrade goes now: the canary's choice, else the active release, and
   * a ready backend of it. Null keeps it waiting (paused, or no ready backend yet).
   */
  heldRoute(req: IncomingMessage): HeldRoute<P> | null {
    if (this.paused) return null;
    const release = this.canary?.choose(req) ?? this.active;
    if (release === null) return null;
    const backend = this.pick(release, null);
    return backend === null ? null : { release, backend };
  }

  unhold(waiter: Waiter): void {
    this.waiters.delete(waiter);
  }

  connections(releaseKey: string): ReleaseConnections {
    const release = this.releases.get(releaseKey);
    if (release === undefined) return { inflight: 0, websockets: 0 };
    const counts: ReleaseConnections = { inflight: release.inflight.size, websockets: release.websockets.size };
    if (release.lastPinnedAt > 0) counts.lastPinnedAt = release.lastPinnedAt;
    return counts;
  }

  backendOutstanding(releaseKey: string, backendId: string, port: number): number {
    const release = this.releases.get(releaseKey);
    if (release === undefined) return 0;
    for (const slot of release.backends) if (slot.id === backendId && slot.port === port) return slot.outstanding;
    return 0;
  }

  /**
   * Forgets the release and ends what it still has: each in-flight request and WebSocket is cut
   * as cleanly as its protocol allows, their sockets get up to `waitMs` to finish closing, then
   * the rest is destroyed and the release's pools with it.
   */
  async closeRelease(releaseKey: string, options: CutOptions, waitMs: number): Promise<void> {
    const release = this.releases.get(releaseKey);
    if (release === undefined) return;
    this.forget(release);
    if (this.canary?.release === release) this.canary = null;
    release.judge = null;
    for (const tracked of release.inflight.toArray()) tracked.cut(options);
    for (const tracked of release.websockets.toArray()) tracked.cut(options);
    release.inflight.clear();
    release.websockets.clear();
    await options.closer.settle(waitMs);
    await destroyRelease(release);
  }

  /** The keys of every release the table still has (active, canary, draining). */
  releaseKeys(): string[] {
    return [...this.releases.keys()];
  }

  /** Ends everything: held requests, every release, every pool. */
  async closeAll(): Promise<void> {
    const held = [...this.waiters];
    this.waiters.clear();
    for (const waiter of held) waiter.destroy();
    const releases = [...this.releases.values()];
    this.releases.clear();
    this.byId.clear();
    this.active = null;
    this.canary = null;
    await Promise.all(releases.map(destroyRelease));
  }

  private ensure(releaseKey: string): ReleaseSlot<P> {
    let release = this.releases.get(releaseKey);
    if (release === undefined) {
      release = { key: releaseKey, id: releaseKey, pinnable: false, lastPinnedAt: 0, backends: [], ready: [], rr: 0, inflight: new TrackedList(), websockets: new TrackedList(), retiring: new Set(), judge: null };
      this.releases.set(releaseKey, release);
      this.byId.set(release.id, release);
    }
    return release;
  }

  private forget(release: ReleaseSlot<P>): void {
    this.releases.delete(release.key);
    if (this.byId.get(release.id) === release) this.byId.delete(release.id);
    release.pinnable = false;
    if (this.active === release) this.active = null;
  }

  private retire(release: ReleaseSlot<P>, pool: P): void {
    release.retiring.add(pool);
    pool.close().then(
      () => release.retiring.delete(pool),
      () => release.retiring.delete(pool),
    );
  }

  // Offers every held request, oldest first, the (possibly new) active release. A waiter that
  // fails synchronously and holds again is not offered twice in one pass.
  private wake(): void {
    if (this.waiters.size === 0) return;
    const held = [...this.waiters];
    this.waiters.clear();
    for (const waiter of held) {
      if (!waiter.tryRoute()) this.waiters.add(waiter);
    }
  }
}

function slotKey(backend: { id: string; host: string; port: number }): string {
  return `${backend.id}\u0000${backend.host}\u0000${backend.port}`;
}

async function destroyRelease<P extends UpstreamPool>(release: ReleaseSlot<P>): Promise<void> {
  for (const tracked of release.inflight.toArray()) tracked.destroy();
  for (const tracked of release.websockets.toArray()) tracked.destroy();
  release.inflight.clear();
  release.websockets.clear();
  const pools = [...release.backends.map((slot) => slot.pool), ...release.retiring];
  release.backends = [];
  release.ready = [];
  await Promise.all(pools.map((pool) => pool.destroy().catch(() => undefined)));
}
