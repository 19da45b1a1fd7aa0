// The desired document that brings a retained release back (`rollback`, a `--timeout`
// abandon), and the symlink workflow around it. When the desired file follows a symlink
// (`release.path: /srv/shop/current`), going back re-points that link at the release — a new
// link under a random name beside it, renamed over it, as Capistrano's rollback does — and
// the desired file keeps naming the link, so later flips of `current` are still followed.
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import type { DesiredDocument } from "../config/desired-schema.js";
import { RollbridgeError, errorMessage } from "../errors.js";
import type { DaemonParts } from "./parts.js";
import type { ReleaseRecord } from "../reconcile/types.js";

/** A symlink to re-point: where it is and what it should name (relative when it was). */
export interface LinkFlip {
  path: string;
  target: string;
}

export interface ReleaseDocument {
  /** The desired document to write. */
  document: DesiredDocument;
  /** The same release by its resolved path: what to validate before anything is touched. */
  direct: DesiredDocument;
  /** Set when the desired file follows a symlink: re-point it before writing `document`. */
  link: LinkFlip | null;
}

/**
 * The document for `rec` on top of the current desired file (its `replicas` are kept). Only
 * what the desired state wrote for the release is written back (`release.id` and `revision`
 * only when they were given, never a numbered display id), so it resolves to the same
 * generation and the daemon resumes that record instead of creating a new release.
 */
export async function documentFor(daemon: DaemonParts, rec: ReleaseRecord): Promise<ReleaseDocument> {
  const current = daemon.store.current();
  const spec = rec.spec;
  const direct: NonNullable<DesiredDocument["release"]> = { path: spec.path };
  if (spec.revision !== null) direct.revision = spec.revision;
  if (spec.requestedId !== null) direct.id = spec.requestedId;
  const base: DesiredDocument = {};
  if (Object.keys(spec.env).length > 0) base.env = { ...spec.env };
  const replicas = current.document?.replicas;
  if (replicas && Object.keys(replicas).length > 0) base.replicas = { ...replicas };
  const directDoc: DesiredDocument = { ...base, release: direct };

  const linkPath = await followedLink(current.target?.release?.requestedPath ?? null);
  const written = current.document?.release?.path;
  if (linkPath === null || written === undefined) return { document: directDoc, direct: directDoc, link: null };
  // Through the link: the path as the file wrote it, and only what was given explicitly (a
  // revision read from REVISION is read again from the release the link now names).
  const viaLink: NonNullable<DesiredDocument["release"]> = { path: written };
  if (spec.requestedRevision !== null) viaLink.revision = spec.requestedRevision;
  if (spec.requestedId !== null) viaLink.id = spec.requestedId;
  const previous = await fs.readlink(linkPath);
  const target = path.isAbsolute(previous) ? spec.path : path.relative(path.dirname(linkPath), spec.path) || ".";
  return { document: { ...base, release: viaLink }, direct: directDoc, link: { path: linkPath, target } };
}

/** `requested` when it is a symlink right now (the desired file follows it), else null. */
export async function followedLink(requested: string | null): Promise<string | null> {
  if (requested === null) return null;
  const stat = await fs.lstat(requested).catch(() => null);
  return stat?.isSymbolicLink() ? requested : null;
}

/**
 * Re-points a symlink atomically: the new link is created under an unpredictable name in the
 * same directory (symlink(2) never follows or reuses an existing entry), then renamed over the
 * old one, so readers see the old target or the new one and never no link at all.
 */
export async function repointLink(link: LinkFlip): Promise<void> {
  const dir = path.dirname(link.path);
  const tmp = path.join(dir, `.${path.basename(link.path)}.rollbridge-${randomBytes(8).toString("hex")}`);
  const fail = (cause: unknown): RollbridgeError =>
    new RollbridgeError("DESIRED_INVALID", `cannot re-point the symlink ${link.path} at ${link.target}: ${errorMessage(cause)}`, {
      cause,
      fix: `give the daemon's user write access to ${dir}, or flip the link yourself (ln -s ${link.target} ${path.join(dir, ".tmp-link")} && mv -T ${path.join(dir, ".tmp-link")} ${link.path})`,
    });
  try {
    await fs.symlink(link.target, tmp);
  } catch (cause) {
    throw fail(cause);
  }
  try {
    const stat = await fs.lstat(link.path);
    if (!stat.isSymbolicLink()) throw new Error("it is no longer a symlink");
    await fs.rename(tmp, link.path);
  } catch (cause) {
    await fs.unlink(tmp).catch(() => undefined);
    throw fail(cause);
  }
}
