// How issues name places and values in the raw, unvalidated input: paths like
// processes[web].health.path (processes by id when unambiguous), short value descriptions,
// and the tolerant readers the validators use before zod has vouched for anything.
import { PROCESS_ID_PATTERN } from "./constants.js";

// A location in the raw input, as zod reports it (keys and array indexes).
export type Path = readonly PropertyKey[];
// A mapping from the raw input, not yet validated.
export type Raw = Record<string, unknown>;

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

// Narrows raw input to a mapping (not null, not a list), the shape every rule reads fields from.
export function isRecord(value: unknown): value is Raw {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// The raw value at a path, or undefined where the input has no such place.
export function valueAt(raw: unknown, path: Path): unknown {
  let current = raw;
  for (const segment of path) {
    if (Array.isArray(current) && typeof segment === "number") current = current[segment];
    else if (isRecord(current) && typeof segment === "string") current = current[segment];
    else return undefined;
  }
  return current;
}

// A path with array indexes written as [] ("processes[].port"), the key of per-field fixes.
export function patternOf(path: Path): string {
  return path
    .map((segment) => (typeof segment === "number" ? "[]" : `.${String(segment)}`))
    .join("")
    .replace(/^\./, "")
    .replace(/\.\[\]/g, "[]");
}

function processLabel(raw: unknown, index: number): string {
  const processes = isRecord(raw) && Array.isArray(raw["processes"]) ? raw["processes"] : [];
  const entry = processes[index];
  const id = isRecord(entry) ? entry["id"] : undefined;
  if (typeof id !== "string" || !PROCESS_ID_PATTERN.test(id)) return String(index);
  const sameId = processes.filter((other) => isRecord(other) && other["id"] === id).length;
  return sameId === 1 ? id : String(index);
}
