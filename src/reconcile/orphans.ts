// Orphans: processes a daemon started and then lost track of because it died without shutting
// down (SIGKILL, OOM). They are found in the daemon's state snapshot (statePath) and count only
// when the pid is alive, still has the start time recorded for it and runs as the recorded uid:
// a pid the kernel has since given to an unrelated process is never reported, let alone
// signalled. A group whose leader is gone still counts while members of it live that the daemon
// started (same uid, started after the leader, carrying its ROLLBRIDGE_INSTANCE_ID): the kernel
// never hands out a pid still used as a group id, so those members are that group's.
import type { Config } from "../config/schema.js";
import { readStateFile, type SnapshotOrphan, type StateSnapshot } from "../observe/state-file.js";
import { ofUid, stopGroup, stopProcesses, type GroupStopOutcome, type GroupStopResult, type StopOptions } from "../process/group-stop.js";
import { environHas, groupMembers, isSameProcess, readIdentity, readUid, selfAndAncestors, type ProcessIdentity } from "../process/identity.js";
import { processById } from "../config/process-by-id.js";

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
  /** The uid it ran as: only processes of this uid are signalled. */
  uid: number | null;
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
        uid: p.uid,
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
    if (await orphanAlive(candidate)) live.push(candidate);
  }
  return live;
}

/** The recorded leader is alive as recorded (pid, start time, uid), or members of its group are (see the header). */
export async function orphanAlive(orphan: OrphanRecord): Promise<boolean> {
  if (await leaderAlive(orphan)) return true;
  return (await leaderlessMembers(orphan)).length > 0;
}

/**
 * The live members of an orphan's group once its leader is gone: same uid, started no earlier
 * than the leader, and carrying the leader's ROLLBRIDGE_INSTANCE_ID and ROLLBRIDGE_RELEASE_ID.
 * Empty while the leader's pid is in use (by the leader, or — recycled — by another process,
 * which means the old group is gone).
 */
export async function leaderlessMembers(orphan: OrphanRecord): Promise<ProcessIdentity[]> {
  if ((await readIdentity(orphan.pid)) !== null) return [];
  let members = (await groupMembers(orphan.pgid)).filter((m) => m.startTime >= orphan.startTime);
  if (orphan.uid !== undefined) members = await ofUid(members, orphan.uid);
  const marks = { ROLLBRIDGE_INSTANCE_ID: orphan.instanceId, ROLLBRIDGE_RELEASE_ID: orphan.releaseId };
  const carries = await Promise.all(members.map((m) => environHas(m.pid, marks)));
  return members.filter((_, i) => carries[i] === true);
}

async function leaderAlive(orphan: OrphanRecord): Promise<boolean> {
  if (!(await isSameProcess(orphan.pid, orphan.startTime))) return false;
  return orphan.uid === undefined || (await readUid(orphan.pid)) === orphan.uid;
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
  for (const orphan of orphans) if (await orphanAlive(orphan)) kept.push(orphan);
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
    uid: orphan.uid ?? null,
    detectedAt: orphan.detectedAt,
  };
}

/**
 * Stops each orphan's whole process group: its stop signal (from the config when the process
 * is still defined there, else the one recorded), SIGKILL after the grace period; only processes
 * of the recorded uid; a group whose leader is gone, member by member. Orphans whose pid or
 * group a live daemon manages (`managed`) are skipped, never signalled.
 */
export async function stopOrphans(config: Config, orphans: readonly OrphanRecord[], managed: ReadonlySet<number> = new Set()): Promise<OrphanStopReport[]> {
  const reports = await Promise.all(
    orphans.map(async (orphan): Promise<OrphanStopReport> => {
      const defined = processById(config, orphan.processId);
      const signal = (defined?.stopSignal ?? orphan.stopSignal) as NodeJS.Signals;
      const graceMs = defined?.gracefulStopMs ?? orphan.gracefulStopMs;
      const base = { ...orphanEntry(orphan), signal, members: 0, ms: 0 };
      const identity = await readIdentity(orphan.pid);
      if (managed.has(orphan.pid) || managed.has(orphan.pgid) || (identity !== null && managed.has(identity.pgid))) {
        return { ...base, outcome: "skipped", message: `${describe(orphan)} is managed by the running daemon: left alone` };
      }
      try {
        const result = await stopOrphan(orphan, { signal, graceMs, signalLeaderOnly: defined?.stopSignalTarget === "process" });
        return { ...base, outcome: result.outcome, members: result.members, ms: result.ms, message: stopMessage(orphan, result, signal) };
      } catch (error) {
        return { ...base, outcome: "error", message: `could not stop ${describe(orphan)}: ${(error as Error).message}` };
      }
    }),
  );
  return reports;
}

/** "web (pid 123, group 123, release v1, port 20001)". */
export function describe(orphan: Pick<OrphanEntry, "instanceId" | "pid" | "pgid" | "releaseId" | "port">): string {
  return `${orphan.instanceId} (pid ${orphan.pid}, group ${orphan.pgid}, release ${orphan.releaseId}${orphan.port === null ? "" : `, port ${orphan.port}`})`;
}

/** The leader's group as recorded, or — its leader gone — the members the daemon started, one by one. */
async function stopOrphan(orphan: OrphanRecord, options: StopOptions): Promise<GroupStopResult> {
  const uid = orphan.uid;
  if ((await readIdentity(orphan.pid)) !== null) return stopGroup({ pid: orphan.pid, pgid: orphan.pgid, startTime: orphan.startTime, uid }, options);
  return stopProcesses(await leaderlessMembers(orphan), options);
}

function stopMessage(orphan: OrphanRecord, result: GroupStopResult, signal: string): string {
  const { outcome, members, ms } = result;
  const what = describe(orphan);
  const group = `${members} process${members === 1 ? "" : "es"}${result.othersLeft > 0 ? ` (${result.othersLeft} of other users in its group left alone)` : ""}`;
  switch (outcome) {
    case "exited":
      return `stopped ${what}: ${group} ended after ${signal} in ${ms} ms`;
    case "killed":
      return `stopped ${what}: ${group} ignored ${signal}, SIGKILLed after the grace period (${ms} ms)`;
    case "gone":
      return `${what} had already exited`;
    case "changed":
      return `pid ${orphan.pid} now belongs to another process: left alone`;
    case "other-user":
      return `pid ${orphan.pid} runs as another user than the recorded uid ${orphan.uid ?? "?"}: left alone`;
    case "survived":
      return `${what} is still alive after SIGKILL (stuck in the kernel?): check it with ps -o pid,stat,cmd -g ${orphan.pgid}`;
    default: {
      const _exhaustive: never = outcome;
      return _exhaustive;
    }
  }
}
