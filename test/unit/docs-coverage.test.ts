// The docs keep up with the code: every config field in the generated JSON Schema has a row in
// docs/config.md, every CLI command has a `## name` section in docs/cli.md naming each of its
// flags, and every relative link in README.md and docs/ points at a file and heading that exist.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { GLOBAL_OPTIONS } from "../../src/cli/command.js";
import { COMMANDS } from "../../src/cli/commands/index.js";
import { unquotedPlaceholder } from "../../src/config/yaml-errors.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const read = (file: string) => readFileSync(path.join(ROOT, file), "utf8");

interface JsonSchema {
  type?: string;
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
}

/** Every field path of the config: `proxy.port`, `processes[].health.path`, `legacyTakeover.processes[].name`. */
function fieldPaths(schema: JsonSchema, prefix = ""): string[] {
  const paths: string[] = [];
  for (const [key, child] of Object.entries(schema.properties ?? {})) {
    if (key === "$schema") continue;
    const here = `${prefix}${key}`;
    paths.push(here);
    for (const branch of [child, ...(child.anyOf ?? [])]) {
      if (branch.properties) paths.push(...fieldPaths(branch, `${here}.`));
      if (branch.items?.properties) paths.push(...fieldPaths(branch.items, `${here}[].`));
    }
  }
  return [...new Set(paths)];
}

/** Table rows of a markdown document, keyed by the code span in their first cell. */
function tableRows(markdown: string): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of markdown.split("\n")) {
    const first = /^\|\s*`([^`]+)`\s*\|/.exec(line);
    if (first) rows.set(first[1]!, line);
  }
  return rows;
}

/** `## name` sections of a markdown document. */
function sections(markdown: string): Map<string, string> {
  const out = new Map<string, string>();
  let current: string | null = null;
  for (const line of markdown.split("\n")) {
    const heading = /^## (.+?)\s*$/.exec(line);
    if (heading) {
      current = heading[1]!;
      out.set(current, "");
    } else if (current !== null) {
      out.set(current, out.get(current) + line + "\n");
    }
  }
  return out;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    const heading = fenced ? null : /^#{1,6} (.+)$/.exec(line);
    if (!heading) continue;
    const base = slug(heading[1]!);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    out.add(count === 0 ? base : `${base}-${count}`);
  }
  return out;
}

describe("docs/config.md", () => {
  const schema = JSON.parse(read("schemas/config.schema.json")) as JsonSchema;
  const rows = tableRows(read("docs/config.md"));
  const paths = fieldPaths(schema);

  it("finds the fields to check in the generated schema", () => {
    expect(paths).toEqual(expect.arrayContaining(["application", "proxy.drainTimeoutMs", "processes[].lifecycle.drainCommand", "legacyTakeover.processes[].includes"]));
  });

  it("has a table row for every config field (process fields without the processes[]. prefix)", () => {
    const missing = paths.filter((field) => {
      const shown = field.replace(/^processes\[\]\./, "");
      if (rows.has(shown)) return false;
      // A field of a value such as port's {from, to} may be described in its parent's row.
      const dot = shown.lastIndexOf(".");
      const parent = dot > 0 ? rows.get(shown.slice(0, dot)) : undefined;
      return !(parent !== undefined && new RegExp(`\\b${shown.slice(dot + 1)}\\b`).test(parent));
    });
    expect(missing).toEqual([]);
  });

  it("would notice an undocumented field", () => {
    const extended: JsonSchema = { properties: { ...schema.properties, madeUpSetting: { type: "number" } } };
    expect(fieldPaths(extended).filter((field) => !rows.has(field.replace(/^processes\[\]\./, "")))).toContain("madeUpSetting");
  });
});

describe("docs/cli.md", () => {
  const markdown = read("docs/cli.md");
  const bySection = sections(markdown);

  it.each(COMMANDS.map((command) => [command.name, command] as const))("has a `## %s` section naming each of its flags", (name, command) => {
    const section = bySection.get(name);
    expect(section, `docs/cli.md needs a "## ${name}" section`).toBeDefined();
    // A flag counts as named by its long form (--release-path) or its short one (-f FILE).
    const named = (flag: string, short: string | undefined) => section!.includes(`--${flag}`) || (short !== undefined && new RegExp(`(^|[\\s\\[\`(])-${short}\\b`).test(section!));
    expect(
      Object.entries(command.options)
        .filter(([flag, spec]) => !named(flag, spec.short))
        .map(([flag]) => `--${flag}`),
    ).toEqual([]);
  });

  it("gives every command a usage line and an example for --help", () => {
    const lacking = COMMANDS.filter((c) => !c.usage.startsWith(`rollbridge ${c.name}`) || !c.example.includes(`rollbridge ${c.name}`) || c.summary.trim() === "");
    expect(lacking.map((c) => c.name)).toEqual([]);
  });

  it("describes the global flags", () => {
    expect(Object.keys(GLOBAL_OPTIONS).filter((flag) => !markdown.includes(`--${flag}`))).toEqual([]);
  });
});

describe("links in README.md and docs/", () => {
  const files = [
    "README.md",
    ...readdirSync(path.join(ROOT, "docs"))
      .filter((f) => f.endsWith(".md"))
      .map((f) => `docs/${f}`),
  ];

  it("derives heading anchors the way GitHub does", () => {
    expect(anchors("# Where the daemon's log goes\n## `proxy`\n## Crash loops\n```\n# not a heading\n```\n## Crash loops\n")).toEqual(new Set(["where-the-daemons-log-goes", "proxy", "crash-loops", "crash-loops-1"]));
  });

  it.each(files)("%s links only to files and headings that exist", (file) => {
    const markdown = read(file).replace(/```[\s\S]*?```/g, "");
    const broken: string[] = [];
    for (const [, target] of markdown.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/i.test(target!)) continue;
      const [filePart, anchor] = target!.split("#") as [string, string | undefined];
      const resolved = filePart === "" ? file : path.posix.normalize(path.posix.join(path.posix.dirname(file), filePart));
      if (!existsSync(path.join(ROOT, resolved))) {
        broken.push(`${target} (no file ${resolved})`);
        continue;
      }
      if (anchor !== undefined && resolved.endsWith(".md") && !anchors(read(resolved)).has(anchor)) broken.push(`${target} (no heading #${anchor} in ${resolved})`);
    }
    expect(broken).toEqual([]);
  });
});

/**
 * The lines of a YAML file, with those inside a block scalar (`key: >-`, `key: |`, an Ansible
 * playbook's multi-line Jinja) as null: their text is a string, never read as a mapping.
 */
function scalarLines(text: string): (string | null)[] {
  let blockIndent: number | null = null;
  let keyIndent = 0;
  return text.split("\n").map((line) => {
    const indent = line.length - line.trimStart().length;
    if (blockIndent !== null) {
      if (line.trim() === "" || indent > keyIndent) return null;
      blockIndent = null;
    }
    if (/:\s*[>|][+-]?\d*\s*(#.*)?$/.test(line)) {
      blockIndent = indent + 1;
      keyIndent = indent;
    }
    return line;
  });
}

describe("YAML shown in README.md, docs/ and examples/", () => {
  const markdown = [
    "README.md",
    ...readdirSync(path.join(ROOT, "docs"))
      .filter((f) => f.endsWith(".md"))
      .map((f) => `docs/${f}`),
  ];
  const yamlFiles = (dir: string): string[] => readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? yamlFiles(`${dir}/${e.name}`) : /\.ya?ml$/.test(e.name) ? [`${dir}/${e.name}`] : []));

  it("quotes every value that starts with a placeholder", () => {
    const offenders: string[] = [];
    for (const file of markdown) {
      for (const [, block] of read(file).matchAll(/```ya?ml\n([\s\S]*?)```/g)) {
        for (const line of block!.split("\n")) if (unquotedPlaceholder(line)) offenders.push(`${file}: ${line.trim()}`);
      }
    }
    for (const file of yamlFiles("examples")) {
      scalarLines(read(file)).forEach((line, i) => {
        if (line !== null && unquotedPlaceholder(line)) offenders.push(`${file}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(offenders).toEqual([]);
  });

  it("reads the lines of a block scalar (key: >- or |) as text, not as values", () => {
    expect(scalarLines("a: >-\n  {{ x }}\n  {{ y }}\nb: {{ z }}\n")).toEqual(["a: >-", null, null, "b: {{ z }}", ""]);
  });

  it("would notice an unquoted one", () => {
    expect(unquotedPlaceholder("    cwd: {{releasePath}}/app")).toMatchObject({ key: "cwd", name: "{{releasePath}}" });
    expect(unquotedPlaceholder('    cwd: "{{releasePath}}/app"')).toBeNull();
    expect(unquotedPlaceholder("    command: node s.js --port {{port}}")).toBeNull();
    expect(unquotedPlaceholder("    # cwd: {{releasePath}}")).toBeNull();
  });
});

// A command line a reader copies must work: `rollbridge <command> --flag ...` in the docs and
// examples names a command that exists and only flags that command takes.
describe("rollbridge command lines in README.md, docs/ and examples/", () => {
  const SCRIPT = /\.(sh|ya?ml|service|conf)$/;
  const walk = (dir: string): string[] => readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(`${dir}/${e.name}`) : [`${dir}/${e.name}`]));
  const files = [
    "README.md",
    ...readdirSync(path.join(ROOT, "docs"))
      .filter((f) => f.endsWith(".md"))
      .map((f) => `docs/${f}`),
    ...walk("examples").filter((f) => f.endsWith(".md") || SCRIPT.test(f)),
  ];

  /** The code a reader runs: fenced blocks and inline code of markdown, the non-comment lines of scripts. */
  function codeOf(file: string, text: string): string[] {
    const joined = text.replace(/\\\n\s*/g, " ");
    if (SCRIPT.test(file))
      return joined
        .split("\n")
        .filter((line) => !/^\s*#/.test(line))
        .map((line) => line.replace(/\s#\s.*$/, ""));
    // Shell comments in code blocks are prose (`# or use the copy in node_modules`).
    const blocks = [...joined.matchAll(/```[^\n]*\n([\s\S]*?)```/g)].flatMap((m) => m[1]!.split("\n")).map((line) => line.replace(/(^|\s)#.*$/, ""));
    const prose = joined.replace(/```[\s\S]*?```/g, "");
    const spans = [...prose.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!);
    return [...blocks, ...spans];
  }

  /** Each `rollbridge WORD rest-of-command` in a line of code. */
  function invocations(line: string): { command: string; flags: string[] }[] {
    const found: { command: string; flags: string[] }[] = [];
    for (const m of line.matchAll(/(?:^|[\s(;|&=/"'$])rollbridge\s+([^\s`'"|;&)]+)([^|;&#)\n`]*)/g)) {
      const flags = [...m[2]!.matchAll(/(?:^|[\s[(|])(--?[A-Za-z][\w-]*)/g)].map((f) => f[1]!);
      found.push({ command: m[1]!, flags });
    }
    return found;
  }

  function problems(line: string): string[] {
    const out: string[] = [];
    for (const { command, flags } of invocations(line)) {
      // Placeholders such as COMMAND or <command>, and the top-level flags.
      if (/^[A-Z<[]/.test(command) || ["--help", "-h", "--version", "-v", "__complete"].includes(command)) continue;
      const c = COMMANDS.find((x) => x.name === command);
      if (!c) {
        out.push(`unknown command "${command}"`);
        continue;
      }
      const known = new Set<string>();
      for (const [name, spec] of Object.entries({ ...GLOBAL_OPTIONS, ...c.options })) {
        known.add(`--${name}`);
        if (spec.short) known.add(`-${spec.short}`);
      }
      for (const flag of flags) if (!known.has(flag)) out.push(`${command} has no flag ${flag}`);
    }
    return out;
  }

  it("finds the command lines to check", () => {
    const all = files.flatMap((file) => codeOf(file, read(file)).flatMap(invocations));
    expect(all.length).toBeGreaterThan(100);
    expect(all).toEqual(expect.arrayContaining([{ command: "apply", flags: ["--config", "--release-path", "--revision", "--wait", "--timeout"] }]));
  });

  it("names only commands and flags that exist", () => {
    const bad: string[] = [];
    for (const file of files) for (const line of codeOf(file, read(file))) for (const p of problems(line)) bad.push(`${file}: ${p}: ${line.trim()}`);
    expect(bad).toEqual([]);
  });

  it("never installs rollbridge from the npm registry, where it is not published yet", () => {
    const registry = /\bnpm\s+(install|i|add)\s+(-g\s+|--global\s+)?rollbridge(@\S*)?(\s|$)|\bnpx\s+(-y\s+)?rollbridge@/;
    const bad = files.flatMap((file) =>
      codeOf(file, read(file))
        .filter((line) => registry.test(line))
        .map((line) => `${file}: ${line.trim()}`),
    );
    expect(bad).toEqual([]);
  });

  it("would notice a command or a flag that does not exist", () => {
    expect(problems("rollbridge deploy --release-path /srv/x --wiat")).toEqual(["deploy has no flag --wiat"]);
    expect(problems("sudo rollbridge upgrade-now")).toEqual(['unknown command "upgrade-now"']);
    expect(problems("rollbridge logs -n 20 -f --since 5m | grep error")).toEqual([]);
  });
});
