// Every example config and desired file under examples/ passes the real validators, and
// points editors at the right JSON Schema with a relative path that exists.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { parseDesiredText } from "../../src/config/desired-schema.js";
import { formatIssues, validateConfig } from "../../src/config/issues.js";
import { loadRawConfig } from "../../src/config/load.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const EXAMPLES = path.join(ROOT, "examples");
const SCHEMA_OF = { config: path.join(ROOT, "schemas/config.schema.json"), desired: path.join(ROOT, "schemas/desired.schema.json") };

type Kind = "config" | "desired";

function exampleFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return exampleFiles(full);
    return /\.(ya?ml|json|[cm]?js)$/.test(entry.name) ? [full] : [];
  });
}

/** Config files are named rollbridge.*, desired files desired*.*; anything else (scripts, CI workflows) is neither. */
function kindOf(file: string): Kind | "other" {
  const name = path.basename(file);
  if (/^rollbridge\.(ya?ml|json|[cm]?js)$/.test(name)) return "config";
  if (/^desired.*\.(ya?ml|json)$/.test(name)) return "desired";
  return "other";
}

/** Top-level keys of a YAML or JSON file (none for scripts or unparsable text). */
function topLevelKeys(file: string): string[] {
  if (!/\.(ya?ml|json)$/.test(file)) return [];
  try {
    const value: unknown = parseYaml(readFileSync(file, "utf8"));
    return value !== null && typeof value === "object" && !Array.isArray(value) ? Object.keys(value) : [];
  } catch {
    return [];
  }
}

/** The schema a file declares: a `# yaml-language-server: $schema=` first line, or a JSON `$schema` key. */
function declaredSchema(file: string): string | undefined {
  const text = readFileSync(file, "utf8");
  if (file.endsWith(".json")) return (JSON.parse(text) as { $schema?: string }).$schema;
  return /^# yaml-language-server: \$schema=(\S+)\s*$/.exec(text.split("\n", 1)[0] ?? "")?.[1];
}

const files = exampleFiles(EXAMPLES);
const documents = files.flatMap((file) => {
  const kind = kindOf(file);
  return kind === "config" || kind === "desired" ? [{ file, kind, name: path.relative(ROOT, file) }] : [];
});

describe("examples", () => {
  it("names every Rollbridge config and desired file so the checks below find it", () => {
    // A file that looks like a config (processes) or a desired state (release, stopped) must be named as one.
    const unnamed = files.filter((file) => kindOf(file) === "other" && topLevelKeys(file).some((key) => ["processes", "release", "stopped"].includes(key)));
    expect(unnamed.map((file) => path.relative(ROOT, file))).toEqual([]);
    expect(documents.map((d) => d.name)).toEqual(expect.arrayContaining(["examples/rollbridge.yaml", "examples/desired.yaml", "examples/multi/rollbridge.yaml", "examples/gunicorn/rollbridge.yaml"]));
  });

  it.each(documents)("$name names its JSON Schema by a relative path that exists", ({ file, kind }) => {
    const schema = declaredSchema(file);
    expect(schema, "a `# yaml-language-server: $schema=...` first line").toBeDefined();
    expect(path.isAbsolute(schema!)).toBe(false);
    expect(path.resolve(path.dirname(file), schema!)).toBe(SCHEMA_OF[kind as Kind]);
  });

  it.each(documents.filter((d) => d.kind === "config"))("$name is a valid config", async ({ file }) => {
    const result = validateConfig(await loadRawConfig(file), { configPath: file });
    expect(result.ok ? "" : formatIssues(file, result.issues)).toBe("");
  });

  it.each(documents.filter((d) => d.kind === "desired"))("$name is a valid desired file", ({ file }) => {
    expect(() => parseDesiredText(readFileSync(file, "utf8"), file)).not.toThrow();
  });

  it("rejects a broken example, so the checks above can fail", async () => {
    const file = path.join(EXAMPLES, "rollbridge.yaml");
    const raw = (await loadRawConfig(file)) as { processes: Record<string, unknown>[] };
    raw.processes[0]!["polcy"] = "proxied";
    expect(validateConfig(raw, { configPath: file }).ok).toBe(false);
    expect(() => parseDesiredText("release: {pth: /srv/x}\n", "desired.yaml")).toThrow(/pth/);
  });
});
