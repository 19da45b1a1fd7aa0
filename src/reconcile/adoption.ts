// Adoption: a daemon that starts where an earlier one died takes over that daemon's live
// processes instead of reporting them as orphans and starting new ones. It is a startup
// step: the state file (already trusted by readStateFile) names the processes; each is
// verified here — same pid and start time, its own process group (pgid = pid), the recorded
// uid (ours, unless we are root), the application, instance and release ids in its
// environment, a process the config still defines, a release whose env can be recovered —
// and what passes seeds the executor's records (Executor.adopt): the active release stays
// active with the same pids, a draining one resumes its drain with its deadline, a starting
// one resumes its rollout, a replacement or replaced process is drained and stopped. What
// fails any check is left alone and reported as an orphan, as before.
import path from "node:path";
import type { Config } from "../config/schema.js";
import type { SnapshotProcess, SnapshotRelease, StateSnapshot } from "../observe/state-file.js";
import { readIdentity, readUid, selfAndAncestors } from "../process/identity.js";
import { readFile } from "node:fs/promises";
import { liveOrphans, type OrphanRecord } from "./orphans.js";
import type { AdoptedIdentity } from "./slot-processes.js";
import { SERVICES_KEY, type ReleaseRecord, type ReleaseSpec, type StartReason } from "./types.js";
import { processById } from "../config/process-by-id.js";

/** One verified process of the earlier daemon, and where it goes in its slot. */
export interface AdoptedProcess {
  releaseKey: string;
  instanceId: string;
  processId: string;
  replicaIndex: number;
  replicaCount: number;
  role: "current" | "successor" | "retiring";
  port: number | undefined;
  restarts: number;
  lastStartReason: StartReason;
  identity: AdoptedIdentity;
  uid: number;
  pgid: number;
}

/** What the executor is seeded with. */
export interface Adoption {
  /** Releases that keep running, in their recorded state (active, draining, starting). */
  releases: ReleaseRecord[];
  /** The spec daemon-wide services restart from, when any service is adopted. */
  servicesSpec: ReleaseSpec | null;
  processes: AdoptedProcess[];
  /** The release the proxy routes to, when it was adopted. */
  activeKey: string | null;
}

/** The verdict on a whole snapshot. */
export interface AdoptionPlan {
  adoption: Adoption;
  /** Processes still alive that failed verification (or carried orphans): left alone, reported. */
  orphans: OrphanRecord[];
  /** Why each refused process was not adopted, one line each, for the events. */
  refused: string[];
  /** How a rollout under way was decided when it could not be resumed, one line each, for the events. */
  notes: string[];
}

const GONE = "it is gone";
const ADOPTABLE_STATES = new Set(["active", "draining", "starting"]);
const START_REASONS = new Set<string>(["deploy", "crash", "manual", "memory", "scale", "requested"]);

/**
 * Verifies the snapshot's processes for adoption. `writerGone` is false while the daemon that
 * wrote the file still lives (its processes are its own: nothing is adopted) unless it is
 * handing them over (`rollbridge upgrade`).
 */
export async function planAdoption(snapshot: StateSnapshot, config: Config, options: { writerGone: boolean; outputDir: string | undefined; now?: number }): Promise<AdoptionPlan> {
  const now = options.now ?? Date.now();
  const empty: Adoption = { releases: [], servicesSpec: null, processes: [], activeKey: null };
  if (!options.writerGone) return { adoption: empty, orphans: await liveOrphans(snapshot, now), refused: [], notes: [] };
  const never = await selfAndAncestors();
  const me = typeof process.geteuid === "function" ? process.geteuid() : 0;
  const releases = new Map(snapshot.releases.map((r) => [r.key, r]));
  const servicesRelease = snapshot.servicesKey ? releases.get(snapshot.servicesKey) : undefined;
  const refused: string[] = [];
  const failed: SnapshotProcess[] = [];
  const verified: { entry: SnapshotProcess; env: Record<string, string> }[] = [];
  for (const entry of snapshot.processes) {
    if (never.has(entry.pid) || never.has(entry.pgid)) continue;
    const release = entry.releaseKey === SERVICES_KEY ? servicesRelease : releases.get(entry.releaseKey);
    const why = await refusal(entry, release, snapshot, config, me);
    if (why === GONE) {
      failed.push(entry);
    } else if (typeof why === "string") {
      refused.push(`${entry.instanceId} (pid ${entry.pid}, release ${entry.releaseId}): ${why}`);
      failed.push(entry);
    } else {
      verified.push({ entry, env: why.env });
    }
  }
  // A release's env values were never written: they are read back from its processes' environment.
  const envOf = new Map<string, Record<string, string> | null>();
  for (const { entry, env } of verified) {
    const key = entry.releaseKey === SERVICES_KEY ? (snapshot.servicesKey ?? SERVICES_KEY) : entry.releaseKey;
    const known = envOf.get(key);
    if (known === undefined) envOf.set(key, env);
    else if (known !== null && JSON.stringify(known) !== JSON.stringify(env)) envOf.set(key, null);
  }
  const records = new Map<string, ReleaseRecord>();
  const processes: AdoptedProcess[] = [];
  let servicesSpec: ReleaseSpec | null = null;
  for (const { entry } of verified) {
    const isService = entry.releaseKey === SERVICES_KEY;
    const release = (isService ? servicesRelease : releases.get(entry.releaseKey)) as SnapshotRelease;
    const env = envOf.get(release.key);
    if (env === null || env === undefined) {
      refused.push(`${entry.instanceId} (pid ${entry.pid}, release ${entry.releaseId}): processes of its release disagree on the release's env`);
      failed.push(entry);
      continue;
    }
    const spec = specOf(release, env);
    if (isService) servicesSpec ??= spec;
    else if (!records.has(release.key)) records.set(release.key, recordOf(release, spec, config, now));
    processes.push({
      releaseKey: entry.releaseKey,
      instanceId: entry.instanceId,
      processId: entry.processId,
      replicaIndex: entry.replicaIndex ?? 0,
      replicaCount: entry.replicaCount ?? 1,
      role: entry.role ?? "current",
      port: entry.port ?? undefined,
      restarts: entry.restarts,
      lastStartReason: (START_REASONS.has(entry.lastStartReason) ? entry.lastStartReason : "deploy") as StartReason,
      identity: { pid: entry.pid, startTime: entry.startTime, startedAt: entry.startedAt ?? now, ...outputOf(entry, options.outputDir) },
      uid: entry.uid ?? me,
      pgid: entry.pgid,
    });
  }
  const orphans = await liveOrphans({ ...snapshot, processes: failed }, now);
  const settled = settleBake(snapshot, records);
  return { adoption: { releases: [...records.values()], servicesSpec, processes, activeKey: settled.activeKey }, orphans, refused, notes: settled.notes };
}

/**
 * A bake window under way when the earlier daemon died ends on one release, never on two half
 * routed, never on a baking release nobody judges: with both releases adopted, the baking one
 * stays routed and its bake resumes (its switch time kept, so only the time left is judged);
 * with only the previous release adopted, traffic goes back to it (the baking one is started
 * and judged anew, as a deploy); with only the baking one, there is nothing to take traffic
 * back, and it stays (said in a note). Returns the release to route to.
 */
function settleBake(snapshot: StateSnapshot, records: Map<string, ReleaseRecord>): { activeKey: string | null; notes: string[] } {
  const routed = snapshot.activeKey !== null && records.get(snapshot.activeKey)?.state === "active" ? snapshot.activeKey : null;
  const baking = snapshot.releases.find((r) => r.key === snapshot.activeKey && r.state === "active" && r.rollout?.phase === "bake");
  const progress = baking?.rollout;
  if (!baking || !progress) return { activeKey: routed, notes: [] };
  const record = records.get(baking.key);
  const previous = records.get(progress.previousKey);
  const previousId = snapshot.releases.find((r) => r.key === progress.previousKey)?.id ?? progress.previousKey;
  if (record && previous?.state === "active" && progress.judge) {
    record.rollout = { previousKey: progress.previousKey, phase: "bake", step: progress.step, phaseStartedAt: progress.phaseStartedAt, judgingSince: progress.judgingSince, judge: { ...progress.judge } };
    return { activeKey: baking.key, notes: [] };
  }
  if (!record && previous?.state === "active") {
    return { activeKey: progress.previousKey, notes: [`the bake window of ${baking.id} is not resumed: its processes did not survive, so traffic goes back to ${previousId}, and ${baking.id} is started and judged again`] };
  }
  if (record && previous?.state !== "active") return { activeKey: routed, notes: [`the bake window of ${baking.id} is not resumed: ${previousId} did not survive to take traffic back, so ${baking.id} stays active`] };
  if (record) return { activeKey: routed, notes: [`the bake window of ${baking.id} is not resumed: the state file does not say how it was judged, so ${baking.id} stays active and ${previousId} drains`] };
  return { activeKey: routed, notes: [] };
}

/** Why a recorded process may not be adopted (a sentence), or the env values of its release's `env` keys. */
async function refusal(entry: SnapshotProcess, release: SnapshotRelease | undefined, snapshot: StateSnapshot, config: Config, me: number): Promise<string | { env: Record<string, string> }> {
  const identity = await readIdentity(entry.pid);
  if (identity === null) return GONE;
  if (identity.startTime !== entry.startTime) return `pid ${entry.pid} now belongs to another process (start time ${identity.startTime}, recorded ${entry.startTime})`;
  if (entry.pgid !== entry.pid || identity.pgid !== entry.pgid) return `its process group is ${identity.pgid}, not the recorded ${entry.pgid} led by it`;
  const uid = await readUid(entry.pid);
  if (uid === null || uid !== entry.uid) return `it runs as uid ${uid ?? "?"}, not the recorded uid ${entry.uid ?? "?"}`;
  if (me !== 0 && uid !== me) return `it runs as uid ${uid}, and this daemon (uid ${me}) may only take over its own processes`;
  if (snapshot.application !== config.application) return `the state file is of application ${snapshot.application}, this daemon runs ${config.application}`;
  const defined = processById(config, entry.processId);
  if (!defined) return `process ${entry.processId} is no longer in the config`;
  if (defined.port !== undefined && entry.port === null) return `process ${entry.processId} now has a port, and this one was started without`;
  if (release === undefined) return entry.releaseKey === SERVICES_KEY ? "the release its services were started from is not in the state file" : "its release is not in the state file";
  if (entry.releaseKey !== SERVICES_KEY && !ADOPTABLE_STATES.has(release.state)) return `its release was ${release.state}`;
  const environ = await readEnviron(entry.pid);
  if (environ === null) return "its environment cannot be read";
  const expect: Record<string, string> = { ROLLBRIDGE_APPLICATION: config.application, ROLLBRIDGE_INSTANCE_ID: entry.instanceId, ROLLBRIDGE_RELEASE_ID: entry.releaseId, ROLLBRIDGE_PROCESS_ID: entry.processId };
  for (const [name, value] of Object.entries(expect)) {
    if (environ.get(name) !== value) return `its environment has ${name}=${environ.get(name) ?? "(unset)"}, not ${value}`;
  }
  const env: Record<string, string> = {};
  for (const name of release.envKeys) {
    const value = environ.get(name);
    if (value === undefined) return `its release's env variable ${name} is missing from its environment`;
    env[name] = value;
  }
  return { env };
}

/** The environment of `pid` as name → value (the first of duplicates); null when unreadable. */
async function readEnviron(pid: number): Promise<Map<string, string> | null> {
  try {
    const vars = new Map<string, string>();
    for (const entry of (await readFile(`/proc/${pid}/environ`, "utf8")).split("\0")) {
      const eq = entry.indexOf("=");
      if (eq > 0 && !vars.has(entry.slice(0, eq))) vars.set(entry.slice(0, eq), entry.slice(eq + 1));
    }
    return vars;
  } catch {
    return null;
  }
}

/** The FIFOs to reopen, only when both lie in this daemon's own output directory. */
function outputOf(entry: SnapshotProcess, outputDir: string | undefined): { output?: { stdout: string; stderr: string } } {
  const output = entry.fifos;
  if (output === undefined || outputDir === undefined) return {};
  const inside = (file: string) => path.dirname(file) === outputDir && path.isAbsolute(file);
  return inside(output.stdout) && inside(output.stderr) ? { output } : {};
}

function specOf(r: SnapshotRelease, env: Record<string, string>): ReleaseSpec {
  const requestedId = r.requestedId !== undefined ? r.requestedId : r.id === path.basename(r.path) ? null : r.id;
  return { id: r.id, requestedId, requestedRevision: r.requestedRevision ?? null, path: r.path, requestedPath: r.requestedPath, revision: r.revision, env, generation: r.key };
}

function recordOf(r: SnapshotRelease, spec: ReleaseSpec, config: Config, now: number): ReleaseRecord {
  const record: ReleaseRecord = { key: r.key, spec, state: r.state, createdAt: r.createdAt, failedAttempts: r.failedAttempts };
  if (r.activatedAt !== undefined) record.activatedAt = r.activatedAt;
  if (r.state === "starting") record.startingAt = now;
  if (r.state === "draining") {
    const startedAt = r.drainStartedAt ?? now;
    record.drainStartedAt = startedAt;
    record.drainDeadline = r.drainDeadline ?? startedAt + config.proxy.drainTimeoutMs;
  }
  return record;
}
