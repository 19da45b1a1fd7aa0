// The desired document a CLI input stands for (see DesiredInput in control/protocol.ts): the
// daemon parses the text of `-f FILE` and merges `--release-path` flags over its desired file,
// so `apply` and `diff` need neither the YAML parser nor the schema in the CLI. The errors are
// the ones the CLI gave when it did this itself (the same functions throw them).
import { promises as fs } from "node:fs";
import path from "node:path";
import { parseDesiredText, type DesiredDocument } from "../config/desired-schema.js";
import { RollbridgeError } from "../errors.js";

export async function documentFromInput(input: unknown, desiredPath: string): Promise<DesiredDocument> {
  if (!isRecord(input)) throw shape();
  if ("text" in input) {
    const { text, source, cwd } = input;
    if (typeof text !== "string" || typeof source !== "string" || typeof cwd !== "string" || !path.isAbsolute(cwd)) throw shape();
    const doc = parseDesiredText(text, source);
    // Relative paths in a file given on the command line are relative to where it was run.
    if (doc.release && !path.isAbsolute(doc.release.path)) doc.release = { ...doc.release, path: path.resolve(cwd, doc.release.path) };
    return doc;
  }
  const merge = input["merge"];
  if (!isRecord(merge) || !isRecord(merge["release"])) throw shape();
  // What the file says now (an unreadable or invalid file: nothing), minus what is per deploy.
  const doc: DesiredDocument = { ...((await readCurrent(desiredPath)) ?? {}) };
  delete doc.stopped;
  // A rollout section is for the deploy that wrote it: flags start without the last one's.
  delete doc.rollout;
  if (merge["rollout"] !== undefined) doc.rollout = merge["rollout"] as DesiredDocument["rollout"];
  // The fields are checked by the schema when the merged document is applied.
  doc.release = merge["release"] as NonNullable<DesiredDocument["release"]>;
  const replicas = merge["replicas"];
  if (replicas !== undefined) {
    if (!isRecord(replicas)) throw shape();
    doc.replicas = { ...(doc.replicas ?? {}), ...(replicas as Record<string, number>) };
  }
  return doc;
}

async function readCurrent(file: string): Promise<DesiredDocument | null> {
  try {
    return parseDesiredText(await fs.readFile(file, "utf8"), file);
  } catch {
    return null;
  }
}

function shape(): RollbridgeError {
  return new RollbridgeError("USAGE", "expected input {text, source, cwd} or {merge: {release, replicas?, rollout?}}");
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
