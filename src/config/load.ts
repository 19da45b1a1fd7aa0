// Finding the config file and reading it: YAML, JSON, or a JS module exporting the object
// (or a sync/async function returning it).
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { basename, dirname, extname, isAbsolute, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Node as YamlNode } from "yaml";
import { errorMessage, RollbridgeError } from "../errors.js";
import { formatIssues, validateConfig } from "./issues.js";
import { explainYamlError } from "./yaml-errors.js";
import { CONFIG_FILE_NAMES, configFingerprint, findConfigPath } from "./find.js";
import type { Config } from "./resolved-config.js";

export { CONFIG_FILE_NAMES, findConfigPath } from "./find.js";

export interface LoadedConfig {
  config: Config;
  /** Absolute path of the config file. */
  path: string;
  /** Its directory. */
  dir: string;
  /** configFingerprint of the text validated (YAML and JSON files; a JS module has none). */
  fingerprint?: string;
}

// Parses a config file into plain data; throws CONFIG_LOAD_FAILED (with the cause) when it cannot.
export async function loadRawConfig(path: string): Promise<unknown> {
  return (await readConfigFile(path)).raw;
}

// The parsed file and, for YAML and JSON, the text it was parsed from.
async function readConfigFile(path: string): Promise<{ raw: unknown; text?: string }> {
  const extension = extname(path).toLowerCase();
  if (extension === ".js" || extension === ".mjs" || extension === ".cjs") return { raw: await importConfigModule(path) };
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new RollbridgeError("CONFIG_LOAD_FAILED", `cannot read ${path}: ${errorMessage(error)}`, { cause: error });
  }
  if (extension === ".json") return { raw: parseJsonText(text, path), text };
  if (extension === ".yaml" || extension === ".yml") {
    const parsed = parseYamlText(text, isProcessEnvValue);
    if ("error" in parsed) {
      throw new RollbridgeError("CONFIG_LOAD_FAILED", `cannot parse ${path}:${parsed.error.line}:${parsed.error.column}: ${parsed.error.message}`, {
        cause: parsed.error.cause,
        fix: parsed.error.fix,
      });
    }
    return { raw: parsed.value, text };
  }
  throw new RollbridgeError("CONFIG_LOAD_FAILED", `unsupported config file type "${extension || basename(path)}": ${path}`, {
    fix: `Name the config file with one of: ${CONFIG_FILE_NAMES.map((name) => extname(name)).join(", ")}.`,
  });
}

// Finds, reads and validates the config; throws CONFIG_INVALID with every issue in `details`.
export async function loadConfig(explicit: string | undefined, cwd: string): Promise<LoadedConfig> {
  const path = findConfigPath(explicit, cwd);
  const { raw, text } = await readConfigFile(path);
  const result = validateConfig(raw, { configPath: path });
  if (!result.ok) {
    const shown = relative(resolve(cwd), path);
    const file = shown === "" || shown.startsWith("..") || isAbsolute(shown) ? path : shown;
    throw new RollbridgeError("CONFIG_INVALID", formatIssues(file, result.issues), {
      details: result.issues,
      fix: result.issues.length === 1 ? result.issues[0]?.fix : "Fix each issue listed above.",
    });
  }
  return { config: result.config, path, dir: dirname(path), ...(text === undefined ? {} : { fingerprint: configFingerprint(text) }) };
}

export interface YamlSyntaxError {
  /** Where the mistake most likely is (not always where the parser gave up). */
  line: number;
  column: number;
  message: string;
  fix: string;
  cause: unknown;
}

// Parses YAML (or JSON) text. Scalars at paths chosen by `keepText` keep their source text, so an
// unquoted `0755` or `1.50` stays a string as written rather than becoming a number.
export function parseYamlText(text: string, keepText: (path: readonly (string | number)[]) => boolean): { value: unknown } | { error: YamlSyntaxError } {
  const lineCounter = new LineCounter();
  // logLevel "error": problems come back as errors here, never as warnings on the daemon's stderr.
  const document = parseDocument(text, { merge: true, prettyErrors: true, lineCounter, logLevel: "error" });
  const [first] = document.errors;
  if (first !== undefined) return { error: { ...explainYamlError(text, first), cause: first } };
  keepScalarText(document.contents, [], keepText);
  try {
    return { value: document.toJS() };
  } catch (cause) {
    // Aliases are resolved only here: a merge (<<) of a non-mapping, or too many aliases.
    const position = lineCounter.linePos(firstAliasOffset(document) ?? 0);
    return { error: { line: position.line, column: position.col, message: errorMessage(cause), fix: "Fix the alias or merge key (<<) at that line and column.", cause } };
  }
}

function firstAliasOffset(document: ReturnType<typeof parseDocument>): number | undefined {
  let offset: number | undefined;
  visit(document, {
    Alias(_key, node) {
      offset = node.range?.[0];
      return visit.BREAK;
    },
  });
  return offset;
}

async function importConfigModule(path: string): Promise<unknown> {
  // CommonJS modules are cached by file name and ES modules by URL: drop the first and vary the
  // second, so a reload (SIGHUP) sees the file as it is now.
  delete createRequire(import.meta.url).cache[path];
  const url = `${pathToFileURL(path).href}?load=${Date.now()}-${Math.random().toString(36).slice(2)}`;
  let namespace: Record<string, unknown>;
  try {
    namespace = (await import(url)) as Record<string, unknown>;
  } catch (error) {
    throw new RollbridgeError("CONFIG_LOAD_FAILED", `cannot load ${path}: ${errorMessage(error)}`, {
      cause: error,
      fix: "Run the file with node to see the full error.",
    });
  }
  if (!("default" in namespace)) {
    throw new RollbridgeError("CONFIG_LOAD_FAILED", `${path} has no default export`, {
      fix: "Export the config with `export default {...}` (ES module) or `module.exports = {...}` (CommonJS).",
    });
  }
  const exported = namespace["default"];
  try {
    return typeof exported === "function" ? await (exported as () => unknown)() : await exported;
  } catch (error) {
    throw new RollbridgeError("CONFIG_LOAD_FAILED", `the config function in ${path} failed: ${errorMessage(error)}`, { cause: error });
  }
}

function parseJsonText(text: string, path: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    const message = errorMessage(error);
    const { line, column } = jsonErrorPosition(text, message);
    throw new RollbridgeError("CONFIG_LOAD_FAILED", `cannot parse ${path}:${line}:${column}: ${message.replace(/ in JSON at position \d+.*$/, "")}`, {
      cause: error,
      fix: "Fix the JSON syntax at that line and column.",
    });
  }
}

function jsonErrorPosition(text: string, message: string): { line: number; column: number } {
  const explicit = /line (\d+) column (\d+)/.exec(message);
  if (explicit) return { line: Number(explicit[1]), column: Number(explicit[2]) };
  const position = /position (\d+)/.exec(message);
  const offset = position ? Number(position[1]) : text.length;
  const before = text.slice(0, offset).split("\n");
  return { line: before.length, column: (before[before.length - 1]?.length ?? 0) + 1 };
}

function isProcessEnvValue(path: readonly (string | number)[]): boolean {
  return path.length === 4 && path[0] === "processes" && typeof path[1] === "number" && path[2] === "env";
}

function keepScalarText(node: unknown, path: (string | number)[], keepText: (path: readonly (string | number)[]) => boolean): void {
  if (isMap(node)) {
    for (const pair of node.items) {
      if (!isPair(pair)) continue;
      const key = isScalar(pair.key) ? pair.key.value : pair.key;
      if (typeof key === "string" || typeof key === "number") keepScalarText(pair.value, [...path, key], keepText);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, index) => keepScalarText(item, [...path, index], keepText));
  } else if (isScalar(node) && keepText(path)) {
    const plain = node.type === "PLAIN" || node.type === undefined;
    const source = (node as YamlNode & { source?: unknown }).source;
    if (plain && (typeof node.value === "number" || typeof node.value === "boolean") && typeof source === "string") node.value = source;
  }
}
