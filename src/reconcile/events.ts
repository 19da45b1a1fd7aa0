// The daemon's structured history: the last 1000 events in memory, each also written as one
// JSON line to stdout (journald / the daemon log file), and streamed to `apply --wait`.
import type { DaemonEvent, EventLevel } from "../control/protocol.js";
import { boundedLineSink } from "./event-sink.js";

/** What `emit` takes: an event without its sequence number and time (level defaults to info). */
export type EventInput = DaemonEvent extends infer E ? (E extends DaemonEvent ? Omit<E, "seq" | "at" | "level"> & { level?: EventLevel } : never) : never;

export class EventLog {
  private readonly items: DaemonEvent[] = [];
  private seq = 0;
  private readonly listeners = new Set<(event: DaemonEvent) => void>();

  constructor(
    private readonly capacity = 1000,
    private readonly sink: ((line: string) => void) | null = boundedLineSink(process.stdout),
  ) {}

  emit(input: EventInput): DaemonEvent {
    // The same key order as ever (seq, at, level, type, message, releaseKey, releaseId, data): one JSON line per event.
    const event = { seq: ++this.seq, at: new Date().toISOString(), level: input.level ?? "info", type: input.type, message: input.message } as DaemonEvent;
    if (input.releaseKey !== undefined) event.releaseKey = input.releaseKey;
    if (input.releaseId !== undefined) event.releaseId = input.releaseId;
    if (input.data !== undefined) (event as { data?: unknown }).data = input.data;
    this.items.push(event);
    if (this.items.length > this.capacity) this.items.splice(0, this.items.length - this.capacity);
    if (this.sink) {
      try {
        this.sink(JSON.stringify(event));
      } catch {
        // stdout gone (EPIPE): the in-memory history still has it.
      }
    }
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // a broken subscriber must not break the emitter
      }
    }
    return event;
  }

  recent(limit = this.capacity): DaemonEvent[] {
    return this.items.slice(Math.max(0, this.items.length - limit));
  }

  lastSeq(): number {
    return this.seq;
  }

  subscribe(listener: (event: DaemonEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
