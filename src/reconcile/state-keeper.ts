// The daemon's side of `statePath`: at startup it reads the snapshot a crashed daemon left,
// adopts the processes that pass verification (adoption.ts), reports the others still alive
// as orphans and takes back the release history (so `rollback` works after a restart); while
// running it rewrites the snapshot after every pass that changed something and every few
// seconds; on a clean shutdown it removes the file.
import { promises as fs } from "node:fs";
import path from "node:path";
import type { Config } from "../config/schema.js";
import { errorMessage, type ErrorCode } from "../errors.js";
import { ensureStateDir, readStateFile, removeStateFile, writeStateFile, STATE_FILE_VERSION, type SnapshotProcess, type SnapshotRelease, type StateSnapshot } from "../observe/state-file.js";
import type { ManagedProcess } from "../process/managed-process.js";
import { isSameProcess, readIdentity, readUid } from "../process/identity.js";
import { removeOutputFifos } from "../process/output-fifo.js";
import { planAdoption } from "./adoption.js";
import type { EventLog } from "./events.js";
import type { Executor } from "./execute.js";
import { describe, orphanEntry, stillAlive, type OrphanEntry, type OrphanRecord } from "./orphans.js";
import { processesOf, SecretScrubber } from "./state-scrub.js";
import type { ReleaseSpec } from "./types.js";

export interface StateKeeperOptions {
  config: () => Config;
  executor: Executor;
  events: EventLog;
  /** The release the proxy routes to. */
  activeKey: () => string | null;
  /** Period of the unconditional rewrite (and orphan re-check). */
  intervalMs?: number;
  /** The output FIFO directory: only FIFOs in it are reopened for adopted processes. */
  outputDir?: () => string | undefined;
  /**
   * The pid of a live daemon handing its processes over (`rollbridge upgrade`): its state file
   * is adopted although its writer still runs. Without it, a live writer's processes are its own.
   */
  handoverFrom?: number | undefined;
}

/** Events kept in the snapshot, newest last. */
const EVENTS_KEPT = 100;

export class StateKeeper {
  private orphanList: OrphanRecord[] = [];
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private queued = false;
  private writtenSeq = -1;
  private closed = false;
  private suspended = false;
  private lastError: string | null = null;
  private daemonStartTime: number | null = null;
  /** Fixed at start: a reload (SIGHUP) never splits the state across two files. */
  private file: string | undefined = undefined;
  private readonly scrubber = new SecretScrubber();
  /** Identity of each spawned leader, read once while it is our child: pid reuse cannot fool it later. */
  private readonly identities = new WeakMap<ManagedProcess, { pgid: number; startTime: number; uid: number | undefined } | null>();

  constructor(private readonly options: StateKeeperOptions) {}

  /** Orphans still alive, in the public shape (status.orphans). */
  orphans(): OrphanEntry[] {
    return this.orphanList.map(orphanEntry);
  }

  /** Reads the leftover snapshot (orphans, release history), then writes a fresh one and starts the timer. */
  async start(): Promise<void> {
    const config = this.options.config();
    const file = config.statePath;
    if (file === undefined) return;
    const events = this.options.events;
    try {
      await ensureStateDir(file, config.statePathSource ?? "absolute");
    } catch (error) {
      // An unsafe directory disables persistence; what runs is not disturbed.
      events.emit({ level: "error", type: "state-file-invalid", message: `state file ${file} not used: ${errorMessage(error)}` });
      return;
    }
    this.file = file;
    this.daemonStartTime = (await readIdentity(process.pid))?.startTime ?? null;
    let leftover: StateSnapshot | null = null;
    try {
      leftover = await readStateFile(file);
    } catch (error) {
      const aside = `${file}.invalid`;
      await fs.rename(file, aside).catch(() => undefined);
      events.emit({ level: "error", type: "state-file-invalid", message: `${errorMessage(error)}; moved it to ${aside} and starting without it (check for leftover processes by hand)` });
    }
    if (leftover !== null) {
      const adopted = await this.adopt(leftover, config);
      const restored = this.restoreReleases(leftover);
      events.emit({
        level: this.orphanList.length > 0 ? "warn" : "info",
        type: "state-restored",
        message: `read the state file of daemon ${leftover.daemon.pid} (written ${leftover.writtenAt}): ${count(adopted, "process", "processes")} adopted, ${count(restored.restored, "release")} restored as history, ${count(this.orphanList.length, "orphan")} still running${restored.skipped > 0 ? `, ${count(restored.skipped, "release")} with a desired env left out (env values are never written to disk)` : ""}`,
        data: { file, previousDaemonPid: leftover.daemon.pid, adopted, restored: restored.restored, skipped: restored.skipped, orphans: this.orphanList.length },
      });
      for (const orphan of this.orphanList) {
        events.emit({
          level: "warn",
          type: "orphan-detected",
          message: `orphan ${describe(orphan)} left by a daemon that did not shut down cleanly is still running; stop it with rollbridge recover --force`,
          releaseKey: orphan.releaseKey,
          releaseId: orphan.releaseId,
          data: { ...orphanEntry(orphan) },
        });
      }
    }
    this.timer = setInterval(() => void this.tick(), this.options.intervalMs ?? 5000);
    this.timer.unref();
    await this.write();
  }

  /**
   * Adopts what passes verification (executor records seeded, identities known for the next
   * snapshot), keeps the rest as orphans, removes the FIFOs of recorded processes that are gone.
   */
  private async adopt(leftover: StateSnapshot, config: Config): Promise<number> {
    const writer = leftover.daemon;
    const writerAlive = writer.pid !== process.pid && writer.startTime !== null && (await isSameProcess(writer.pid, writer.startTime));
    const writerGone = !writerAlive || this.options.handoverFrom === writer.pid;
    const outputDir = this.options.outputDir?.();
    const plan = await planAdoption(leftover, config, { writerGone, outputDir });
    for (const line of plan.refused) {
      this.options.events.emit({ level: "warn", type: "adoption-refused", message: `not adopting ${line}: left alone` });
    }
    for (const line of plan.notes) this.options.events.emit({ level: "warn", type: "rollout-not-resumed", message: line });
    const taken = this.options.executor.adopt(plan.adoption);
    for (const { managed, adopted } of taken) this.identities.set(managed, { pgid: adopted.pgid, startTime: adopted.identity.startTime, uid: adopted.uid });
    this.orphanList = plan.orphans;
    if (writerGone && outputDir !== undefined) {
      const kept = new Set([...taken.map((t) => t.adopted.identity.pid), ...plan.orphans.map((o) => o.pid)]);
      for (const p of leftover.processes) {
        if (p.fifos && !kept.has(p.pid) && path.dirname(p.fifos.stdout) === outputDir && path.dirname(p.fifos.stderr) === outputDir) removeOutputFifos(p.fifos);
      }
    }
    return taken.length;
  }

  /** Whether a state file is kept (statePath set and its directory usable): a handover needs one. */
  active(): boolean {
    return this.file !== undefined && !this.closed;
  }

  /** Writes the snapshot now (a handover: the new daemon reads it at once). */
  async flush(): Promise<void> {
    if (this.file === undefined || this.closed) return;
    await this.writing.catch(() => undefined);
    await this.writeNow();
  }

  /**
   * A handover in progress (true): no writes, so the snapshot the new daemon adopts from stays
   * the one flush() wrote; false resumes them (the new daemon failed to start).
   */
  suspend(suspended: boolean): void {
    this.suspended = suspended;
  }

  /** A handover done: the file is the new daemon's now; this one never writes nor removes it again. */
  detach(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** After each reconcile pass: rewrite when anything happened since the last write. */
  afterPass(): void {
    if (this.file === undefined || this.closed) return;
    if (this.options.events.lastSeq() !== this.writtenSeq) void this.write();
  }

  /**
   * Clean shutdown (everything managed has stopped): removes the snapshot. While orphans of an
   * earlier daemon are still alive the file stays, with them and the release history but no
   * processes of ours, so `recover` and the next daemon still find them.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const file = this.file;
    if (file === undefined) return;
    await this.writing.catch(() => undefined);
    const orphans = await stillAlive(this.orphanList);
    try {
      if (orphans.length === 0) {
        await removeStateFile(file);
        // The private default's directory (statePath unset or true) is ours alone: gone when empty.
        if ((this.options.config().statePathSource ?? "absolute") === "default") await fs.rmdir(path.dirname(file)).catch(() => undefined);
      } else await writeStateFile(file, { ...this.snapshot(), processes: [], activeKey: null, orphans });
    } catch (error) {
      this.options.events.emit({ level: "warn", type: "state-write-failed", message: `could not clean up state file ${file}: ${errorMessage(error)}` });
    }
  }

  private async tick(): Promise<void> {
    if (this.orphanList.length > 0) {
      const alive = await stillAlive(this.orphanList);
      for (const gone of this.orphanList.filter((o) => !alive.includes(o))) {
        this.options.events.emit({ type: "orphan-gone", message: `orphan ${describe(gone)} is gone`, releaseKey: gone.releaseKey, releaseId: gone.releaseId, data: { pid: gone.pid } });
      }
      this.orphanList = alive;
    }
    await this.write();
  }

  /** Serialised writes: one at a time, and one more if asked for while writing. */
  private write(): Promise<void> {
    if (this.closed) return this.writing;
    if (this.queued) return this.writing;
    this.queued = true;
    this.writing = this.writing.then(async () => {
      this.queued = false;
      if (this.closed || this.suspended) return;
      await this.writeNow();
    });
    return this.writing;
  }

  private async writeNow(): Promise<void> {
    const file = this.file;
    if (file === undefined) return;
    const seq = this.options.events.lastSeq();
    try {
      await this.refreshIdentities();
      await writeStateFile(file, this.snapshot());
      this.writtenSeq = seq;
      this.lastError = null;
    } catch (error) {
      const message = `could not write state file ${file}: ${errorMessage(error)}`;
      // Once per distinct problem: the failure event itself must not cause a write storm.
      if (message !== this.lastError) this.options.events.emit({ level: "warn", type: "state-write-failed", message });
      this.lastError = message;
    }
  }

  /** Reads pgid and start time of leaders not seen yet, only while they are still our children. */
  private async refreshIdentities(): Promise<void> {
    for (const slots of this.options.executor.runtime.instances.values()) {
      for (const inst of slots.values()) {
        for (const { proc } of processesOf(inst)) {
          if (proc.pid === undefined || proc.phase === "exited" || this.identities.has(proc)) continue;
          const identity = await readIdentity(proc.pid);
          // Not our child (any more): the pid may have been reaped and reused; never record that.
          const uid = identity !== null && identity.ppid === process.pid ? ((await readUid(proc.pid)) ?? undefined) : undefined;
          this.identities.set(proc, identity !== null && identity.ppid === process.pid ? { pgid: identity.pgid, startTime: identity.startTime, uid } : null);
        }
      }
    }
  }

  private snapshot(): StateSnapshot {
    const config = this.options.config();
    const runtime = this.options.executor.runtime;
    this.scrubber.learn(config, runtime);
    const scrub = (text: string) => this.scrubber.scrub(text);
    const releases: SnapshotRelease[] = [];
    for (const rec of runtime.releases.values()) {
      const release: SnapshotRelease = {
        key: rec.key,
        id: rec.spec.id,
        requestedId: rec.spec.requestedId,
        requestedRevision: rec.spec.requestedRevision,
        path: rec.spec.path,
        requestedPath: rec.spec.requestedPath,
        revision: rec.spec.revision,
        state: rec.state,
        createdAt: rec.createdAt,
        failedAttempts: rec.failedAttempts,
        envKeys: Object.keys(rec.spec.env),
      };
      if (rec.activatedAt !== undefined) release.activatedAt = rec.activatedAt;
      if (rec.drainStartedAt !== undefined) release.drainStartedAt = rec.drainStartedAt;
      if (rec.drainDeadline !== undefined && rec.state === "draining") release.drainDeadline = rec.drainDeadline;
      if (rec.stoppedAt !== undefined) release.stoppedAt = rec.stoppedAt;
      if (rec.failure) release.failure = { reason: scrub(rec.failure.reason), code: rec.failure.code, at: rec.failure.at };
      if (rec.rollout) release.rollout = { ...rec.rollout };
      releases.push(release);
    }
    const processes: SnapshotProcess[] = [];
    for (const [key, slots] of runtime.instances) {
      const rec = runtime.recordFor(key);
      for (const inst of slots.values()) {
        for (const { proc, port } of processesOf(inst)) {
          const identity = this.identities.get(proc);
          if (proc.pid === undefined || proc.phase === "exited" || !identity) continue;
          processes.push({
            instanceId: inst.instanceId,
            processId: inst.processId,
            releaseKey: key,
            releaseId: rec?.spec.id ?? key,
            pid: proc.pid,
            pgid: identity.pgid,
            ...(identity.uid === undefined ? {} : { uid: identity.uid }),
            startTime: identity.startTime,
            port: port ?? null,
            restarts: inst.restarts,
            lastStartReason: inst.lastStartReason,
            startedAt: inst.startedAt ?? null,
            stopSignal: proc.spec.stopSignal,
            gracefulStopMs: proc.spec.gracefulStopMs,
            role: proc === inst.proc ? "current" : proc === inst.successor?.proc ? "successor" : "retiring",
            replicaIndex: inst.replicaIndex,
            replicaCount: inst.replicaCount,
            ...(proc.outputFifos === undefined ? {} : { fifos: proc.outputFifos }),
          });
        }
      }
    }
    const events = this.options.events.recent(EVENTS_KEPT).map((e) => {
      const out: StateSnapshot["events"][number] = { seq: e.seq, at: e.at, level: e.level, type: e.type, message: scrub(e.message) };
      if (e.releaseId !== undefined) out.releaseId = e.releaseId;
      return out;
    });
    return {
      version: STATE_FILE_VERSION,
      application: config.application,
      writtenAt: new Date().toISOString(),
      daemon: { pid: process.pid, startTime: this.daemonStartTime },
      activeKey: this.options.activeKey(),
      servicesKey: runtime.serviceRecord?.spec.generation ?? null,
      releases,
      processes,
      orphans: this.orphanList,
      events,
    };
  }

  /**
   * Puts the crashed daemon's releases that were not adopted back as history: stopped (no
   * process of theirs was adopted) or failed. A release with a desired `env` is left out: its values were never
   * written, and resuming it without them would run it differently.
   */
  private restoreReleases(snapshot: StateSnapshot): { restored: number; skipped: number } {
    const executor = this.options.executor;
    let restored = 0;
    let skipped = 0;
    for (const r of snapshot.releases) {
      if (executor.runtime.releases.has(r.key)) continue;
      if (r.envKeys.length > 0) {
        skipped += 1;
        continue;
      }
      const failed = r.state === "failed" && r.failure !== undefined;
      // Files of older daemons lack requestedId and could hold one id twice: number the later one.
      const requestedId = r.requestedId !== undefined ? r.requestedId : r.id === path.basename(r.path) ? null : r.id;
      const spec: ReleaseSpec = { id: r.id, requestedId, requestedRevision: r.requestedRevision ?? null, path: r.path, requestedPath: r.requestedPath, revision: r.revision, env: {}, generation: r.key };
      executor.restoreRelease({
        key: r.key,
        spec,
        state: failed ? "failed" : "stopped",
        createdAt: r.createdAt,
        ...(r.activatedAt === undefined ? {} : { activatedAt: r.activatedAt }),
        stoppedAt: r.stoppedAt ?? Date.parse(snapshot.writtenAt),
        // The code was written by a daemon from an ErrorCode; an unknown one is shown as it was.
        ...(failed && r.failure ? { failure: { reason: r.failure.reason, code: r.failure.code as ErrorCode, at: r.failure.at, output: [] } } : {}),
        failedAttempts: r.failedAttempts,
      });
      restored += 1;
    }
    return { restored, skipped };
  }
}

function count(n: number, noun: string, plural = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : plural}`;
}
