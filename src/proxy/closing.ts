// The clean cut of a release's connections at its drain deadline: each connection is ended as
// its protocol allows (a WebSocket close frame each way, the last chunk of a stream, a 504), and
// its sockets get a short, bounded time to finish that exchange with their peer. Whatever is
// still open after it is destroyed, so the cut never waits on a peer that does not answer.

import type { Duplex } from "node:stream";

/** How a cut closes what it finds; one per closeRelease. */
export interface CutOptions {
  /** The WebSocket close code sent both ways: 1001 (going away) or 1012 (service restart). */
  closeCode: number;
  /** Sockets that must close before the cut is over. */
  closer: SocketCloser;
}

/** The reason text of the proxy's close frames. */
export const CLOSE_REASON = "release retired";

/** Waits, up to a bound, for a set of sockets to close; then destroys the rest. */
export class SocketCloser {
  private readonly open = new Set<Duplex>();
  private done: (() => void) | null = null;

  /** This socket is being closed cleanly: settle() waits for its 'close'. */
  track(socket: Duplex): void {
    if (socket.destroyed || this.open.has(socket)) return;
    this.open.add(socket);
    socket.once("close", () => {
      this.open.delete(socket);
      if (this.open.size === 0) this.done?.();
    });
  }

  /** Resolves once every tracked socket closed, or after `waitMs`, destroying those still open. */
  async settle(waitMs: number): Promise<void> {
    if (this.open.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, waitMs);
        this.done = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.done = null;
    for (const socket of [...this.open]) socket.destroy();
    this.open.clear();
  }
}
