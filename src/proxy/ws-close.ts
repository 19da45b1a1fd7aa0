// An open WebSocket tunnel (after the 101) and its clean close. http-proxy-3 pipes the bytes
// both ways; this follows each direction's frame boundaries from the same 'data' events
// (headers only, see ws-frames.ts), so that at a drain deadline each pipe can be stopped between
// two frames and a close frame sent to each peer: the client gets an unmasked one, the app a
// masked one. Each peer's socket is ended once it has both received a close and sent its own
// (the closing handshake of RFC 6455 7.1), or at once when its stream cannot be followed.

import type { Duplex } from "node:stream";
import { CLOSE_REASON, type CutOptions } from "./closing.js";
import { FrameCursor, closeFrame } from "./ws-frames.js";

/** Frame boundaries of both directions of one tunnel, and its cut. */
export class OpenTunnel {
  private readonly toApp: Direction;
  private readonly toClient: Direction;
  private cutting = false;

  constructor(
    private readonly client: Duplex,
    private readonly upstream: Duplex,
  ) {
    this.toApp = new Direction(client, upstream, true, this);
    this.toClient = new Direction(upstream, client, false, this);
  }

  /** True once cut() ran: the tunnel's sockets are the cut's to close. */
  get isCut(): boolean {
    return this.cutting;
  }

  /** Stops both pipes at their next frame boundary and closes both sides with `closeCode`. */
  cut(options: CutOptions): void {
    if (this.cutting) return;
    this.cutting = true;
    options.closer.track(this.client);
    options.closer.track(this.upstream);
    this.toApp.cut(options.closeCode);
    this.toClient.cut(options.closeCode);
  }

  /** A direction changed phase or saw a close frame: end each peer whose handshake is complete. */
  settle(): void {
    endWhenDone(this.client, this.toClient, this.toApp);
    endWhenDone(this.upstream, this.toApp, this.toClient);
  }
}

// A peer's socket ends once a close frame went to it (`toPeer`) and it sent its own (`fromPeer`),
// or when nothing clean can be sent to it any more.
function endWhenDone(socket: Duplex, toPeer: Direction, fromPeer: Direction): void {
  if (socket.writableEnded || toPeer.phase !== "closed") return;
  if (!toPeer.delivered || fromPeer.cursor.closeSeen) socket.end();
}

type DirectionPhase = "piped" | "finishing" | "closed";

// One direction, `from` → `to`. piped: the library forwards, this only follows the frames;
// finishing: after the cut, this forwards the rest of the frame in progress; closed: a close
// frame went to `to` (or cannot be sent), and what `from` still sends is only watched for its
// own close frame.
class Direction {
  readonly cursor = new FrameCursor();
  phase: DirectionPhase = "piped";
  /** A close frame reached `to` (forwarded from `from` before the cut, or written by the cut). */
  delivered = false;
  private closeCode = 1001;

  constructor(
    private readonly from: Duplex,
    private readonly to: Duplex,
    private readonly masked: boolean,
    private readonly tunnel: OpenTunnel,
  ) {
    // Registered before the library's pipe: this sees each chunk just before it is forwarded.
    from.on("data", this.onData);
  }

  cut(closeCode: number): void {
    this.closeCode = closeCode;
    this.from.unpipe(this.to);
    if (this.cursor.lost || this.cursor.atBoundary()) this.close();
    else this.phase = "finishing";
    this.from.resume();
    this.tunnel.settle();
  }

  private readonly onData = (chunk: Buffer): void => {
    switch (this.phase) {
      case "piped":
        this.cursor.feed(chunk);
        return;
      case "finishing": {
        const upTo = this.cursor.toBoundary(chunk);
        if (upTo > 0 && !this.cursor.lost) this.forward(upTo === chunk.length ? chunk : chunk.subarray(0, upTo));
        if (this.cursor.lost || this.cursor.atBoundary()) {
          this.close();
          if (upTo < chunk.length) this.cursor.feed(chunk.subarray(upTo));
          this.tunnel.settle();
        }
        return;
      }
      case "closed": {
        const seen = this.cursor.closeSeen;
        this.cursor.feed(chunk);
        if (!seen && this.cursor.closeSeen) this.tunnel.settle();
        return;
      }
      default: {
        const _exhaustive: never = this.phase;
        return _exhaustive;
      }
    }
  };

  // The rest of a frame, with backpressure: a peer that stops reading only runs out the cut's bound.
  private forward(bytes: Buffer): void {
    if (this.to.write(bytes)) return;
    this.from.pause();
    this.to.once("drain", () => this.from.resume());
  }

  // Between two frames now: a close frame of our own unless `from` already sent one (forwarded
  // whole) or the stream cannot be followed (then `to` only gets its FIN).
  private close(): void {
    this.phase = "closed";
    if (this.cursor.closeSeen) {
      this.delivered = true;
      return;
    }
    if (this.cursor.lost || this.to.writableEnded || this.to.destroyed) return;
    this.to.write(closeFrame(this.closeCode, CLOSE_REASON, this.masked));
    this.delivered = true;
  }
}
