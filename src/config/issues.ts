// Validation results as issues a person can act on: every problem at once, each with a path,
// a message and a concrete fix. Zod checks each field; the cross-field rules below check what
// a single field cannot (one proxied process, unique ids, replicas vs ports, templates, ...).
import { dirname, resolve } from "node:path";
import { z } from "zod";
import {
  configSchema,
  defaultApplication,
  defaultControlPath,
  PROCESS_ID_PATTERN,
  PROCESS_POLICIES,
  resolveConfig,
  type Config,
} from "./schema.js";
import { TEMPLATE_VARIABLES, templateNames } from "./template.js";

export interface ConfigIssue {
  /** Where, e.g. "processes[web].port" (the process id when known, else its index); "" for the whole file. */
  path: string;
  message: string;
  fix: string;
}

type Path = readonly PropertyKey[];
type Raw = Record<string, unknown>;

// Checks a config as loaded from its file; on success returns it resolved (defaults, absolute paths).
export function validateConfig(
  raw: unknown,
  ctx: { configPath: string },
): { ok: true; config: Config } | { ok: false; issues: ConfigIssue[] } {
  if (!isRecord(raw)) {
    const empty = raw === undefined || raw === null;
    return {
      ok: false,
      issues: [
        {
          path: "",
          message: empty ? "the config is empty" : `the config must be a mapping of settings, not ${describeValue(raw)}`,
          fix: "Define at least processes, e.g. processes: [{id: web, policy: proxied, command: node server.js, port: {from: 18182, to: 18299}}].",
        },
      ],
    };
  }
  const parsed = configSchema.safeParse(raw);
  const issues = [
    ...(parsed.success ? [] : describeZodIssues(parsed.error.issues, configSchema, raw)),
    ...crossFieldIssues(raw, ctx.configPath),
  ];
  const unique = dedupe(issues);
  if (unique.length > 0 || !parsed.success) return { ok: false, issues: unique };
  return { ok: true, config: resolveConfig(parsed.data, ctx.configPath) };
}

// "Found 2 configuration issues in rollbridge.yaml:" followed by numbered messages and fixes.
export function formatIssues(file: string, issues: ConfigIssue[]): string {
  const count = issues.length;
  const header = `Found ${count} configuration issue${count === 1 ? "" : "s"} in ${file}:`;
  const body = issues.map((issue, index) => `${index + 1}. ${issue.message}\n   Fix: ${issue.fix}`);
  return [header, ...body].join("\n\n");
}

// Turns zod issues against `root` into messages with fixes; `raw` supplies values and process ids for paths.
export function describeZodIssues(issues: readonly z.core.$ZodIssue[], root: z.core.$ZodType, raw: unknown): ConfigIssue[] {
  const described = issues.flatMap((issue) => describeZodIssue(issue, [], root, raw));
  // A misspelt key also leaves its intended key missing; the rename fix covers both.
  const renamedTo = new Set(described.flatMap((issue) => (issue.renameTo === undefined ? [] : [issue.renameTo])));
  return described
    .filter((issue) => !(issue.missing === true && renamedTo.has(issue.path)))
    .map(({ path, message, fix }) => ({ path, message, fix }));
}

interface DescribedIssue extends ConfigIssue {
  /** Set on "is required" issues. */
  missing?: boolean;
  /** Set on unknown-key issues that look like a typo: the path of the key they probably meant. */
  renameTo?: string;
}

// The closest candidate to `word` (case-insensitive edit distance), if it is close enough to be a likely typo.
export function closestMatch(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const distance = levenshtein(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const allowed = Math.max(2, Math.floor(word.length / 3));
  return bestDistance <= allowed ? best : undefined;
}

// Edit distance counting insertions, deletions, substitutions and swaps of neighbours as one edit each.
export function levenshtein(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number): number => rows[i]?.[j] ?? 0;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      (rows[i] as number[])[j] = best;
    }
  }
  return at(a.length, b.length);
}

// Renders a path like processes[web].health.path, naming processes by id when that id is valid and unique.
export function formatPath(path: Path, raw: unknown): string {
  let out = "";
  path.forEach((segment, index) => {
    if (typeof segment === "number") {
      out += `[${index === 1 && path[0] === "processes" ? processLabel(raw, segment) : segment}]`;
    } else {
      const key = String(segment);
      out += /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key) ? `${out === "" ? "" : "."}${key}` : `[${JSON.stringify(key)}]`;
    }
  });
  return out;
}

// Short description of a value for messages: strings quoted, collections named.
export function describeValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 37)}...` : value);
  if (Array.isArray(value)) return "a list";
  if (value === null) return "null";
  if (typeof value === "object") return "a mapping";
  return String(value);
}

// ---------------------------------------------------------------------------------------------
// zod issues

// Fixes for fields whose rule is a pattern, keyed by path with array indexes written as [].
const FIELD_FIXES: Record<string, string> = {
  application: "Use a plain name such as ticket-server.",
  "control.mode": 'Write the mode as a quoted octal string, e.g. mode: "660" (an unquoted 660 in YAML is the decimal number 660).',
  "proxy.healthPath": 'Start the path with "/", e.g. healthPath: /ping.',
  "processes[].id": 'Use only letters, digits, ".", "_" and "-", e.g. id: web (replica instances are numbered automatically).',
  "processes[].command": "Give the process a command line, e.g. command: node server.js --port {{port}}.",
  "processes[].env": "Use environment variable names without \"=\", e.g. NODE_ENV.",
  "processes[].health.path": 'Start the path with "/", e.g. path: /ping.',
  "processes[].health": "Write health as a mapping (health: {path: /ping}; {} keeps the defaults) or turn it off with health: false.",
  "processes[].port": "Use a port number (port: 7331) or an ascending range (port: {from: 18182, to: 18299}).",
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
      return issueAt(`${label} must be ${expected}, not ${describeValue(value)}`, fieldFix ?? `Change ${label} to ${expected}${eg}.`);
    }
    case "too_small":
    case "too_big": {
      const bound = Number(issue.code === "too_small" ? issue.minimum : issue.maximum);
      if (issue.origin === "string") return issueAt(`${label} must not be empty`, fieldFix ?? `Give ${label} a value${eg}.`);
      if (issue.origin === "array") return issueAt(`${label} must list at least ${bound} entr${bound === 1 ? "y" : "ies"}`, `Add an entry to ${label}${eg}.`);
      const phrase =
        issue.code === "too_small"
          ? issue.inclusive === false ? `greater than ${bound}` : `at least ${bound}`
          : issue.inclusive === false ? `less than ${bound}` : `at most ${bound}`;
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

function describeUnion(
  issue: z.core.$ZodIssueInvalidUnion,
  path: Path,
  root: z.core.$ZodType,
  raw: unknown,
  at: { label: string; value: unknown; eg: string; fieldFix: string | undefined },
): DescribedIssue[] {
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
    case "string": return "a string";
    case "number": return "a number";
    case "int": return "a whole number";
    case "boolean": return "true or false";
    case "object": return "a mapping";
    case "array": return "a list";
    case "record": return "a mapping";
    default: return expected;
  }
}

function joinOr(items: string[]): string {
  return items.length <= 1 ? (items[0] ?? "") : `${items.slice(0, -1).join(", ")} or ${items[items.length - 1]}`;
}

// ---------------------------------------------------------------------------------------------
// walking the schema (known keys for "did you mean", examples for fixes)

interface DefView {
  type: string;
  shape?: Record<string, z.core.$ZodType>;
  element?: z.core.$ZodType;
  valueType?: z.core.$ZodType;
  innerType?: z.core.$ZodType;
  in?: z.core.$ZodType;
  options?: readonly z.core.$ZodType[];
}

function defOf(schema: z.core.$ZodType): DefView {
  return schema._zod.def as unknown as DefView;
}

// The schema and the schemas it wraps (optional, default, pipe input, ...), outermost first.
function layers(schema: z.core.$ZodType): z.core.$ZodType[] {
  const out = [schema];
  const def = defOf(schema);
  const inner = def.innerType ?? (def.type === "pipe" ? def.in : undefined);
  if (inner !== undefined) out.push(...layers(inner));
  if (def.type === "union") for (const option of def.options ?? []) out.push(...layers(option));
  return out;
}

function childSchema(schema: z.core.$ZodType, key: PropertyKey): z.core.$ZodType | undefined {
  for (const layer of layers(schema)) {
    const def = defOf(layer);
    if (def.type === "object" && typeof key === "string" && def.shape !== undefined && Object.hasOwn(def.shape, key)) return def.shape[key];
    if (def.type === "array" && typeof key === "number") return def.element;
    if (def.type === "record" && typeof key === "string") return def.valueType;
  }
  return undefined;
}

function schemaAt(root: z.core.$ZodType, path: Path): z.core.$ZodType | undefined {
  let current: z.core.$ZodType | undefined = root;
  for (const segment of path) {
    if (current === undefined) return undefined;
    current = childSchema(current, segment);
  }
  return current;
}

function knownKeysAt(root: z.core.$ZodType, path: Path): string[] {
  const schema = schemaAt(root, path);
  if (schema === undefined) return [];
  const keys = layers(schema).flatMap((layer) => Object.keys(defOf(layer).shape ?? {}));
  return [...new Set(keys)].filter((key) => key !== "$schema");
}

// "port: {from: 18182, to: 18299}" from the field's first documented example.
function exampleFor(root: z.core.$ZodType, path: Path): string | undefined {
  const schema = schemaAt(root, path);
  if (schema === undefined) return undefined;
  for (const layer of layers(schema)) {
    const examples = z.globalRegistry.get(layer)?.examples;
    if (Array.isArray(examples) && examples.length > 0) {
      const key = path[path.length - 1];
      const rendered = inline(examples[0]);
      return typeof key === "string" ? `${key}: ${rendered}` : rendered;
    }
  }
  return undefined;
}

function inline(value: unknown): string {
  if (typeof value === "string") {
    const plain = /^[A-Za-z0-9_./$-]+$/.test(value) && !/^[\d.]+$/.test(value) && !["true", "false", "null"].includes(value);
    return plain ? value : JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(inline).join(", ")}]`;
  if (isRecord(value)) return `{${Object.entries(value).map(([key, item]) => `${key}: ${inline(item)}`).join(", ")}}`;
  return String(value);
}

// ---------------------------------------------------------------------------------------------
// cross-field rules (on the raw input, tolerant of values zod already reported)

function crossFieldIssues(root: Raw, configPath: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const processes = Array.isArray(root["processes"]) ? root["processes"].map((entry) => (isRecord(entry) ? entry : {})) : undefined;
  const proxy = isRecord(root["proxy"]) ? root["proxy"] : {};
  if (processes !== undefined) {
    issues.push(...proxiedCountIssues(processes), ...duplicateIdIssues(processes, root));
    processes.forEach((process, index) => issues.push(...processIssues(process, index, root, processes)));
  }
  issues.push(...proxyIssues(proxy), ...portConflictIssues(root, proxy, processes ?? []), ...controlPathIssues(root, configPath));
  return issues;
}

function proxiedCountIssues(processes: Raw[]): ConfigIssue[] {
  const proxied = processes.filter((process) => process["policy"] === "proxied");
  const allPoliciesValid = processes.every((process) => (PROCESS_POLICIES as readonly unknown[]).includes(process["policy"]));
  if (proxied.length === 1 || (proxied.length === 0 && !allPoliciesValid) || processes.length === 0) return [];
  const names = proxied.map((process) => (typeof process["id"] === "string" ? process["id"] : "?"));
  return [
    {
      path: "processes",
      message: `the config must define exactly one proxied process; found ${proxied.length}${names.length > 0 ? ` (${names.join(", ")})` : ""}`,
      fix:
        proxied.length === 0
          ? "Set policy: proxied on the process that serves HTTP, so Rollbridge knows where to forward traffic."
          : "Keep policy: proxied on the one process that receives the traffic; make the others companion, singleton or service.",
    },
  ];
}

function duplicateIdIssues(processes: Raw[], root: Raw): ConfigIssue[] {
  const seen = new Map<string, number>();
  const issues: ConfigIssue[] = [];
  processes.forEach((process, index) => {
    const id = process["id"];
    if (typeof id !== "string") return;
    const first = seen.get(id);
    if (first === undefined) {
      seen.set(id, index);
      return;
    }
    issues.push({
      path: formatPath(["processes", index, "id"], root),
      message: `duplicate process id "${id}" (processes[${first}] and processes[${index}])`,
      fix: `Give each process a unique id; rename one of the "${id}" entries.`,
    });
  });
  return issues;
}

function processIssues(entry: Raw, index: number, root: Raw, processes: Raw[]): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const at = (...rest: PropertyKey[]) => formatPath(["processes", index, ...rest], root);
  const name = typeof entry["id"] === "string" ? entry["id"] : `processes[${index}]`;
  const policy = entry["policy"];
  const port = portRangeOf(entry["port"]);
  const replicas = entry["replicas"];
  const stopSignal = entry["stopSignal"];
  const customSignal = typeof stopSignal === "string" && stopSignal !== "SIGTERM";
  const lifecycle = isRecord(entry["lifecycle"]) ? entry["lifecycle"] : {};
  const stopMessage = entry["stopMessage"];

  if (policy === "proxied" && entry["port"] === undefined) {
    issues.push({
      path: at("port"),
      message: `${at("port")} is required: the proxied process needs a port to receive traffic on`,
      fix: `Give ${name} a port range, e.g. port: {from: 18182, to: 18299} (each instance of each release takes one port).`,
    });
  }
  if (typeof replicas === "number" && Number.isInteger(replicas) && replicas > 1) {
    if (policy === "companion" && entry["port"] !== undefined) {
      issues.push({
        path: at("replicas"),
        message: `${at("replicas")} is ${replicas}, but only a companion without a port can run several replicas`,
        fix: `Remove port from ${name}, or set replicas: 1.`,
      });
    } else if (policy === "proxied" && port !== undefined && port.to - port.from + 1 < replicas) {
      issues.push({
        path: at("port"),
        message: `${at("port")} has ${port.to - port.from + 1} port(s), fewer than replicas (${replicas})`,
        fix: `Widen the range to at least ${replicas} ports (twice that lets the next release start beside this one), e.g. port: {from: ${port.from}, to: ${port.from + replicas * 2 - 1}}.`,
      });
    } else if (policy === "singleton" || policy === "service") {
      issues.push({
        path: at("replicas"),
        message: `${at("replicas")} must be 1 for a ${policy} process (got ${replicas})`,
        fix: "Set replicas: 1; only port-less companions and the proxied process run several instances.",
      });
    }
  }
  if (entry["nonBlockingDrain"] === true && typeof policy === "string" && policy !== "companion" && (PROCESS_POLICIES as readonly string[]).includes(policy)) {
    issues.push({
      path: at("nonBlockingDrain"),
      message: `${at("nonBlockingDrain")} applies only to companion processes (${name} is ${policy})`,
      fix: `Remove nonBlockingDrain from ${name}, or make it a companion.`,
    });
  }
  const drainTimeout = lifecycle["drainTimeoutMs"];
  if (typeof lifecycle["drainCommand"] === "string" && !(typeof drainTimeout === "number" && drainTimeout > 0)) {
    issues.push({
      path: at("lifecycle", "drainTimeoutMs"),
      message: `${at("lifecycle", "drainCommand")} needs a positive lifecycle.drainTimeoutMs to bound it`,
      fix: "Add drainTimeoutMs to lifecycle, e.g. drainTimeoutMs: 60000.",
    });
  }
  if (typeof lifecycle["stopCommand"] === "string" && customSignal) {
    issues.push({
      path: at("stopSignal"),
      message: `${at("stopSignal")} ${stopSignal} would never be sent: lifecycle.stopCommand runs instead of the signal`,
      fix: "Remove stopSignal, or remove lifecycle.stopCommand and let the signal stop the process.",
    });
  }
  if (typeof stopMessage === "string" && typeof lifecycle["stopCommand"] === "string") {
    issues.push({
      path: at("stopMessage"),
      message: `${at("stopMessage")} and lifecycle.stopCommand both replace the stop signal; only one can be used`,
      fix: "Keep either stopMessage (an IPC message) or lifecycle.stopCommand (a shell command).",
    });
  } else if (typeof stopMessage === "string" && customSignal) {
    issues.push({
      path: at("stopSignal"),
      message: `${at("stopSignal")} ${stopSignal} would never be sent: stopMessage is sent instead of the signal`,
      fix: "Remove stopSignal, or remove stopMessage and let the signal stop the process.",
    });
  }
  const memory = isRecord(entry["memory"]) ? entry["memory"] : {};
  const limit = memory["limitBytes"];
  const warn = memory["warnBytes"];
  if (typeof limit === "number" && typeof warn === "number" && limit > 0 && warn > 0 && warn >= limit) {
    issues.push({
      path: at("memory", "warnBytes"),
      message: `${at("memory", "warnBytes")} (${warn}) must be below memory.limitBytes (${limit})`,
      fix: `Lower warnBytes below limitBytes (e.g. ${Math.floor(limit * 0.75)}), or set it to 0 to turn the warning off.`,
    });
  }
  const health = entry["health"];
  if (isRecord(health) && policy !== "proxied" && entry["port"] === undefined && (health["ipc"] !== true || health["path"] !== undefined)) {
    issues.push({
      path: at("health"),
      message: `${at("health")} is an HTTP check, but ${name} has no port to probe`,
      fix: `Give ${name} a port, use health: {ipc: true} for a Node IPC readiness message, or set health: false.`,
    });
  }
  issues.push(...templateIssues(entry, index, root, processes));
  return issues;
}

function templateIssues(entry: Raw, index: number, root: Raw, processes: Raw[]): ConfigIssue[] {
  const fields: [PropertyKey[], unknown][] = [
    [["command"], entry["command"]],
    [["cwd"], entry["cwd"]],
    ...Object.entries(isRecord(entry["env"]) ? entry["env"] : {}).map(([key, value]): [PropertyKey[], unknown] => [["env", key], value]),
    [["logFile", "path"], isRecord(entry["logFile"]) ? entry["logFile"]["path"] : undefined],
  ];
  const portIds = processes.filter((other) => other["port"] !== undefined && typeof other["id"] === "string").map((other) => other["id"] as string);
  const allIds = processes.filter((other) => typeof other["id"] === "string").map((other) => other["id"] as string);
  const known = [...TEMPLATE_VARIABLES, ...portIds.map((id) => `ports.${id}`)];
  const name = typeof entry["id"] === "string" ? entry["id"] : `processes[${index}]`;
  const issues: ConfigIssue[] = [];
  for (const [rest, value] of fields) {
    if (typeof value !== "string") continue;
    const where = formatPath(["processes", index, ...rest], root);
    for (const variable of templateNames(value)) {
      if (variable.startsWith("env.")) continue;
      if (variable === "port") {
        if (entry["port"] === undefined) {
          issues.push({ path: where, message: `${where} uses {{port}}, but ${name} has no port`, fix: `Add a port to ${name}, or remove {{port}}.` });
        }
        continue;
      }
      if ((TEMPLATE_VARIABLES as readonly string[]).includes(variable)) continue;
      if (variable.startsWith("ports.")) {
        const id = variable.slice("ports.".length);
        if (portIds.includes(id)) continue;
        if (allIds.includes(id)) {
          issues.push({ path: where, message: `${where} uses {{${variable}}}, but process ${id} has no port`, fix: `Add a port to ${id}, or remove {{${variable}}}.` });
        } else {
          const guess = closestMatch(id, portIds);
          issues.push({
            path: where,
            message: `${where} uses {{${variable}}}, but there is no process "${id}"`,
            fix: `${guess === undefined ? "" : `Did you mean {{ports.${guess}}}? `}Processes with a port: ${portIds.length > 0 ? portIds.join(", ") : "none"}.`,
          });
        }
        continue;
      }
      const guess = closestMatch(variable, known);
      issues.push({
        path: where,
        message: `${where} uses unknown template variable {{${variable}}}`,
        fix: `${guess === undefined ? "" : `Did you mean {{${guess}}}? `}Known variables: ${[...known, "env.<NAME>"].map((item) => `{{${item}}}`).join(", ")}.`,
      });
    }
  }
  return issues;
}

function proxyIssues(proxy: Raw): ConfigIssue[] {
  const headers = typeof proxy["headersTimeoutMs"] === "number" ? proxy["headersTimeoutMs"] : 60_000;
  const request = proxy["requestTimeoutMs"];
  if (typeof request !== "number" || request <= 0 || headers <= request) return [];
  return [
    {
      path: "proxy.headersTimeoutMs",
      message: `proxy.headersTimeoutMs (${headers}) must not exceed proxy.requestTimeoutMs (${request})`,
      fix: "Lower headersTimeoutMs to at most requestTimeoutMs, or set requestTimeoutMs: 0 for no request limit.",
    },
  ];
}

function portConflictIssues(root: Raw, proxy: Raw, processes: Raw[]): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const proxyPort = typeof proxy["port"] === "number" ? proxy["port"] : 8182;
  const metrics = isRecord(root["metrics"]) ? root["metrics"] : undefined;
  const metricsPort = typeof metrics?.["port"] === "number" ? metrics["port"] : undefined;
  if (metricsPort === proxyPort) {
    issues.push({
      path: "metrics.port",
      message: `metrics.port ${metricsPort} is also the proxy's port`,
      fix: "Pick another port for metrics, e.g. port: 9464.",
    });
  }
  processes.forEach((process, index) => {
    const range = portRangeOf(process["port"]);
    if (range === undefined || range.from !== range.to) return;
    const clash = range.from === proxyPort ? "proxy.port" : range.from === metricsPort ? "metrics.port" : undefined;
    if (clash === undefined) return;
    const where = formatPath(["processes", index, "port"], root);
    issues.push({
      path: where,
      message: `${where} ${range.from} is already used by ${clash}`,
      fix: `Give the process a port of its own (the daemon binds ${clash} itself).`,
    });
  });
  return issues;
}

function controlPathIssues(root: Raw, configPath: string): ConfigIssue[] {
  const control = isRecord(root["control"]) ? root["control"] : {};
  const explicit = typeof control["path"] === "string" && control["path"] !== "" ? control["path"] : undefined;
  const application = typeof root["application"] === "string" && root["application"] !== "" ? root["application"] : defaultApplication(configPath);
  const socketPath = resolve(dirname(resolve(configPath)), explicit ?? defaultControlPath(application));
  // sun_path is 108 bytes on Linux and 104 on macOS, both including the terminating NUL.
  const limit = process.platform === "linux" ? 107 : 103;
  const length = Buffer.byteLength(socketPath);
  if (length <= limit) return [];
  return [
    {
      path: explicit === undefined ? "control" : "control.path",
      message: `control socket path ${socketPath} is ${length} bytes long; unix sockets allow at most ${limit}`,
      fix: `${explicit === undefined ? "Set" : "Choose"} a shorter control.path, e.g. path: /run/rollbridge/app.sock.`,
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// helpers

function isRecord(value: unknown): value is Raw {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function valueAt(raw: unknown, path: Path): unknown {
  let current = raw;
  for (const segment of path) {
    if (Array.isArray(current) && typeof segment === "number") current = current[segment];
    else if (isRecord(current) && typeof segment === "string") current = current[segment];
    else return undefined;
  }
  return current;
}

function processLabel(raw: unknown, index: number): string {
  const processes = isRecord(raw) && Array.isArray(raw["processes"]) ? raw["processes"] : [];
  const entry = processes[index];
  const id = isRecord(entry) ? entry["id"] : undefined;
  if (typeof id !== "string" || !PROCESS_ID_PATTERN.test(id)) return String(index);
  const sameId = processes.filter((other) => isRecord(other) && other["id"] === id).length;
  return sameId === 1 ? id : String(index);
}

function patternOf(path: Path): string {
  return path.map((segment) => (typeof segment === "number" ? "[]" : `.${String(segment)}`)).join("").replace(/^\./, "").replace(/\.\[\]/g, "[]");
}

function portRangeOf(port: unknown): { from: number; to: number } | undefined {
  if (typeof port === "number" && Number.isInteger(port)) return { from: port, to: port };
  if (isRecord(port) && typeof port["from"] === "number" && typeof port["to"] === "number" && port["from"] <= port["to"]) {
    return { from: port["from"], to: port["to"] };
  }
  return undefined;
}

function dedupe(issues: ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues.filter((issue) => {
    const key = `${issue.path}\n${issue.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
