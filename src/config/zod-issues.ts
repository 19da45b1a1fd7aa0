// Translates zod issues into ConfigIssues a person can act on: a message naming the field and its
// value, and a fix (a per-field fix, a "did you mean", or the field's documented example).
import type { z } from "zod";
import { closestMatch } from "./closest-match.js";
import { describeValue, formatPath, patternOf, valueAt, type Path } from "./issue-paths.js";
import type { ConfigIssue } from "./issues.js";
import { exampleFor, knownKeysAt } from "./schema-walk.js";

// Turns zod issues against `root` into messages with fixes; `raw` supplies values and process ids for paths.
export function describeZodIssues(issues: readonly z.core.$ZodIssue[], root: z.core.$ZodType, raw: unknown): ConfigIssue[] {
  const described = issues.flatMap((issue) => describeZodIssue(issue, [], root, raw));
  // A misspelt key also leaves its intended key missing; the rename fix covers both.
  const renamedTo = new Set(described.flatMap((issue) => (issue.renameTo === undefined ? [] : [issue.renameTo])));
  return described.filter((issue) => !(issue.missing === true && renamedTo.has(issue.path))).map(({ path, message, fix }) => ({ path, message, fix }));
}

interface DescribedIssue extends ConfigIssue {
  /** Set on "is required" issues. */
  missing?: boolean;
  /** Set on unknown-key issues that look like a typo: the path of the key they probably meant. */
  renameTo?: string;
}

// Fixes for fields whose rule is a pattern, keyed by path with array indexes written as [].
const FIELD_FIXES: Record<string, string> = {
  application: "Use a plain name such as ticket-server.",
  "control.mode": 'Write the mode as a quoted octal string, e.g. mode: "660" (an unquoted 660 in YAML is the decimal number 660).',
  "proxy.socket.mode": 'Write the mode as a quoted octal string, e.g. mode: "660" (an unquoted 660 in YAML is the decimal number 660).',
  "proxy.healthPath": 'Start the path with "/", e.g. healthPath: /ping.',
  "processes[].id": 'Use only letters, digits, ".", "_" and "-", e.g. id: web (replica instances are numbered automatically).',
  "processes[].command": "Give the process a command line, e.g. command: node server.js --port {{port}}.",
  "processes[].env": 'Use environment variable names without "=", e.g. NODE_ENV.',
  "processes[].health.path": 'Start the path with "/", e.g. path: /ping.',
  "processes[].health": "Write health as a mapping (health: {path: /ping}; {} keeps the defaults) or turn it off with health: false.",
  "processes[].port": "Use a port number (port: 7331) or an ascending range (port: {from: 18182, to: 18299}).",
  "proxy.affinity": "Write affinity: cookie, affinity: none, or a mapping naming one of cookie, query or header, e.g. affinity: {query: sid}.",
  "control.owner": "Use a user name (owner: deploy) or a numeric uid of 0 or more (owner: 1000).",
  "control.group": "Use a group name (group: deploy) or a numeric gid of 0 or more (group: 1000).",
};

function describeZodIssue(issue: z.core.$ZodIssue, prefix: Path, root: z.core.$ZodType, raw: unknown): DescribedIssue[] {
  const path = [...prefix, ...issue.path];
  const where = formatPath(path, raw);
  const label = where || "the config";
  const value = valueAt(raw, path);
  const fieldFix = FIELD_FIXES[patternOf(path)];
  const example = exampleFor(root, path);
  const eg = example === undefined ? "" : `, e.g. ${example}`;
  const issueAt = (message: string, fix: string): DescribedIssue[] => [{ path: where, message, fix }];

  switch (issue.code) {
    case "invalid_type": {
      if (value === undefined) {
        const key = String(path[path.length - 1] ?? "");
        const parent = formatPath(path.slice(0, -1), raw) || "the top level of the config";
        return [{ path: where, message: `${label} is required`, fix: `Add ${key} to ${parent}${eg}.`, missing: true }];
      }
      const expected = expectedPhrase(issue.expected);
      // `proxy:\n  port 8182` is valid YAML: the text "port 8182". A colon was left out.
      const colonless = (issue.expected === "object" || issue.expected === "record") && typeof value === "string" ? /^([A-Za-z_][\w.-]*)\s+(\S.*)$/.exec(value) : null;
      if (colonless) return issueAt(`${label} must be ${expected}, not the text ${describeValue(value)}`, `Put a colon after the key: ${colonless[1]}: ${colonless[2]} (indented under ${String(path[path.length - 1] ?? label)}:).`);
      return issueAt(`${label} must be ${expected}, not ${describeValue(value)}`, fieldFix ?? `Change ${label} to ${expected}${eg}.`);
    }
    case "too_small":
    case "too_big": {
      const bound = Number(issue.code === "too_small" ? issue.minimum : issue.maximum);
      if (issue.origin === "string") return issueAt(`${label} must not be empty`, fieldFix ?? `Give ${label} a value${eg}.`);
      if (issue.origin === "array") return issueAt(`${label} must list at least ${bound} entr${bound === 1 ? "y" : "ies"}`, `Add an entry to ${label}${eg}.`);
      const phrase = issue.code === "too_small" ? (issue.inclusive === false ? `greater than ${bound}` : `at least ${bound}`) : issue.inclusive === false ? `less than ${bound}` : `at most ${bound}`;
      return issueAt(`${label} must be ${phrase}, not ${describeValue(value)}`, fieldFix ?? `Set ${label} to a number ${phrase}${eg}.`);
    }
    case "invalid_value": {
      const allowed = issue.values.map((option) => JSON.stringify(option));
      const options = issue.values.map(String);
      const suffixMatch = typeof value === "string" && value.length >= 3 ? options.find((option) => option.toLowerCase().endsWith(value.toLowerCase())) : undefined;
      const guess = suffixMatch ?? (typeof value === "string" ? closestMatch(value, options) : undefined);
      const hint = guess === undefined ? "" : `Did you mean "${guess}"? `;
      const expected = allowed.length <= 6 ? `one of ${allowed.join(", ")}` : `one of the accepted values (${allowed.slice(0, 3).join(", ")}, ...)`;
      return issueAt(`${label} must be ${expected}, not ${describeValue(value)}`, `${hint}Use one of: ${allowed.join(", ")}.`);
    }
    case "unrecognized_keys": {
      const known = knownKeysAt(root, path);
      return issue.keys.map((key) => {
        const keyPath = formatPath([...path, key], raw);
        const guess = closestMatch(key, known);
        const listing = known.length > 0 ? ` Known settings here: ${known.join(", ")}.` : "";
        const issue: DescribedIssue = {
          path: keyPath,
          message: `${keyPath} is not a known setting`,
          fix: guess !== undefined ? `Did you mean "${guess}"? Rename "${key}" to "${guess}".` : `Remove "${key}".${listing}`,
        };
        if (guess !== undefined) issue.renameTo = formatPath([...path, guess], raw);
        return issue;
      });
    }
    case "invalid_union":
      return describeUnion(issue, path, root, raw, { label, value, eg, fieldFix });
    case "invalid_key": {
      const reason = issue.issues[0]?.message ?? "invalid key";
      const keyFix = FIELD_FIXES[patternOf(path.slice(0, -1))];
      return issueAt(`${label}: ${reason}`, keyFix ?? `Rename the key ${label}.`);
    }
    case "invalid_format":
      return issueAt(`${label}: ${issue.message} (got ${describeValue(value)})`, fieldFix ?? `Correct ${label}${eg}.`);
    case "custom": {
      const fix = typeof issue.params?.["fix"] === "string" ? (issue.params["fix"] as string) : (fieldFix ?? `Correct ${label}${eg}.`);
      // A refinement that reports an absent field (params.missing) reads like the built-in "is required".
      if (issue.params?.["missing"] === true) return [{ path: where, message: `${label} ${issue.message}`, fix, missing: true }];
      return issueAt(`${label}: ${issue.message}`, fix);
    }
    default:
      return issueAt(`${label}: ${issue.message}`, fieldFix ?? `Correct ${label}${eg}.`);
  }
}

function describeUnion(issue: z.core.$ZodIssueInvalidUnion, path: Path, root: z.core.$ZodType, raw: unknown, at: { label: string; value: unknown; eg: string; fieldFix: string | undefined }): DescribedIssue[] {
  const branches = "errors" in issue ? issue.errors : [];
  // When each option rejects the value's type outright, name the accepted types.
  const expectations = branches.map((errors) => {
    const [only] = errors;
    if (errors.length !== 1 || only === undefined || only.path.length > 0) return undefined;
    if (only.code === "invalid_type") return only.expected === "boolean" ? "a boolean" : expectedPhrase(only.expected);
    if (only.code === "invalid_value") return only.values.map((option) => JSON.stringify(option)).join(" or ");
    return undefined;
  });
  if (branches.length > 0 && expectations.every((phrase) => phrase !== undefined)) {
    const expected = joinOr(expectations as string[]);
    return [
      {
        path: formatPath(path, raw),
        message: `${at.label} must be ${expected}, not ${describeValue(at.value)}`,
        fix: at.fieldFix ?? `Change ${at.label} to ${expected}${at.eg}.`,
      },
    ];
  }
  // Otherwise report the option that got furthest (its first issue is the deepest).
  const deepest = [...branches].sort((a, b) => depth(b) - depth(a))[0] ?? [];
  return deepest.flatMap((nested) => describeZodIssue(nested, path, root, raw));
}

function depth(errors: readonly z.core.$ZodIssue[]): number {
  return Math.max(0, ...errors.map((error) => error.path.length + (error.code === "invalid_type" ? 0 : 0.5)));
}

function expectedPhrase(expected: string): string {
  switch (expected) {
    case "string":
      return "a string";
    case "number":
      return "a number";
    case "int":
      return "a whole number";
    case "boolean":
      return "true or false";
    case "object":
      return "a mapping";
    case "array":
      return "a list";
    case "record":
      return "a mapping";
    default:
      return expected;
  }
}

function joinOr(items: string[]): string {
  return items.length <= 1 ? (items[0] ?? "") : `${items.slice(0, -1).join(", ")} or ${items[items.length - 1]}`;
}
