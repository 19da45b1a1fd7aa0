// Building the desired document a command asks for: from -f FILE / stdin, or from flags
// merged over the current desired file (so replicas and env set earlier are kept).
import { promises as fs } from "node:fs";
import path from "node:path";
import { parseDesiredText, type DesiredDocument } from "../config/desired-schema.js";
import type { LoadedConfig } from "../config/load.js";
import type { CommandContext, OptionSpec } from "./command.js";
import { usageError } from "./output.js";

export const DESIRED_OPTIONS: Record<string, OptionSpec> = {
  file: { type: "string", short: "f", description: "desired state from this YAML/JSON file, or - for stdin", valueName: "FILE" },
  "release-path": { type: "string", description: "release directory (may be a symlink such as current)", valueName: "P" },
  revision: { type: "string", description: "revision of the release (e.g. a git sha)", valueName: "R" },
  "release-id": { type: "string", description: "release id (default: the basename of the resolved path)", valueName: "ID" },
  replicas: { type: "string", multiple: true, description: "per-process replica count, repeatable", valueName: "id=N" },
};

/** Returns null when the command was given no desired-state input at all. */
export async function desiredFromInput(ctx: CommandContext, loaded: LoadedConfig): Promise<DesiredDocument | null> {
  const v = ctx.values;
  const file = v.file as string | undefined;
  const releasePath = v["release-path"] as string | undefined;
  const replicaFlags = (v.replicas as string[] | undefined) ?? [];
  if (file !== undefined) {
    if (releasePath || v.revision || replicaFlags.length) throw usageError("-f cannot be combined with --release-path, --revision or --replicas", "put everything in the file, or use flags only");
    const text = file === "-" ? await readStdin() : await fs.readFile(path.resolve(ctx.cwd, file), "utf8");
    const doc = parseDesiredText(text, file === "-" ? "<stdin>" : file);
    if (doc.release && !path.isAbsolute(doc.release.path)) {
      // Relative paths in a file given on the command line are relative to where it was run.
      doc.release = { ...doc.release, path: path.resolve(ctx.cwd, doc.release.path) };
    }
    return doc;
  }
  if (!releasePath && !v.revision && !v["release-id"] && replicaFlags.length === 0) return null;
  const current = await readCurrent(loaded.config.desiredPath);
  const doc: DesiredDocument = { ...(current ?? {}) };
  delete doc.stopped;
  if (releasePath) {
    doc.release = { path: path.resolve(ctx.cwd, releasePath) };
    if (v.revision) doc.release.revision = v.revision as string;
    if (v["release-id"]) doc.release.id = v["release-id"] as string;
  } else if (v.revision || v["release-id"]) {
    if (!doc.release) throw usageError("--revision/--release-id need --release-path when there is no current desired release");
    throw usageError("--revision and --release-id describe a release: pass --release-path too");
  }
  if (!doc.release) throw usageError("no release to run", "pass --release-path P");
  if (replicaFlags.length) doc.replicas = { ...(doc.replicas ?? {}), ...parseReplicas(replicaFlags) };
  return doc;
}

export function parseReplicas(flags: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const flag of flags) {
    const m = /^([^=]+)=(\d+)$/.exec(flag);
    if (!m || m[1] === undefined || m[2] === undefined) throw usageError(`--replicas ${flag}: expected id=N`, "for example --replicas worker=4");
    out[m[1]] = Number(m[2]);
  }
  return out;
}

async function readCurrent(file: string): Promise<DesiredDocument | null> {
  try {
    return parseDesiredText(await fs.readFile(file, "utf8"), file);
  } catch {
    return null;
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
