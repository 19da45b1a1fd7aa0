// The desired state the reconcile loop works toward. Every pass re-reads the file (level-
// triggered), but a read is only *adopted* once it is settled, so nothing half-done is ever
// acted on:
// - a new valid state is adopted once its inputs (the file, the release symlink, the release
//   directory, REVISION) have been unchanged for `settleMs` — by their ctime, or, failing
//   that, by seeing the same thing on reads that far apart. A writer that writes the file in
//   pieces, or five writes in a burst, is adopted once, at the end;
// - a problem (unparsable, schema violation, release path missing, file deleted) is only
//   reported once it has persisted for `settleMs`, so the gap of an `ln -sfn` flip or a
//   delete-and-rewrite is never reported, and never changes what runs;
// - the daemon's own atomic writes (`rollbridge apply`) are adopted at once.
// A reported problem never replaces the last good target: it is kept and runs on.
import { RollbridgeError, type ErrorCode } from "../errors.js";
import { serializeDesired, type DesiredDocument } from "../config/desired-schema.js";
import type { DesiredTarget } from "../reconcile/types.js";
import { hash, readDesired, writeDesiredFile, type DesiredRead } from "./desired-read.js";

export { resolveDesired } from "./desired-read.js";

/** How long a change must stay unchanged before it is adopted (or reported, for a problem). */
export const DESIRED_SETTLE_MS = 300;

/** Why the desired file is not applied (shown in status.desired.error and a desired-invalid event). */
export interface DesiredError {
  message: string;
  code: ErrorCode;
  /** When the problem was first seen (ISO). */
  at: string;
}

/** A change the store has read but not adopted yet, because it is too fresh. */
export interface DesiredPending {
  kind: "change" | "problem";
  /** What the read found: the release it names, or the problem. */
  summary: string;
  /** When it is adopted (or reported) if nothing changes before then (ISO). */
  settlesAt: string;
}

/** What the loop, status and `apply --wait` see: the adopted state, its problem, what is settling. */
export interface DesiredSnapshot {
  /** The last good desired state (null before the first good read). */
  target: DesiredTarget | null;
  /** The document behind `target`, as written. */
  document: DesiredDocument | null;
  error: DesiredError | null;
  pending: DesiredPending | null;
  /** True when this read adopted a different `target` or `error`. */
  changed: boolean;
}

/** Wiring to the daemon (wake the loop, steer the watcher) and, for tests, the clock and window. */
export interface DesiredStoreOptions {
  settleMs?: number;
  /** Called when a pending change has settled: the owner should run a pass (refresh). */
  onWake?: () => void;
  /** Called with the files whose changes matter whenever that set changes (for the watcher). */
  onWatchPaths?: (files: string[]) => void;
  now?: () => number;
}

/** The one owner of "what should run": re-read every pass, adopted only once settled (see the header). */
export class DesiredStore {
  readonly settleMs: number;
  private target: DesiredTarget | null = null;
  private document: DesiredDocument | null = null;
  private error: DesiredError | null = null;
  private adoptedFingerprint: string | null = null;
  private pending: { fingerprint: string; firstSeen: number; settlesAt: number; summary: DesiredPending } | null = null;
  private everSeen = false;
  private ownWrite: string | null = null;
  private wakeTimer: NodeJS.Timeout | null = null;
  private watched = "";
  private readonly now: () => number;

  constructor(
    readonly filePath: string,
    private readonly options: DesiredStoreOptions = {},
  ) {
    this.settleMs = options.settleMs ?? DESIRED_SETTLE_MS;
    this.now = options.now ?? Date.now;
  }

  current(): DesiredSnapshot {
    return this.snapshot(false);
  }

  /**
   * Re-reads the file and adopts what it found if it is settled. Only the reconcile loop
   * should call this (its `changed` drives the desired-changed/desired-invalid events);
   * anything else that wants the file as it is now uses `peek`.
   */
  async refresh(): Promise<DesiredSnapshot> {
    const read = await readDesired(this.filePath);
    const now = this.now();
    this.noteWatch(read.watch);
    if (read.kind !== "missing") this.everSeen = true;
    if (read.fingerprint === this.adoptedFingerprint || (read.kind === "missing" && !this.everSeen)) {
      this.clearPending();
      return this.snapshot(false);
    }
    const firstSeen = this.pending?.fingerprint === read.fingerprint ? this.pending.firstSeen : now;
    // A valid state is as old as its newest input; a problem only as old as our first sight of it.
    const since = read.kind === "valid" ? Math.min(firstSeen, read.changedAt) : firstSeen;
    const own = read.kind === "valid" && read.textHash === this.ownWrite;
    if (own || now - since >= this.settleMs) {
      this.clearPending();
      return this.adopt(read, firstSeen);
    }
    const settlesAt = since + this.settleMs;
    const summary: DesiredPending = { kind: read.kind === "valid" ? "change" : "problem", summary: summarise(read), settlesAt: new Date(settlesAt).toISOString() };
    this.pending = { fingerprint: read.fingerprint, firstSeen, settlesAt, summary };
    this.scheduleWake(settlesAt - now);
    return this.snapshot(false);
  }

  /** The desired file as it is right now (not necessarily adopted yet); throws its problem. */
  async peek(): Promise<DesiredTarget> {
    const read = await readDesired(this.filePath);
    switch (read.kind) {
      case "valid":
        return read.target;
      case "missing":
        throw new RollbridgeError("DESIRED_NOT_FOUND", `no desired file at ${this.filePath}`, { fix: "pass -f FILE or --release-path, or run rollbridge apply" });
      case "invalid":
        throw new RollbridgeError(read.code, read.message);
      default: {
        const _exhaustive: never = read;
        return _exhaustive;
      }
    }
  }

  /** Writes the file atomically and marks the content as ours, so it is adopted without settling. */
  async write(document: DesiredDocument): Promise<void> {
    this.ownWrite = hash(serializeDesired(document));
    await writeDesiredFile(this.filePath, document);
  }

  close(): void {
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
  }

  private adopt(read: DesiredRead, firstSeen: number): DesiredSnapshot {
    const before = { hash: this.target?.documentHash, error: this.error?.message };
    this.adoptedFingerprint = read.fingerprint;
    switch (read.kind) {
      case "valid":
        this.target = read.target;
        this.document = read.document;
        this.error = null;
        break;
      case "missing":
        this.error = { message: read.message, code: "DESIRED_NOT_FOUND", at: new Date(firstSeen).toISOString() };
        break;
      case "invalid":
        this.error = { message: read.message, code: read.code, at: new Date(firstSeen).toISOString() };
        break;
      default: {
        const _exhaustive: never = read;
        return _exhaustive;
      }
    }
    return this.snapshot(before.hash !== this.target?.documentHash || before.error !== this.error?.message);
  }

  private snapshot(changed: boolean): DesiredSnapshot {
    return { target: this.target, document: this.document, error: this.error, pending: this.pending?.summary ?? null, changed };
  }

  private clearPending(): void {
    this.pending = null;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
  }

  private scheduleWake(ms: number): void {
    if (!this.options.onWake) return;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = setTimeout(
      () => {
        this.wakeTimer = null;
        this.options.onWake?.();
      },
      Math.max(0, ms) + 5,
    );
    this.wakeTimer.unref();
  }

  private noteWatch(files: string[]): void {
    // Keep watching what the adopted target names too (its symlink may flip back).
    const release = this.target?.release;
    const linked = release && release.requestedPath !== release.path ? [release.requestedPath] : [];
    const all = [...new Set([...files, ...linked])].sort();
    const key = all.join("\n");
    if (key === this.watched) return;
    this.watched = key;
    this.options.onWatchPaths?.(all);
  }
}

function summarise(read: DesiredRead): string {
  switch (read.kind) {
    case "valid":
      return read.target.stopped ? "stopped" : `release ${read.target.release?.id ?? "?"}`;
    case "missing":
    case "invalid":
      return read.message;
    default: {
      const _exhaustive: never = read;
      return _exhaustive;
    }
  }
}
