// Orphans: processes a daemon started and then lost track of because it died without shutting
// down (SIGKILL, OOM). They are found in the daemon's state snapshot (statePath) and count only
// when the pid is alive *and* still has the start time recorded for it: a pid the kernel has
// since given to an unrelated process is never reported, let alone signalled.
import type { Config } from "../config/schema.js";
import { readStateFile, type SnapshotOrphan, type StateSnapshot } from "../observe/state-file.js";
import { stopGroup, type GroupStopOutcome } from "../process/group-stop.js";
import { isSameProcess, readIdentity, selfAndAncestors } from "../process/identity.js";

/** One orphan as `status.orphans`, `doctor` and `recover --json` show it. */
export interface OrphanEntry {
  instanceId: string;
  processId: string;
  releaseId: string;
  pid: number;
  /** The process group the daemon gave it (the whole group is what `recover --force` stops). */
  pgid: number;
  port: number | null;
  /** Field 22 of /proc/<pid>/stat: the pid's identity, checked before anything is signalled. */
  startTime: number;
  /** When it was first found orphaned (ISO time). */
  detectedAt: string;
}

/** An orphan with what is needed to stop it as its daemon would have (carried in the snapshot). */
export type OrphanRecord = SnapshotOrphan;

/** What happened to one orphan under `recover --force`. */
export interface OrphanStopReport extends OrphanEntry {
  outcome: GroupStopOutcome | "skipped" | "error";
  signal: string;
  members: number;
  ms: number;
  message: string;
}

/**
 * The live orphans recorded in `config.statePath` (none when it is unset or absent). For
 * `doctor` and `recover`: works with no daemon running. Throws STATE_FILE_INVALID when the
 * file cannot be trusted.
 */
export async function findOrphans(config: Config, now: number = Date.now()): Promise<OrphanRecord[]> {
  if (config.statePath === undefined) return [];
  const snapshot = await readStateFile(config.statePath);
  return snapshot === null ? [] : liveOrphans(snapshot, now);
}

/**
 * The snapshot's processes that are still alive and still the same processes. While the
 * daemon that wrote the snapshot is alive, its processes are managed, not orphaned: only
 * the orphans it carries forward count. Our own pid and ancestors never count.
 */
export async function liveOrphans(snapshot: StateSnapshot, now: number = Date.now()): Promise<OrphanRecord[]> {
  const never = await selfAndAncestors();
  const writer = snapshot.daemon;
  const writerAlive = writer.pid !== process.pid && writer.startTime !== null && (await isSameProcess(writer.pid, writer.startTime));
  const detectedAt = new Date(now).toISOString();
  const candidates: OrphanRecord[] = [...snapshot.orphans];
  if (!writerAlive) {
    for (const p of snapshot.processes) {
      candidates.push({
        instanceId: p.instanceId,
        processId: p.processId,
        releaseKey: p.releaseKey,
        releaseId: p.releaseId,
        pid: p.pid,
        pgid: p.pgid,
        startTime: p.startTime,
        port: p.port,
        detectedAt,
        stopSignal: p.stopSignal,
        gracefulStopMs: p.gracefulStopMs,
      });
    }
  }
  const seen = new Set<string>();
  const live: OrphanRecord[] = [];
  for (const candidate of candidates) {
    const id = `${candidate.pid}@${candidate.startTime}`;
    if (seen.has(id) || never.has(candidate.pid) || never.has(candidate.pgid)) continue;
    seen.add(id);
    if (await isSameProcess(candidate.pid, candidate.startTime)) live.push(candidate);
  }
  return live;
}

/** The pid of the daemon that wrote the state file, while it is alive (same pid, same start time). */
export async function liveStateWriter(config: Config): Promise<number | null> {
  if (config.statePath === undefined) return null;
  const snapshot = await readStateFile(config.statePath).catch(() => null);
  const writer = snapshot?.daemon;
  if (!writer || writer.startTime === null) return null;
  return (await isSameProcess(writer.pid, writer.startTime)) ? writer.pid : null;
}

/** Re-checks a list of orphans: those gone (or whose pid was recycled) drop out. */
export async function stillAlive(orphans: readonly OrphanRecord[]): Promise<OrphanRecord[]> {
  const kept: OrphanRecord[] = [];
  for (const orphan of orphans) if (await isSameProcess(orphan.pid, orphan.startTime)) kept.push(orphan);
  return kept;
}

/** The public shape of an orphan (status, doctor, recover --json). */
export function orphanEntry(orphan: OrphanRecord): OrphanEntry {
  return {
    instanceId: orphan.instanceId,
    processId: orphan.processId,
    releaseId: orphan.releaseId,
    pid: orphan.pid,
    pgid: orphan.pgid,
    port: orphan.port,
    startTime: orphan.startTime,
    detectedAt: orphan.detectedAt,
  };
}

/**
 * Stops each orphan's whole process group: its stop signal (from the config when the process
 * is still defined there, else the one recorded), SIGKILL after the grace period. Orphans
 * whose pid or group a live daemon manages (`managed`) are skipped, never signalled.
 */
export async function stopOrphans(config: Config, orphans: readonly OrphanRecord[], managed: ReadonlySet<number> = new Set()): Promise<OrphanStopReport[]> {
  const reports = await Promise.all(
    orphans.map(async (orphan): Promise<OrphanStopReport> => {
      const defined = config.processes.find((p) => p.id === orphan.processId);
      const signal = (defined?.stopSignal ?? orphan.stopSignal) as NodeJS.Signals;
      const graceMs = defined?.gracefulStopMs ?? orphan.gracefulStopMs;
      const base = { ...orphanEntry(orphan), signal, members: 0, ms: 0 };
      const identity = await readIdentity(orphan.pid);
      if (managed.has(orphan.pid) || managed.has(orphan.pgid) || (identity !== null && managed.has(identity.pgid))) {
        return { ...base, outcome: "skipped", message: `${describe(orphan)} is managed by the running daemon: left alone` };
      }
      try {
        const result = await stopGroup(orphan, { signal, graceMs });
        return { ...base, outcome: result.outcome, members: result.members, ms: result.ms, message: stopMessage(orphan, result.outcome, signal, result.members, result.ms) };
      } catch (error) {
        return { ...base, outcome: "error", message: `could not stop ${describe(orphan)}: ${(error as Error).message}` };
      }
    }),
  );
  return reports;
}

/** "web (pid 123, group 123, release v1, port 20001)". */
export function describe(orphan: OrphanEntry): string {
  return `${orphan.instanceId} (pid ${orphan.pid}, group ${orphan.pgid}, release ${orphan.releaseId}${orphan.port === null ? "" : `, port ${orphan.port}`})`;
}

function stopMessage(orphan: OrphanEntry, outcome: GroupStopOutcome, signal: string, members: number, ms: number): string {
  const what = describe(orphan);
  const group = `${members} process${members === 1 ? "" : "es"}`;
  switch (outcome) {
    case "exited":
      return `stopped ${what}: ${group} ended after ${signal} in ${ms} ms`;
    case "killed":
      return `stopped ${what}: ${group} ignored ${signal}, SIGKILLed after the grace period (${ms} ms)`;
    case "gone":
      return `${what} had already exited`;
    case "changed":
      return `pid ${orphan.pid} now belongs to another process: left alone`;
    case "survived":
      return `${what} is still alive after SIGKILL (stuck in the kernel?): check it with ps -o pid,stat,cmd -g ${orphan.pgid}`;
    default: {
      const _exhaustive: never = outcome;
      return _exhaustive;
    }
  }
}
