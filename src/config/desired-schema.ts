// The desired-state file (desired.yaml): what should run now. Deploy tooling writes it, the daemon
// watches it; parsing is strict so a typo is reported instead of silently ignored.
import { stringify } from "yaml";
import { z } from "zod";
import { RollbridgeError } from "../errors.js";
import { CONTROL_CHARACTERS, MAX_REPLICAS, PROCESS_ID_PATTERN } from "./constants.js";
import { checkDesiredSize } from "./desired-size.js";
import { describeValue } from "./issue-paths.js";
import type { ConfigIssue } from "./issues.js";
import { parseYamlText } from "./load.js";
import { rolloutDesiredSchema, type RolloutOverride } from "./rollout-schema.js";
import { describeZodIssues } from "./zod-issues.js";

export { checkDesiredSize } from "./desired-size.js";

export interface DesiredDocument {
  release?: { path: string; revision?: string; id?: string };
  replicas?: Record<string, number>;
  env?: Record<string, string>;
  stopped?: boolean;
  /** This deploy's rollout settings (bake window, canary steps) over the config's. */
  rollout?: RolloutOverride;
}

// Scalars written unquoted (`id: 20261123120000`, `FEATURE_X: 1`) are taken as strings.
const textual = z.union([z.string(), z.number(), z.boolean()]).transform((value) => String(value));
const noControl = (what: string) =>
  z
    .string()
    .refine((s) => !CONTROL_CHARACTERS.test(s), { error: `${what} must not contain control characters (such as newlines, escapes or NUL)`, params: { fix: `Use a plain ${what.replace(/s$/, "")}: letters, digits and punctuation.` } });

export const desiredSchema = z
  .strictObject({
    $schema: z.string().optional().meta({ description: "JSON Schema reference for editors; ignored." }),
    release: z
      .strictObject({
        path: z
          .string()
          .min(1)
          .meta({ description: "Directory of the release (a symlink is resolved when read).", examples: ["/srv/app/releases/20261123120000"] }),
        revision: textual
          .pipe(z.string().min(1))
          .pipe(noControl("revisions"))
          .optional()
          .meta({ description: "Revision, e.g. a commit; default: the release id.", examples: ["abc123"] }),
        id: textual
          .pipe(z.string().regex(/^[^/\s]+$/, { error: 'release ids must be non-empty and contain no "/" or whitespace' }))
          .pipe(noControl("release ids"))
          .optional()
          .meta({ description: "Release id; default: the basename of the resolved path.", examples: ["20261123120000"] }),
      })
      .optional()
      .meta({ description: "The release that should be active. Required unless stopped is true." }),
    replicas: z
      .record(z.string().regex(PROCESS_ID_PATTERN, { error: "replicas keys must be process ids" }), z.number().int().nonnegative().max(MAX_REPLICAS))
      .optional()
      .meta({ description: `Per-process replica counts overriding the config; each at most ${MAX_REPLICAS}.`, examples: [{ worker: 4 }] }),
    env: z
      .record(
        z.string().regex(/^[^=\0]+$/, { error: 'environment variable names must be non-empty and contain no "="' }),
        textual.pipe(z.string().refine((value) => !value.includes("\0"), { error: "environment values must not contain NUL characters (the OS cannot pass them)", params: { fix: "Remove the NUL character from the value." } })),
      )
      .optional()
      .meta({ description: "Extra environment for this release's processes.", examples: [{ FEATURE_X: "1" }] }),
    stopped: z
      .boolean()
      .optional()
      .meta({ description: "true: no release is active and the proxy answers 503.", examples: [false] }),
    rollout: rolloutDesiredSchema.optional(),
  })
  .refine((doc) => doc.stopped === true || doc.release !== undefined, {
    message: "is required unless stopped is true",
    path: ["release"],
    params: { fix: "Add release: {path: /srv/app/releases/<id>}, or set stopped: true.", missing: true },
    // Run even when other fields failed, so every problem is reported at once.
    when: (payload) => typeof payload.value === "object" && payload.value !== null,
  })
  .meta({ title: "Rollbridge desired state", description: "What the Rollbridge daemon should run (desired.yaml)." });

// Parses desired.yaml (YAML or JSON); `source` names the file in errors.
export function parseDesiredText(text: string, source: string): DesiredDocument {
  checkDesiredSize(Buffer.byteLength(text), `desired file ${source}`);
  const parsed = parseYamlText(text, keepsText);
  if ("error" in parsed) {
    const { line, column, message } = parsed.error;
    throw new RollbridgeError("DESIRED_INVALID", `cannot parse desired file ${source} at line ${line}, column ${column}: ${message}`, {
      cause: parsed.error.cause,
      fix: parsed.error.fix,
    });
  }
  const raw = parsed.value;
  if (raw === null || raw === undefined) {
    throw new RollbridgeError("DESIRED_INVALID", `desired file is empty: ${source}`, {
      fix: "Write at least release: {path: /srv/app/releases/<id>}, or stopped: true.",
    });
  }
  if (typeof raw !== "object" || Array.isArray(raw)) {
    throw new RollbridgeError("DESIRED_INVALID", `desired file ${source} must be a mapping, not ${describeValue(raw)}`, {
      fix: "Write it as a mapping with release, replicas, env and stopped.",
    });
  }
  const result = desiredSchema.safeParse(raw);
  if (!result.success) {
    const issues = describeZodIssues(result.error.issues, desiredSchema, raw);
    const problems = issues.map((issue) => (issue.fix.startsWith("Did you mean") ? `${issue.message} (${issue.fix.split("?")[0]}?)` : issue.message));
    throw new RollbridgeError("DESIRED_INVALID", `invalid desired file ${source}: ${problems.join("; ")}`, {
      fix: issues.map((issue) => issue.fix).join(" "),
      details: issues satisfies ConfigIssue[],
    });
  }
  return normalise(result.data);
}

// YAML for a desired document, keys in a fixed order so rewrites produce minimal diffs.
export function serializeDesired(doc: DesiredDocument): string {
  const ordered: Record<string, unknown> = {};
  if (doc.release !== undefined) {
    const release: Record<string, string> = { path: doc.release.path };
    if (doc.release.revision !== undefined) release["revision"] = doc.release.revision;
    if (doc.release.id !== undefined) release["id"] = doc.release.id;
    ordered["release"] = release;
  }
  if (doc.replicas !== undefined && Object.keys(doc.replicas).length > 0) ordered["replicas"] = sortKeys(doc.replicas);
  if (doc.env !== undefined && Object.keys(doc.env).length > 0) ordered["env"] = sortKeys(doc.env);
  if (doc.stopped !== undefined) ordered["stopped"] = doc.stopped;
  if (doc.rollout !== undefined && Object.keys(doc.rollout).length > 0) ordered["rollout"] = copyRollout(doc.rollout);
  return stringify(ordered, { lineWidth: 0 });
}

function normalise(data: z.output<typeof desiredSchema>): DesiredDocument {
  const doc: DesiredDocument = {};
  if (data.release !== undefined) {
    doc.release = { path: data.release.path };
    if (data.release.revision !== undefined) doc.release.revision = data.release.revision;
    if (data.release.id !== undefined) doc.release.id = data.release.id;
  }
  if (data.replicas !== undefined) doc.replicas = { ...data.replicas };
  if (data.env !== undefined) doc.env = { ...data.env };
  if (data.stopped !== undefined) doc.stopped = data.stopped;
  if (data.rollout !== undefined) doc.rollout = copyRollout(data.rollout);
  return doc;
}

// The rollout keys in their documented order, steps copied.
function copyRollout(rollout: RolloutOverride): RolloutOverride {
  const out: RolloutOverride = {};
  if (rollout.bakeMs !== undefined) out.bakeMs = rollout.bakeMs;
  if (rollout.maxErrorRate !== undefined) out.maxErrorRate = rollout.maxErrorRate;
  if (rollout.minRequests !== undefined) out.minRequests = rollout.minRequests;
  if (rollout.windowMs !== undefined) out.windowMs = rollout.windowMs;
  if (rollout.maxP99Ms !== undefined) out.maxP99Ms = rollout.maxP99Ms;
  if (rollout.steps !== undefined) out.steps = rollout.steps.map((s) => ({ weight: s.weight, pauseMs: s.pauseMs }));
  if (rollout.sticky !== undefined) out.sticky = rollout.sticky;
  return out;
}

function keepsText(path: readonly (string | number)[]): boolean {
  if (path.length === 2 && path[0] === "release") return path[1] === "id" || path[1] === "revision";
  return path.length === 2 && path[0] === "env";
}

function sortKeys<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
