// Opening files so that no other local user can redirect a write: a shared leaf (like
// errors.ts) for every file the daemon and the CLI write or append (daemon log, pid file, lock,
// state file, desired file, process log files). Every open uses O_NOFOLLOW (a planted symlink
// fails instead of being followed) and O_NONBLOCK (a planted FIFO fails or is refused instead
// of blocking), and then checks with fstat what was really opened; temp files are created with
// O_EXCL under a random name. A path that is not a regular file of the expected owner is refused
// at once, with an error naming the path, what it is and who owns it.
import { randomBytes } from "node:crypto";
import { constants, readFileSync, type Stats } from "node:fs";
import { lstat, open, rename, unlink, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { RollbridgeError } from "./errors.js";

/** Who may own an existing file that is about to be written or trusted. */
export interface OwnerRule {
  /** Acceptable owners (uids); default: only the effective uid of this process. */
  owners?: readonly number[];
  /** Any owner is fine (the desired file: its owner is kept, whoever it is). */
  anyOwner?: boolean;
}

/** Opens `file` for appending (created with `mode` when missing); the handle is a regular file of an expected owner. */
export async function openAppend(file: string, options: OwnerRule & { mode?: number; purpose?: string } = {}): Promise<FileHandle> {
  const before = await checkExisting(file, options, options.purpose ?? "append to");
  const flags = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  const handle = await openOrExplain(file, flags, options.mode ?? 0o600, options.purpose ?? "append to");
  return confirm(handle, file, options, before, options.purpose ?? "append to");
}

/** Creates `file` exclusively (fails with EEXIST when anything is there, a dangling link included). */
export async function createExclusive(file: string, mode = 0o600): Promise<FileHandle> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  const handle = await open(file, flags, mode);
  // The umask may have narrowed the mode; what the caller asked for is what it gets.
  await handle.chmod(mode).catch(() => undefined);
  return handle;
}

/** Opens `file` for reading, refusing links, FIFOs and files of unexpected owners; null when it does not exist. */
export async function openTrustedRead(file: string, options: OwnerRule & { purpose?: string } = {}): Promise<{ handle: FileHandle; stat: Stats } | null> {
  const purpose = options.purpose ?? "read";
  const before = await checkExisting(file, options, purpose);
  if (before === null) return null;
  let handle: FileHandle;
  try {
    handle = await openOrExplain(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0, purpose);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
  await confirm(handle, file, options, before, purpose);
  return { handle, stat: await handle.stat() };
}

/** The text of a trusted file (see openTrustedRead); null when it does not exist. */
export async function readTrusted(file: string, options: OwnerRule & { purpose?: string; maxBytes?: number } = {}): Promise<{ text: string; stat: Stats } | null> {
  const opened = await openTrustedRead(file, options);
  if (opened === null) return null;
  try {
    const max = options.maxBytes ?? 64 * 1024 * 1024;
    if (opened.stat.size > max) throw unsafe(file, `it is ${opened.stat.size} bytes, more than the ${max} allowed`, `inspect ${file}; a file that large was not written by Rollbridge`);
    return { text: await opened.handle.readFile("utf8"), stat: opened.stat };
  } finally {
    await opened.handle.close();
  }
}

export interface AtomicWriteOptions extends OwnerRule {
  /** Mode of a new file (default 0600). */
  mode?: number;
  /** Keep the mode, owner and group of the file being replaced (the desired file). */
  keepOwnership?: boolean;
  /** Owner and group of the new file (default: this process's). */
  uid?: number;
  gid?: number;
  purpose?: string;
}

/**
 * Replaces `file` atomically: a temp file beside it (random name, O_EXCL, O_NOFOLLOW), written and
 * fsynced, renamed over `file`, then the directory fsynced. An existing `file` must be a regular
 * file of an expected owner. With `keepOwnership` the new file gets the old one's mode, owner and
 * group, and the write is refused when the owner cannot be kept.
 */
export async function writeAtomic(file: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const purpose = options.purpose ?? "replace";
  const existing = await checkExisting(file, options, purpose);
  const dir = path.dirname(file);
  const tmp = tempPathFor(file);
  const keep = options.keepOwnership === true && existing !== null;
  const mode = keep ? existing.mode & 0o7777 : (options.mode ?? 0o600);
  const uid = keep ? existing.uid : options.uid;
  const gid = keep ? existing.gid : options.gid;
  // 0600 until the owner is right: nobody else can read it in between.
  const handle = await createExclusive(tmp, 0o600);
  try {
    if ((uid !== undefined && uid !== euid()) || (gid !== undefined && gid !== egid())) {
      try {
        await handle.chown(uid ?? -1, gid ?? -1);
      } catch (cause) {
        throw new RollbridgeError("UNSAFE_PATH", `cannot ${purpose} ${file} keeping its owner ${describeOwner(uid ?? euid())} and group ${gid ?? egid()}: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`, {
          cause,
          fix: `run this as ${describeOwner(uid ?? euid())} or as root, or give ${file} to ${describeOwner(euid())} (chown) so it may be rewritten`,
        });
      }
    }
    await handle.chmod(mode);
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
  try {
    await rename(tmp, file);
  } catch (error) {
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
  await syncDirectory(dir);
}

/** A temp path beside `file` that no other user can predict (and so cannot pre-create). */
export function tempPathFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(8).toString("hex")}.tmp`);
}

/**
 * lstat of `file`: null when it does not exist; UNSAFE_PATH when it is not a regular file, has
 * other hard links, or has an owner the rule does not accept.
 */
export async function checkExisting(file: string, rule: OwnerRule = {}, purpose = "write"): Promise<Stats | null> {
  let stat: Stats;
  try {
    stat = await lstat(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
  refuseUnexpected(file, stat, rule, purpose);
  return stat;
}

/** What kind of file a stat describes, in words for an error message. */
export function fileKind(stat: Stats): string {
  if (stat.isFile()) return "a regular file";
  if (stat.isDirectory()) return "a directory";
  if (stat.isSymbolicLink()) return "a symbolic link";
  if (stat.isFIFO()) return "a FIFO (named pipe)";
  if (stat.isSocket()) return "a socket";
  if (stat.isCharacterDevice()) return "a character device";
  if (stat.isBlockDevice()) return "a block device";
  return "a file of unknown type";
}

/** "uid 1001 (deploy)", or "root"; names come from /etc/passwd when it has one. */
export function describeOwner(uid: number): string {
  if (uid === 0) return "root (uid 0)";
  const name = userName(uid);
  return name === null ? `uid ${uid}` : `uid ${uid} (${name})`;
}

/** The uid of a user name or numeric string; null when /etc/passwd has no such user. */
export function lookupUid(user: string | number): number | null {
  if (typeof user === "number") return user;
  if (/^\d+$/.test(user)) return Number(user);
  for (const entry of passwd()) if (entry.name === user) return entry.uid;
  return null;
}

/** The gid of a group name or numeric string; null when /etc/group has no such group. */
export function lookupGid(group: string | number): number | null {
  if (typeof group === "number") return group;
  if (/^\d+$/.test(group)) return Number(group);
  for (const entry of idFile("/etc/group")) if (entry.name === group) return entry.uid;
  return null;
}

/** The effective uid (0 on platforms without one). */
export function euid(): number {
  return process.geteuid?.() ?? 0;
}

/** The effective gid (0 on platforms without one). */
export function egid(): number {
  return process.getegid?.() ?? 0;
}

/** An UNSAFE_PATH error: `file` and why it is refused, with a fix. */
export function unsafe(file: string, why: string, fix: string): RollbridgeError {
  return new RollbridgeError("UNSAFE_PATH", `refusing ${file}: ${why}`, { fix, details: { path: file } });
}

/** Others may write into it (world-writable) and the sticky bit does not protect what is in it. */
export function openToOthers(stat: Stats): boolean {
  return (stat.mode & 0o002) !== 0 && (stat.mode & 0o1000) === 0;
}

function refuseUnexpected(file: string, stat: Stats, rule: OwnerRule, purpose: string): void {
  const owner = describeOwner(stat.uid);
  if (!stat.isFile()) {
    throw unsafe(file, `it is ${fileKind(stat)} owned by ${owner}, not a regular file, so it was not opened to ${purpose}`, `remove it (rm ${file}) if you did not put it there, or choose another path`);
  }
  if (!rule.anyOwner) {
    const owners = rule.owners ?? [euid()];
    if (!owners.includes(stat.uid)) {
      throw unsafe(
        file,
        `it is owned by ${owner}, not by ${owners.map(describeOwner).join(" or ")}, so it was not opened to ${purpose}`,
        `if it is yours, chown it to ${describeOwner(owners[0] ?? euid())}; otherwise remove it (rm ${file}) — another user created it`,
      );
    }
  }
  if (stat.nlink > 1) {
    throw unsafe(file, `it has ${stat.nlink} hard links (owned by ${owner}), so writing it could change another file`, `remove it (rm ${file}) and let Rollbridge create it`);
  }
}

async function openOrExplain(file: string, flags: number, mode: number, purpose: string): Promise<FileHandle> {
  try {
    return await open(file, flags, mode);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // ELOOP: a symlink appeared after the lstat; ENXIO: a FIFO nobody reads.
    if (code === "ELOOP" || code === "ENXIO" || code === "EWOULDBLOCK" || code === "EAGAIN") {
      const stat = await lstat(file).catch(() => null);
      if (stat) refuseUnexpected(file, stat, { anyOwner: true }, purpose);
      throw unsafe(file, `it could not be opened safely (${code})`, `remove it (rm ${file}) and let Rollbridge create it`);
    }
    throw error;
  }
}

/** fstat of what was opened: it must be what the lstat saw (or a new file of ours). */
async function confirm(handle: FileHandle, file: string, rule: OwnerRule, before: Stats | null, purpose: string): Promise<FileHandle> {
  try {
    const stat = await handle.stat();
    if (before !== null && (stat.ino !== before.ino || stat.dev !== before.dev)) {
      throw unsafe(file, "it was replaced while being opened", `check who else writes ${path.dirname(file)}, then try again`);
    }
    refuseUnexpected(file, stat, before === null ? { owners: [euid()] } : rule, purpose);
    return handle;
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
  }
}

// Read on every use (it is small): a long-running daemon must see users created after it started.
function passwd(): { name: string; uid: number }[] {
  return idFile("/etc/passwd");
}

/** Name and numeric id (third field) of each entry of /etc/passwd or /etc/group. */
function idFile(file: string): { name: string; uid: number }[] {
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    // no such file: numeric ids only
  }
  return text
    .split("\n")
    .map((line) => line.split(":"))
    .filter((parts) => parts.length >= 3 && parts[0] && /^\d+$/.test(parts[2] ?? ""))
    .map((parts) => ({ name: parts[0]!, uid: Number(parts[2]) }));
}

function userName(uid: number): string | null {
  return passwd().find((entry) => entry.uid === uid)?.name ?? null;
}
