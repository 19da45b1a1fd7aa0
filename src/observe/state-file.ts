// The daemon's state snapshot (config `statePath`): what it ran, so that after a hard death
// (SIGKILL, OOM) the next daemon or `rollbridge recover` can find what is still alive. It holds
// ids, pids, start times, ports and counters — never environment values, command lines or
// output — and is replaced atomically (temp file, fsync, rename), so a reader never sees half.
import { promises as fs } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { RollbridgeError, errorMessage } from "../errors.js";

/** Bumped on any incompatible change of the shape below; readers refuse other versions. */
export const STATE_FILE_VERSION = 1;

const releaseState = z.enum(["starting", "active", "draining", "stopped", "failed"]);

const snapshotRelease = z.object({
  key: z.string(),
  id: z.string(),
  path: z.string(),
  requestedPath: z.string(),
  revision: z.string().nullable(),
  state: releaseState,
  createdAt: z.number(),
  activatedAt: z.number().optional(),
  drainStartedAt: z.number().optional(),
  stoppedAt: z.number().optional(),
  failure: z.object({ reason: z.string(), code: z.string(), at: z.number() }).optional(),
  failedAttempts: z.number().int().min(0).default(0),
  /** Names of the desired `env` variables of this release; their values are never written. */
  envKeys: z.array(z.string()).default([]),
});

const snapshotProcess = z.object({
  instanceId: z.string(),
  processId: z.string(),
  releaseKey: z.string(),
  releaseId: z.string(),
  pid: z.number().int().positive(),
  pgid: z.number().int().positive(),
  /** Field 22 of /proc/<pid>/stat: with the pid, the process's identity. */
  startTime: z.number(),
  port: z.number().int().nullable(),
  restarts: z.number().int().min(0),
  lastStartReason: z.string(),
  startedAt: z.number().nullable(),
  stopSignal: z.string(),
  gracefulStopMs: z.number().min(0),
});

// An orphan is a process entry of an earlier daemon (without its counters), plus when it was found.
const snapshotOrphan = snapshotProcess.omit({ restarts: true, lastStartReason: true, startedAt: true }).extend({ detectedAt: z.string() });

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

/** Reads the snapshot; null when there is none; STATE_FILE_INVALID when it cannot be trusted. */
export async function readStateFile(file: string): Promise<StateSnapshot | null> {
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (cause) {
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
  return parsed.data;
}

/** Replaces the snapshot atomically: a temp file in the same directory, fsync, rename, fsync of the directory. */
export async function writeStateFile(file: string, snapshot: StateSnapshot): Promise<void> {
  const dir = path.dirname(file);
  await fs.mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${++tmpCounter}.tmp`);
  const handle = await fs.open(tmp, "w", 0o600);
  try {
    await handle.writeFile(JSON.stringify(snapshot, null, 2) + "\n");
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await fs.unlink(tmp).catch(() => undefined);
    throw error;
  }
  await handle.close();
  try {
    await fs.rename(tmp, file);
  } catch (error) {
    await fs.unlink(tmp).catch(() => undefined);
    throw error;
  }
  await syncDirectory(dir);
}

/** Removes the snapshot (a clean shutdown); a missing file is fine. */
export async function removeStateFile(file: string): Promise<void> {
  await fs.unlink(file).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== "ENOENT") throw error;
  });
}

let tmpCounter = 0;

async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await fs.open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
  }
}
