// One read of the desired state as it is on disk right now: the file, the release path it
// names (symlinks resolved), the REVISION file — plus when those inputs last changed, so the
// store can tell a finished write from one still in progress. No state, no adoption.
import { createHash } from "node:crypto";
import { constants as fsConstants, promises as fs, type Stats } from "node:fs";
import path from "node:path";
import { CONTROL_CHARACTERS } from "../config/constants.js";
import { checkDesiredSize, parseDesiredText, serializeDesired, type DesiredDocument } from "../config/desired-schema.js";
import { RollbridgeError, errorMessage, isRollbridgeError, type ErrorCode } from "../errors.js";
import type { DesiredTarget, ReleaseSpec } from "../reconcile/types.js";
import { writeAtomic } from "../safe-file.js";

/** What one read found: a valid target, a problem, or no file that was never there. */
export type DesiredRead =
  | { kind: "valid"; target: DesiredTarget; document: DesiredDocument; textHash: string; changedAt: number; fingerprint: string; watch: string[] }
  | { kind: "invalid"; code: ErrorCode; message: string; fingerprint: string; watch: string[] }
  | { kind: "missing"; message: string; fingerprint: string; watch: string[] };

/**
 * Reads and resolves the desired file. Never throws: every problem (unreadable, unparsable,
 * schema violation, release path missing) becomes an "invalid" or "missing" read with its cause.
 */
export async function readDesired(filePath: string): Promise<DesiredRead> {
  const watch = [filePath];
  let text: string;
  let fileStats: Stats[];
  try {
    // Refused before it is read: an oversized file must not cost the daemon its size in memory.
    const tooLarge = sizeProblem((await fs.stat(filePath)).size, filePath);
    if (tooLarge) return invalid("DESIRED_INVALID", tooLarge, watch);
    text = await fs.readFile(filePath, "utf8");
    fileStats = await statsOf(filePath);
    const real = await fs.realpath(filePath).catch(() => filePath);
    if (real !== filePath) watch.push(real); // a symlinked desired file: watch where it points too
  } catch (cause) {
    const errno = (cause as NodeJS.ErrnoException).code;
    if (errno === "ENOENT") {
      const message = `desired file ${filePath} is missing (keeping the last good state)`;
      return { kind: "missing", message, fingerprint: `missing:${filePath}`, watch };
    }
    return invalid("DESIRED_NOT_FOUND", `cannot read desired file ${filePath}: ${errorMessage(cause)}`, watch);
  }
  let document: DesiredDocument;
  try {
    document = parseDesiredText(text, filePath);
  } catch (cause) {
    return invalid(isRollbridgeError(cause) ? cause.code : "DESIRED_INVALID", errorMessage(cause), watch);
  }
  // The release path is watched when it is a symlink (a flip is a deploy) or missing (its
  // appearance fixes the file); a plain directory needs no watching.
  const requested = document.release ? path.resolve(path.dirname(filePath), document.release.path) : null;
  try {
    const { target, inputs } = await resolveWithInputs(document, path.dirname(filePath));
    if (requested && requested !== target.release?.path) watch.push(requested);
    const changedAt = Math.max(...[...fileStats, ...inputs].map(changeTime));
    return { kind: "valid", target, document, textHash: hash(text), changedAt, fingerprint: `valid:${target.documentHash}:${requested ?? ""}`, watch };
  } catch (cause) {
    if (requested) watch.push(requested);
    return invalid(isRollbridgeError(cause) ? cause.code : "DESIRED_INVALID", errorMessage(cause), watch);
  }
}

/** Turns a validated document into a target: resolves the release path, id, revision and hashes. */
export async function resolveDesired(document: DesiredDocument, baseDir: string): Promise<DesiredTarget> {
  return (await resolveWithInputs(document, baseDir)).target;
}

/**
 * Writes the desired file atomically (a random temp name beside it, O_EXCL, fsync, rename) and
 * returns the text written. The file keeps its mode, owner and group (it may hold env secrets
 * that its owner made private); a new one is 0600. A symlink, FIFO or other non-regular file in
 * its place is refused, and so is a rewrite that could not keep the owner.
 */
export async function writeDesiredFile(filePath: string, document: DesiredDocument): Promise<string> {
  const text = serializeDesired(document);
  await fs.mkdir(path.dirname(filePath), { recursive: true });
  await writeAtomic(filePath, text, { anyOwner: true, keepOwnership: true, mode: 0o600, purpose: "write the desired file" });
  return text;
}

/** A short content hash: release generations, document hashes, own-write markers. */
export function hash(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex").slice(0, 12);
}

async function resolveWithInputs(document: DesiredDocument, baseDir: string): Promise<{ target: DesiredTarget; inputs: Stats[] }> {
  let release: ReleaseSpec | null = null;
  const inputs: Stats[] = [];
  if (document.release) {
    const requestedPath = path.resolve(baseDir, document.release.path);
    let resolved: string;
    try {
      resolved = await fs.realpath(requestedPath);
    } catch (cause) {
      const dangling = await fs.lstat(requestedPath).then(
        (s) => s.isSymbolicLink(),
        () => false,
      );
      throw new RollbridgeError("DESIRED_INVALID", dangling ? `release.path ${requestedPath} is a symlink to something that does not exist` : `release.path ${requestedPath} does not exist`, {
        cause,
        fix: "unpack the release before pointing the desired file (or the symlink) at it",
      });
    }
    const stat = await fs.stat(resolved);
    if (!stat.isDirectory()) throw new RollbridgeError("DESIRED_INVALID", `release.path ${resolved} is not a directory`, { fix: "point release.path at the release's root directory" });
    // The link itself (a flip makes it new) and the directory (unpacking changes it).
    inputs.push(stat, ...(await statsOf(requestedPath)));
    const id = document.release.id ?? path.basename(resolved);
    if (CONTROL_CHARACTERS.test(id)) {
      throw new RollbridgeError("DESIRED_INVALID", `release.path ${JSON.stringify(resolved)} has control characters in its directory name, which would be the release id`, {
        fix: "rename the release directory, or set release.id (or --release-id) to a plain name",
      });
    }
    // Only "/" has an empty basename; an empty id would name nothing in status or logs.
    if (id === "") throw new RollbridgeError("DESIRED_INVALID", `release.path ${resolved} has no directory name to use as the release id`, { fix: "set release.id, or point release.path at the release's own directory" });
    let revision = document.release.revision ?? null;
    if (revision === null) {
      const file = await readRevisionFile(resolved);
      if (file) {
        revision = file.revision;
        inputs.push(file.stat);
      }
    }
    const env = sortRecord(document.env ?? {});
    const generation = hash({ id, path: resolved, revision, env });
    release = { id, requestedId: document.release.id ?? null, requestedRevision: document.release.revision ?? null, path: resolved, requestedPath, revision, env, generation };
  }
  const replicas = sortRecord(document.replicas ?? {});
  const stopped = document.stopped === true;
  if (!release && !stopped) throw new RollbridgeError("DESIRED_INVALID", "release is required unless stopped: true");
  const rollout = document.rollout;
  const documentHash = hash({ release: release?.generation ?? null, replicas, stopped, ...(rollout ? { rollout } : {}) });
  return { target: { release, replicas, stopped, documentHash, ...(rollout ? { rollout } : {}) }, inputs };
}

/**
 * Capistrano convention: a REVISION file at the release root names the revision (its first word;
 * only the first 4 KiB are read). A revision with control characters is refused, not used.
 */
async function readRevisionFile(releasePath: string): Promise<{ revision: string; stat: Stats } | null> {
  const file = path.join(releasePath, "REVISION");
  let text: string;
  let stat: Stats;
  try {
    const handle = await fs.open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    try {
      stat = await handle.stat();
      if (!stat.isFile()) return null;
      const { buffer, bytesRead } = await handle.read({ buffer: Buffer.alloc(REVISION_READ_BYTES), position: 0 });
      text = buffer.subarray(0, bytesRead).toString("utf8");
    } finally {
      await handle.close();
    }
  } catch {
    return null;
  }
  const revision = text.trim().split(/\s+/)[0] ?? "";
  if (revision.length === 0 || revision.length >= 200) return null;
  if (CONTROL_CHARACTERS.test(revision)) {
    throw new RollbridgeError("DESIRED_INVALID", `${file} names a revision with control characters`, { fix: "write a plain revision (e.g. a commit sha) to REVISION, or pass --revision" });
  }
  return { revision, stat };
}

const REVISION_READ_BYTES = 4096;

/** The message for a desired file over the cap, or null when it fits. */
function sizeProblem(bytes: number, filePath: string): string | null {
  try {
    checkDesiredSize(bytes, `desired file ${filePath}`);
    return null;
  } catch (error) {
    return errorMessage(error);
  }
}

/** stat of the path and, when it is a symlink, lstat of the link itself. */
async function statsOf(p: string): Promise<Stats[]> {
  const [stat, lstat] = await Promise.all([fs.stat(p), fs.lstat(p)]);
  return lstat.isSymbolicLink() ? [stat, lstat] : [stat];
}

/**
 * When a file last changed, from its ctime (which every write, truncate, rename and utimes
 * moves, and which no user can set back). A whole-second ctime may come from a filesystem
 * with coarse timestamps: count it as the end of that second so a fresh write is not taken
 * for an old one.
 */
function changeTime(stat: Stats): number {
  const t = stat.ctimeMs;
  return t % 1000 === 0 ? t + 1000 : t;
}

function invalid(code: ErrorCode, message: string, watch: string[]): DesiredRead {
  return { kind: "invalid", code, message, fingerprint: `invalid:${code}:${message}`, watch };
}

function sortRecord<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
