// Writing a desired state through the daemon: the one code path shared by `PUT /desired`
// (apply, deploy, stop) and `POST /rollback`, so every writer validates, diffs and writes the
// file the same way.
import path from "node:path";
import type { DesiredDocument } from "../config/desired-schema.js";
import { checkDesiredSize, desiredSchema, serializeDesired } from "../config/desired-schema.js";
import { RollbridgeError } from "../errors.js";
import type { DaemonParts } from "./parts.js";
import { resolveDesired } from "../observe/desired-store.js";
import { describeChanges } from "../reconcile/diff.js";
import { plannerConfig } from "../reconcile/planner-config.js";
import { namedTarget } from "../reconcile/release-identity.js";
import type { DesiredTarget } from "../reconcile/types.js";
import type { ApplyResponse, ApplyWarning, DiffResponse } from "../control/protocol.js";
import { followedLink } from "./release-document.js";
import { processById } from "../config/process-by-id.js";

/** Validates a desired document received over the socket (the same rules as the file). */
export function parseDocument(raw: unknown): DesiredDocument {
  const parsed = desiredSchema.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new RollbridgeError("DESIRED_INVALID", `invalid desired state: ${first ? `${first.path.join(".") || "(root)"}: ${first.message}` : "unknown problem"}`);
  }
  return parsed.data as DesiredDocument;
}

/**
 * Validates `raw` (including that the release path exists), writes the desired file
 * atomically unless `dryRun`, and asks for a reconcile pass. Nothing that runs is touched
 * when the document is invalid.
 */
export async function applyDesired(daemon: DaemonParts, raw: unknown, options: { dryRun?: boolean } = {}): Promise<ApplyResponse> {
  const document = parseDocument(raw);
  // The cap of the file, applied to what would be written: the file never goes over it.
  checkDesiredSize(Buffer.byteLength(serializeDesired(document)), "the desired document (as YAML)");
  const file = daemon.config.desiredPath;
  const target = namedTarget(await resolveDesired(document, path.dirname(file)), daemon.executor.runtime.releases.values());
  checkReplicaIds(daemon, target.replicas);
  const changes = describeChanges(plannerConfig(daemon.config), target, daemon.executor.observe());
  const warnings = await linkWarnings(daemon, target);
  const sinceSeq = daemon.events.lastSeq();
  if (!options.dryRun) {
    // Through the store: it knows the content is ours and adopts it without the settle delay.
    await daemon.store.write(document);
    const gen = target.release?.generation;
    // A known release named again: the next pass retries a failed one at once, and a rolled-back
    // one may be judged anew (runtime.ts applies the intent); the request asks for that pass.
    if (gen && daemon.executor.runtime.releases.has(gen)) daemon.executor.runtime.request({ type: "applyAgain", key: gen });
    else daemon.loop.trigger("apply");
  }
  return { file, releaseId: target.release?.id ?? null, generation: target.release?.generation ?? null, stopped: target.stopped, sinceSeq, changes, warnings };
}

/**
 * A desired file that follows a symlink (`current`) and a new document that names a release
 * directory instead: from then on flips of the link are not followed. Say so, and how to keep
 * following it.
 */
async function linkWarnings(daemon: DaemonParts, next: DesiredTarget): Promise<ApplyWarning[]> {
  const link = await followedLink(daemon.store.current().target?.release?.requestedPath ?? null);
  const requested = next.release?.requestedPath;
  if (link === null || requested === undefined || requested === link || (await followedLink(requested)) !== null) return [];
  const name = path.basename(link);
  const tmp = path.join(path.dirname(link), `.${name}.tmp`);
  return [
    {
      message: `the desired file followed the symlink ${link}; it now names ${requested} directly, so later flips of ${name} are not followed`,
      hint: `to keep following ${name}, flip the link instead (ln -s ${requested} ${tmp} && mv -T ${tmp} ${link}) or deploy --release-path ${link}`,
    },
  ];
}

/** Every `replicas` key must name a configured process; the proxied one keeps at least one. */
export function checkReplicaIds(daemon: DaemonParts, replicas: Record<string, number>): void {
  for (const [id, n] of Object.entries(replicas)) {
    const proc = processById(daemon.config, id);
    if (!proc) throw new RollbridgeError("DESIRED_INVALID", `replicas.${id}: no process "${id}" in the config`, { fix: `use one of: ${daemon.config.processes.map((p) => p.id).join(", ")}` });
    if (proc.policy === "proxied" && n < 1) throw new RollbridgeError("DESIRED_INVALID", `replicas.${id}: the proxied process needs at least 1 replica`);
    if ((proc.policy === "singleton" || proc.policy === "service") && n !== 1) {
      throw new RollbridgeError("DESIRED_INVALID", `replicas.${id}: a ${proc.policy} runs exactly one instance`, { fix: `remove replicas.${id}` });
    }
  }
}

/** `diff`: the changes `document` (or, without one, the desired file as it is now) would make. */
export async function diffDesired(daemon: DaemonParts, document: DesiredDocument | undefined): Promise<DiffResponse> {
  // The file as it is now (even if the daemon has not adopted it yet); its problem if it has one.
  const target = document !== undefined ? await resolveDesired(parseDocument(document), path.dirname(daemon.config.desiredPath)) : await daemon.store.peek();
  checkReplicaIds(daemon, target.replicas);
  return { changes: describeChanges(plannerConfig(daemon.config), namedTarget(target, daemon.executor.runtime.releases.values()), daemon.executor.observe()) };
}
