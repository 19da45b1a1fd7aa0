// The record a running daemon keeps of its config file (`config-<hash>.json` in the runtime base,
// see runtime-dir.ts): which control socket serves that config. A CLI whose config file no longer
// loads (a broken edit while the daemon runs) finds the daemon through it. Written at start
// (atomically, through safe-file.ts), removed at shutdown; it holds paths and a pid, no secrets.
import { readdir, stat, unlink } from "node:fs/promises";
import path from "node:path";
import { euid, readTrusted, writeAtomic } from "../safe-file.js";
import { configRecordCandidates, configRecordPath, ensureBaseDir } from "./runtime-dir.js";

/** What a daemon records about the config it runs. */
export interface ConfigRecord {
  version: 1;
  configPath: string;
  socket: string;
  owner?: number | string | undefined;
  desiredPath: string;
  application: string;
  pid: number;
  writtenAt: string;
  /** configFingerprint (find.ts) of the text the daemon validated; absent for a JS config. */
  configHash?: string | undefined;
  /** The socket is the default one (no control.path), found among the default locations. */
  controlDefault?: boolean | undefined;
}

/** Writes the record of `record.configPath` (mode 0644: a group member's CLI must read it); returns its path. */
export async function writeConfigRecord(record: Omit<ConfigRecord, "version" | "writtenAt">): Promise<string> {
  const file = configRecordPath(record.configPath);
  await ensureBaseDir(path.dirname(file));
  const full: ConfigRecord = { version: 1, ...record, writtenAt: new Date().toISOString() };
  await writeAtomic(file, JSON.stringify(full) + "\n", { mode: 0o644, purpose: "record the daemon's config in" });
  return file;
}

/**
 * Removes the records in this user's runtime base whose daemon is gone (one killed with SIGKILL
 * never removed its own), so the base does not fill up over months of crashes. Best effort.
 */
export async function pruneConfigRecords(): Promise<void> {
  const base = path.dirname(configRecordPath("/"));
  const names = await readdir(base).catch(() => [] as string[]);
  for (const name of names.filter((n) => /^config-[0-9a-f]{16}\.json$/.test(n))) {
    const file = path.join(base, name);
    const record = await readRecord(file).catch(() => null);
    if (record === null || record.pid === process.pid) continue;
    const alive = await stat(`/proc/${record.pid}`).then(
      () => true,
      () => false,
    );
    if (!alive) await unlink(file).catch(() => undefined);
  }
}

/** Removes the record of `configPath` if it is still the one daemon `pid` wrote. */
export async function removeConfigRecord(configPath: string, pid: number): Promise<void> {
  const file = configRecordPath(configPath);
  const current = await readRecord(file).catch(() => null);
  if (current?.pid === pid) await unlink(file).catch(() => undefined);
}

/** The record of `configPath` a daemon left (this user's runtime base first, then root's); null when none. */
export async function findConfigRecord(configPath: string): Promise<ConfigRecord | null> {
  const absolute = path.resolve(configPath);
  for (const file of configRecordCandidates(absolute)) {
    const record = await readRecord(file).catch(() => null);
    if (record !== null && record.configPath === absolute) return record;
  }
  return null;
}

async function readRecord(file: string): Promise<ConfigRecord | null> {
  // Only root's or our own records count: another user could otherwise point us at their socket.
  const read = await readTrusted(file, { owners: [0, euid()], maxBytes: 64 * 1024, purpose: "read the daemon record" });
  if (read === null) return null;
  return parseRecord(JSON.parse(read.text));
}

// Checked by hand, not with zod: the CLI reads records on its fast path (see cli/context.ts).
function parseRecord(value: unknown): ConfigRecord | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const r = value as Record<string, unknown>;
  const strings = [r["configPath"], r["socket"], r["desiredPath"], r["application"], r["writtenAt"]];
  if (r["version"] !== 1 || !strings.every((s) => typeof s === "string")) return null;
  if (typeof r["pid"] !== "number" || !Number.isInteger(r["pid"]) || r["pid"] <= 0) return null;
  const owner = r["owner"];
  if (owner !== undefined && typeof owner !== "number" && typeof owner !== "string") return null;
  const configHash = typeof r["configHash"] === "string" ? r["configHash"] : undefined;
  const controlDefault = typeof r["controlDefault"] === "boolean" ? r["controlDefault"] : undefined;
  return {
    version: 1,
    configPath: r["configPath"] as string,
    socket: r["socket"] as string,
    owner,
    desiredPath: r["desiredPath"] as string,
    application: r["application"] as string,
    pid: r["pid"],
    writtenAt: r["writtenAt"] as string,
    configHash,
    controlDefault,
  };
}
