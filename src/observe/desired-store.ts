// Reads the desired-state file on every pass and keeps the last good version: a missing,
// unparsable or invalid file never changes what runs, it only records an error.
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { parseDesiredText, serializeDesired, type DesiredDocument } from "../config/desired-schema.js";
import { RollbridgeError, errorMessage, isRollbridgeError } from "../errors.js";
import type { DesiredTarget, ReleaseSpec } from "../reconcile/types.js";

export interface DesiredError {
  message: string;
  code: string;
  at: string;
}

export interface DesiredSnapshot {
  /** The last good desired state (null before the first good read). */
  target: DesiredTarget | null;
  /** The document behind `target`, as written. */
  document: DesiredDocument | null;
  error: DesiredError | null;
  /** True when this read changed `target` or `error`. */
  changed: boolean;
}

export class DesiredStore {
  private target: DesiredTarget | null = null;
  private document: DesiredDocument | null = null;
  private error: DesiredError | null = null;
  private everSeen = false;

  constructor(readonly filePath: string) {}

  current(): DesiredSnapshot {
    return { target: this.target, document: this.document, error: this.error, changed: false };
  }

  /** Re-reads the file; on any problem keeps the last good target and records why. */
  async refresh(): Promise<DesiredSnapshot> {
    let text: string;
    try {
      text = await fs.readFile(this.filePath, "utf8");
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      if (code === "ENOENT" && !this.everSeen) return this.settle(this.target, this.document, null);
      const message = code === "ENOENT" ? `desired file ${this.filePath} is missing (keeping the last good state)` : `cannot read desired file ${this.filePath}: ${errorMessage(cause)}`;
      return this.settle(this.target, this.document, { message, code: "DESIRED_NOT_FOUND", at: new Date().toISOString() });
    }
    this.everSeen = true;
    try {
      const document = parseDesiredText(text, this.filePath);
      const target = await resolveDesired(document, path.dirname(this.filePath));
      return this.settle(target, document, null);
    } catch (cause) {
      const code = isRollbridgeError(cause) ? cause.code : "DESIRED_INVALID";
      return this.settle(this.target, this.document, { message: errorMessage(cause), code, at: new Date().toISOString() });
    }
  }

  private settle(target: DesiredTarget | null, document: DesiredDocument | null, error: DesiredError | null): DesiredSnapshot {
    const changed = target?.documentHash !== this.target?.documentHash || error?.message !== this.error?.message;
    this.target = target;
    this.document = document;
    if (error && this.error && error.message === this.error.message) error = this.error; // keep the first time it was seen
    this.error = error;
    return { target, document, error, changed };
  }
}

/** Turns a validated document into a target: resolves the release path, id, revision and hashes. */
export async function resolveDesired(document: DesiredDocument, baseDir: string): Promise<DesiredTarget> {
  let release: ReleaseSpec | null = null;
  if (document.release) {
    const requestedPath = path.resolve(baseDir, document.release.path);
    let resolved: string;
    try {
      resolved = await fs.realpath(requestedPath);
    } catch (cause) {
      throw new RollbridgeError("DESIRED_INVALID", `release.path ${requestedPath} does not exist`, {
        cause,
        fix: "unpack the release before pointing the desired file at it",
      });
    }
    const stat = await fs.stat(resolved);
    if (!stat.isDirectory()) throw new RollbridgeError("DESIRED_INVALID", `release.path ${resolved} is not a directory`);
    const id = document.release.id ?? path.basename(resolved);
    const revision = document.release.revision ?? (await readRevisionFile(resolved));
    const env = sortRecord(document.env ?? {});
    const generation = hash({ id, path: resolved, revision, env });
    release = { id, path: resolved, requestedPath, revision, env, generation };
  }
  const replicas = sortRecord(document.replicas ?? {});
  const stopped = document.stopped === true;
  if (!release && !stopped) throw new RollbridgeError("DESIRED_INVALID", "release is required unless stopped: true");
  return { release, replicas, stopped, documentHash: hash({ release: release?.generation ?? null, replicas, stopped }) };
}

/** Capistrano convention: a REVISION file at the release root names the revision. */
async function readRevisionFile(releasePath: string): Promise<string | null> {
  try {
    const text = (await fs.readFile(path.join(releasePath, "REVISION"), "utf8")).trim();
    return text.length > 0 && text.length < 200 ? text.split(/\s+/)[0] ?? null : null;
  } catch {
    return null;
  }
}

/** Writes the desired file atomically: temp file in the same directory, fsync, rename. */
export async function writeDesiredFile(filePath: string, document: DesiredDocument): Promise<void> {
  const dir = path.dirname(filePath);
  await fs.mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(filePath)}.${process.pid}.${Date.now()}.tmp`);
  const handle = await fs.open(tmp, "w", 0o644);
  try {
    await handle.writeFile(serializeDesired(document));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(tmp, filePath);
}

export function hash(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex").slice(0, 12);
}

function sortRecord<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
