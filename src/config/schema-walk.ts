// Walks a zod schema by path, through optional/default/pipe/union wrappers, to find what a
// field accepts: the known keys for "did you mean" and the documented example for a fix.
import { z } from "zod";
import { isRecord, type Path } from "./issue-paths.js";

// The keys a mapping at `path` accepts, for "did you mean" and for listing the known settings.
export function knownKeysAt(root: z.core.$ZodType, path: Path): string[] {
  const schema = schemaAt(root, path);
  if (schema === undefined) return [];
  const keys = layers(schema).flatMap((layer) => Object.keys(defOf(layer).shape ?? {}));
  return [...new Set(keys)].filter((key) => key !== "$schema");
}

// "port: {from: 18182, to: 18299}" from the field's first documented example, so fixes show a real value.
export function exampleFor(root: z.core.$ZodType, path: Path): string | undefined {
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

function inline(value: unknown): string {
  if (typeof value === "string") {
    const plain = /^[A-Za-z0-9_./$-]+$/.test(value) && !/^[\d.]+$/.test(value) && !["true", "false", "null"].includes(value);
    return plain ? value : JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(inline).join(", ")}]`;
  if (isRecord(value))
    return `{${Object.entries(value)
      .map(([key, item]) => `${key}: ${inline(item)}`)
      .join(", ")}}`;
  return String(value);
}
