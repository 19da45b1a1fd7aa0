// The daemon's state snapshot (config `statePath`): what it ran, so that after a hard death
// (SIGKILL, OOM) the next daemon or `rollbridge recover` can find what is still alive. It holds
// ids, pids, uids, start times, ports and counters — never environment values, command lines or
// output — and is replaced atomically (temp file, fsync, rename), so a reader never sees half.
// It decides what `recover --force` signals, so it is trusted only when it is a regular file
// owned by the reader's uid (or root) that neither group nor others may write.
import { promises as fs } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { checkDirectory, ensurePrivateDir } from "../config/runtime-dir.js";
import { RollbridgeError, errorMessage, isRollbridgeError } from "../errors.js";
import { describeOwner, euid, readTrusted, writeAtomic } from "../safe-file.js";

/** Bumped on any incompatible change of the shape below; readers refuse other versions. */
export const STATE_FILE_VERSION = 1;

const releaseState = z.enum(["starting", "active", "draining", "stopped", "failed"]);

const snapshotRelease = z.object({
  key: z.string(),
  id: z.string(),
  /** What the desired state wrote (absent in files of older daemons): rollback writes them back. */
  requestedId: z.string().nullable().optional(),
  requestedRevision: z.string().nullable().optional(),
  path: z.string(),
  requestedPath: z.string(),
  revision: z.string().nullable(),
  state: releaseState,
  createdAt: z.number(),
  activatedAt: z.number().optional(),
  drainStartedAt: z.number().optional(),
  /** When a drain in progress times out: a daemon adopting the release resumes the drain with it. */
  drainDeadline: z.number().optional(),
  stoppedAt: z.number().optional(),
  failure: z.object({ reason: z.string(), code: z.string(), at: z.number() }).optional(),
  failedAttempts: z.number().int().min(0).default(0),
  /** Names of the desired `env` variables of this release; their values are never written. */
  envKeys: z.array(z.string()).default([]),
  /**
   * A rollout judged on live traffic under way (a canary step, the bake window): a daemon that
   * adopts the release resumes it from these times instead of keeping the release unjudged.
   */
  rollout: z
    .object({
      previousKey: z.string(),
      phase: z.enum(["canary", "bake"]),
      step: z.number().int().min(0),
      phaseStartedAt: z.number(),
      judgingSince: z.number(),
      judge: z.object({ windowMs: z.number().positive(), minRequests: z.number().int().min(1), maxErrorRate: z.number().min(0).max(1), maxP99Ms: z.number().min(0).optional() }).optional(),
    })
    .optional(),
});

const snapshotProcess = z.object({
  instanceId: z.string(),
  processId: z.string(),
  releaseKey: z.string(),
  releaseId: z.string(),
  pid: z.number().int().positive(),
  pgid: z.number().int().positive(),
  /** Real uid of the process; only processes of this uid are ever signalled (older files: the file owner's). */
  uid: z.number().int().nonnegative().optional(),
  /** Field 22 of /proc/<pid>/stat: with the pid, the process's identity. */
  startTime: z.number(),
  port: z.number().int().nullable(),
  restarts: z.number().int().min(0),
  lastStartReason: z.string(),
  startedAt: z.number().nullable(),
  stopSignal: z.string(),
  gracefulStopMs: z.number().min(0),
  /** What the process is to its slot: the current one, a replacement starting, or a replaced one draining (older files: current). */
  role: z.enum(["current", "successor", "retiring"]).optional(),
  replicaIndex: z.number().int().min(0).optional(),
  replicaCount: z.number().int().min(1).optional(),
  /** Its output FIFOs (paths only, never output), which the next daemon reopens when it adopts the process. */
  fifos: z.object({ stdout: z.string(), stderr: z.string() }).optional(),
});

// An orphan is a process entry of an earlier daemon (without its counters), plus when it was found.
const snapshotOrphan = snapshotProcess.omit({ restarts: true, lastStartReason: true, startedAt: true, role: true, replicaIndex: true, replicaCount: true, fifos: true }).extend({ detectedAt: z.string() });

const snapshotEvent = z.object({
  seq: z.number(),
  at: z.string(),
  level: z.string(),
  type: z.string(),
  message: z.string(),
  releaseId: z.string().optional(),
});

const stateSnapshot = z.object({
  version: z.literal(STATE_FILE_VERSION),
  application: z.string(),
  writtenAt: z.string(),
  /** The daemon that wrote the file: while it lives, its processes are managed, not orphans. */
  daemon: z.object({ pid: z.number().int().positive(), startTime: z.number().nullable() }),
  activeKey: z.string().nullable(),
  /** The release whose spec the daemon-wide services restart from. */
  servicesKey: z.string().nullable().optional(),
  releases: z.array(snapshotRelease),
  processes: z.array(snapshotProcess),
  /** Orphans of an earlier daemon, carried forward until they are gone. */
  orphans: z.array(snapshotOrphan).default([]),
  events: z.array(snapshotEvent).default([]),
});

export type StateSnapshot = z.output<typeof stateSnapshot>;
export type SnapshotRelease = StateSnapshot["releases"][number];
export type SnapshotProcess = StateSnapshot["processes"][number];
export type SnapshotOrphan = StateSnapshot["orphans"][number];
export type SnapshotEvent = StateSnapshot["events"][number];

/**
 * Reads the snapshot; null when there is none; STATE_FILE_INVALID when it cannot be trusted: not
 * a regular file owned by this uid (or root), writable by group or others, or malformed. Entries
 * without a recorded uid get the file owner's (the daemon that wrote it ran as that user).
 */
export async function readStateFile(file: string): Promise<StateSnapshot | null> {
  let text: string;
  let owner: number;
  try {
    const read = await readTrusted(file, { owners: trustedStateOwners(), purpose: "read the state file" });
    if (read === null) return null;
    if ((read.stat.mode & 0o022) !== 0) {
      throw new RollbridgeError(
        "STATE_FILE_INVALID",
        `refusing state file ${file}: it is writable by ${(read.stat.mode & 0o002) !== 0 ? "every user" : "its group"} (mode ${(read.stat.mode & 0o777).toString(8)}), so anyone could name processes in it: nothing in it was trusted or signalled`,
        {
          fix: `if you trust its content, chmod 600 ${file}; otherwise stop leftover processes by hand and delete it`,
        },
      );
    }
    text = read.text;
    owner = read.stat.uid;
  } catch (cause) {
    if (isRollbridgeError(cause, "STATE_FILE_INVALID")) throw cause;
    if (isRollbridgeError(cause, "UNSAFE_PATH")) {
      throw new RollbridgeError("STATE_FILE_INVALID", `${cause.message.replace(/^refusing /, "refusing state file ")}: nothing in it was trusted or signalled`, {
        cause,
        fix: `the daemon (${describeOwner(euid())}) writes this file itself: remove it (rm ${file}) if you did not put it there`,
      });
    }
    if ((cause as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new RollbridgeError("STATE_FILE_INVALID", `cannot read state file ${file}: ${errorMessage(cause)}`, { cause, fix: "check the permissions of statePath and its directory" });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new RollbridgeError("STATE_FILE_INVALID", `state file ${file} is not valid JSON`, { cause, fix: "inspect it, stop any leftover processes by hand, then delete it" });
  }
  const version = (raw as { version?: unknown } | null)?.version;
  if (version !== STATE_FILE_VERSION) {
    throw new RollbridgeError("STATE_FILE_INVALID", `state file ${file} has version ${JSON.stringify(version)}; this rollbridge reads version ${STATE_FILE_VERSION}`, {
      fix: "use the rollbridge version that wrote it to recover, or delete the file after stopping leftovers by hand",
    });
  }
  const parsed = stateSnapshot.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new RollbridgeError("STATE_FILE_INVALID", `state file ${file} is malformed: ${first ? `${first.path.join(".") || "(root)"}: ${first.message}` : "unknown problem"}`, {
      fix: "inspect it, stop any leftover processes by hand, then delete it",
    });
  }
  const data = parsed.data;
  for (const entry of [...data.processes, ...data.orphans]) entry.uid ??= owner;
  return data;
}

/**
 * Prepares the state file's directory. `statePath: true` (the private default) gets a private
 * directory like the runtime one; a relative statePath's directory is created 0700 when missing
 * and refused when another user owns it or everyone may write it; an absolute one is created as given.
 */
export async function ensureStateDir(file: string, source: "default" | "relative" | "absolute"): Promise<void> {
  const dir = path.dirname(file);
  switch (source) {
    case "default":
      return ensurePrivateDir(dir);
    case "relative":
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      return checkDirectory(dir, await fs.lstat(dir), euid());
    case "absolute":
      await fs.mkdir(dir, { recursive: true });
      return;
    default: {
      const _exhaustive: never = source;
      return _exhaustive;
    }
  }
}

/** Replaces the snapshot atomically: a random temp file (O_EXCL) in the same directory, fsync, rename, fsync of the directory. */
export async function writeStateFile(file: string, snapshot: StateSnapshot): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await writeAtomic(file, JSON.stringify(snapshot, null, 2) + "\n", { mode: 0o600, owners: trustedStateOwners(), purpose: "write the state file" });
}

/** Removes the snapshot (a clean shutdown); a missing file is fine. */
export async function removeStateFile(file: string): Promise<void> {
  await fs.unlink(file).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== "ENOENT") throw error;
  });
}

/** A state file is ours (the daemon's uid) or root's; nobody else's is ever trusted. */
function trustedStateOwners(): number[] {
  return [...new Set([euid(), 0])];
}
