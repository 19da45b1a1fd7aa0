// Building the desired document a command asks for: from -f FILE / stdin, or from flags
// merged over the current desired file (so replicas and env set earlier are kept).
import { promises as fs } from "node:fs";
import path from "node:path";
//
// The common paths load neither the YAML parser nor the schema (a third of a second of the
// CLI's start): the text of -f FILE and the --release-path flags go to the daemon as a
// DesiredInput, and the daemon parses and merges them with the same functions (same errors).
import { CONTROL_CHARACTERS, MAX_REPLICAS, MAX_TIMER_MS } from "../config/constants.js";
import type { RolloutOverride } from "../config/rollout-schema.js";
import type { DesiredDocument } from "../config/desired-schema.js";
import { checkDesiredSize } from "../config/desired-size.js";
import type { DesiredInput } from "../control/protocol.js";
import type { CommandContext, OptionSpec } from "./command.js";
import { usageError } from "./output.js";

export const DESIRED_OPTIONS: Record<string, OptionSpec> = {
  file: { type: "string", short: "f", description: "desired state from this YAML/JSON file, or - for stdin", valueName: "FILE" },
  "release-path": { type: "string", description: "release directory (may be a symlink such as current)", valueName: "P" },
  revision: { type: "string", description: "revision of the release (e.g. a git sha)", valueName: "R" },
  "release-id": { type: "string", description: "release id (default: the basename of the resolved path)", valueName: "ID" },
  replicas: { type: "string", multiple: true, description: "per-process replica count, repeatable", valueName: "id=N" },
  bake: { type: "string", description: "bake window for this deploy: the old release stays ready this long while the new one is judged", valueName: "MS" },
  canary: { type: "string", description: "canary steps for this deploy: % of new requests per step, each WEIGHT or WEIGHT:PAUSE_MS (default pause 60000)", valueName: "10,50" },
  "max-p99": { type: "string", description: "p99 bound on the new release's response times for this deploy (0: none); above it, it is rolled back", valueName: "MS" },
};

/** `--bake MS`, `--canary 10,50` and `--max-p99 MS` as a desired `rollout` section (null: none given). */
export async function rolloutFromFlags(values: Record<string, unknown>): Promise<RolloutOverride | null> {
  const bake = values.bake as string | undefined;
  const canary = values.canary as string | undefined;
  const maxP99 = values["max-p99"] as string | undefined;
  if (bake === undefined && canary === undefined && maxP99 === undefined) return null;
  const rollout: RolloutOverride = {};
  if (bake !== undefined) rollout.bakeMs = wholeMs("--bake", bake, "for example --bake 60000");
  if (maxP99 !== undefined) rollout.maxP99Ms = wholeMs("--max-p99", maxP99, "for example --max-p99 500 (ms), or 0 for no bound");
  if (canary !== undefined) {
    const { parseCanarySteps } = await import("../config/rollout-schema.js");
    const steps = parseCanarySteps(canary);
    if (typeof steps === "string") throw usageError(`--canary ${canary}: ${steps}`, "for example --canary 10,50 (10% then 50%, a minute each) or --canary 25:30000");
    rollout.steps = steps;
  }
  return rollout;
}

function wholeMs(flag: string, text: string, example: string): number {
  const ms = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(ms) || ms > MAX_TIMER_MS) throw usageError(`${flag} ${text}: expected a whole number of milliseconds (0 to ${MAX_TIMER_MS})`, example);
  return ms;
}

/** What a command sends for its desired-state input: the document, or an input the daemon turns into one. */
export type DesiredBody = { document: DesiredDocument } | { input: DesiredInput };

/** Returns null when the command was given no desired-state input at all. */
/** `target.desiredPath` names the current desired file (merged under flags); only asked for when flags without --release-path are given. */
export async function desiredFromInput(ctx: CommandContext, target: { desiredPath(): Promise<string> }): Promise<DesiredBody | null> {
  const v = ctx.values;
  const file = v.file as string | undefined;
  const releasePath = v["release-path"] as string | undefined;
  const replicaFlags = (v.replicas as string[] | undefined) ?? [];
  const rollout = await rolloutFromFlags(v);
  if (file !== undefined) {
    if (releasePath || v.revision || replicaFlags.length || rollout)
      throw usageError("-f cannot be combined with --release-path, --revision, --replicas, --bake, --canary or --max-p99", "put everything in the file (a rollout section for --bake/--canary/--max-p99), or use flags only");
    const text = file === "-" ? await readStdin() : await readCapped(path.resolve(ctx.cwd, file));
    return { input: { text, source: file === "-" ? "<stdin>" : file, cwd: ctx.cwd } };
  }
  if (!releasePath && !v.revision && !v["release-id"] && replicaFlags.length === 0) {
    if (rollout) throw usageError("--bake, --canary and --max-p99 are settings of a deploy: pass --release-path too");
    return null;
  }
  for (const flag of ["revision", "release-id"] as const) {
    const value = v[flag];
    if (typeof value === "string" && CONTROL_CHARACTERS.test(value))
      throw usageError(`--${flag} ${JSON.stringify(value)} contains control characters (such as newlines, escapes or NUL)`, `pass a plain ${flag === "revision" ? "revision, e.g. a commit sha" : "release id, e.g. 20261123120000"}`);
  }
  const replicas = replicaFlags.length ? parseReplicas(replicaFlags) : undefined;
  if (releasePath) {
    // The deploy: the daemon merges this over its desired file (replicas and env kept).
    const release: { path: string; revision?: string; id?: string } = { path: path.resolve(ctx.cwd, releasePath) };
    if (v.revision) release.revision = v.revision as string;
    if (v["release-id"]) release.id = v["release-id"] as string;
    return { input: { merge: { release, ...(replicas ? { replicas } : {}), ...(rollout ? { rollout } : {}) } } };
  }
  // No --release-path: what is allowed depends on the current desired release, read here.
  const current = await readCurrent(await target.desiredPath());
  const doc: DesiredDocument = { ...(current ?? {}) };
  delete doc.stopped;
  delete doc.rollout;
  if (rollout) doc.rollout = rollout;
  if (v.revision || v["release-id"]) {
    if (!doc.release) throw usageError("--revision/--release-id need --release-path when there is no current desired release");
    throw usageError("--revision and --release-id describe a release: pass --release-path too");
  }
  if (!doc.release) throw usageError("no release to run", "pass --release-path P");
  if (replicas) doc.replicas = { ...(doc.replicas ?? {}), ...replicas };
  return { document: doc };
}

export function parseReplicas(flags: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const flag of flags) {
    const m = /^([^=]+)=(\d+)$/.exec(flag);
    if (!m || m[1] === undefined || m[2] === undefined) throw usageError(`--replicas ${flag}: expected id=N`, "for example --replicas worker=4");
    const n = Number(m[2]);
    if (n > MAX_REPLICAS) throw usageError(`--replicas ${flag}: at most ${MAX_REPLICAS} replicas per process`, `for example --replicas ${m[1]}=${Math.min(4, MAX_REPLICAS)}`);
    out[m[1]] = n;
  }
  return out;
}

async function readCurrent(file: string): Promise<DesiredDocument | null> {
  try {
    const { parseDesiredText } = await import("../config/desired-schema.js");
    return parseDesiredText(await fs.readFile(file, "utf8"), file);
  } catch {
    return null;
  }
}

/** Stdin up to the desired-file cap: past it, the read stops with the cap's error. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    checkDesiredSize(size, "the desired state on stdin");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** A -f FILE, refused by its size before it is read when it is over the cap. */
async function readCapped(file: string): Promise<string> {
  const stat = await fs.stat(file);
  if (stat.isFile()) checkDesiredSize(stat.size, `desired file ${file}`);
  const text = await fs.readFile(file, "utf8");
  checkDesiredSize(Buffer.byteLength(text), `desired file ${file}`);
  return text;
}
