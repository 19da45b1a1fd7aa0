// Template values in shell text (command, lifecycle hooks) are data: each is quoted for where it
// sits, so the shell hands the program the literal value and never runs any of it. Every case is
// checked by running the rendered text through the real /bin/sh.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { renderTemplate, type TemplateContext } from "../../src/config/template.js";
import { shellContexts, type ShellContext } from "../../src/config/shell-quote.js";
import { isRollbridgeError } from "../../src/errors.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "rb-quote-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const mark = (name: string) => path.join(dir, name);

// Values an attacker (a revision, a path, a daemon env var) could carry.
const HOSTILE: string[] = [
  `$(touch ${mark("subst")})`,
  `\`touch ${mark("backtick")}\``,
  `a;touch ${mark("semicolon")}`,
  `x\ntouch ${mark("newline")}`,
  `x'; touch ${mark("single")}; '`,
  `x"; touch ${mark("double")}; "`,
  `it's "quoted"`,
  `a b  c`,
  `*`,
  `~root`,
  `$HOME`,
  `\\`,
  `a\\`,
  `a=b`,
  `#not-a-comment`,
  `if`,
  `-n`,
  `}{)(`,
  `\t tab`,
  ``,
  `ünïcødé ✓`,
];

// A plain value that must come out exactly as before (existing configs keep working).
const PLAIN = "/srv/app/releases/20261123120000";

function render(template: string, value: string): string {
  const ctx: TemplateContext = { vars: { v: value, releasePath: PLAIN, port: 18183 }, env: {} };
  return renderTemplate(template, ctx, "processes[web].command", { shell: true });
}

function sh(script: string): string {
  return execFileSync("/bin/sh", ["-c", script], { encoding: "utf8", env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: "/home/nobody" } });
}

function noMarks(): string[] {
  return readdirSync(dir);
}

// [what, template, expected output given the value]
const CONTEXTS: [string, string, (v: string) => string][] = [
  ["a bare word", `printf '%s|' {{v}}`, (v) => `${v}|`],
  ["part of a word", `printf '%s|' --rev={{v}}.tar`, (v) => `--rev=${v}.tar|`],
  ["inside double quotes", `printf '%s|' "pre {{v}} post"`, (v) => `pre ${v} post|`],
  ["inside single quotes", `printf '%s|' 'pre {{v}} post'`, (v) => `pre ${v} post|`],
  ["inside $(...)", `printf '%s|' "$(printf '%s' {{v}})"`, (v) => `${v.replace(/\n+$/, "")}|`],
  ["inside double quotes inside $(...)", `printf '%s|' "$(printf '%s' "{{v}}")"`, (v) => `${v.replace(/\n+$/, "")}|`],
  ["after a quoted string on a line with a comment", `printf '%s|' 'a#b' {{v}} # {{v}}`, (v) => `a#b|${v}|`],
  ["in a comment", `printf '%s|' ok # rev {{v}}`, () => "ok|"],
  ["after &&", `true && printf '%s|' {{v}}`, (v) => `${v}|`],
  ["in the second line of a script", `true\nprintf '%s|' "{{v}}"`, (v) => `${v}|`],
];

describe("template values in shell text", () => {
  for (const [what, template, expected] of CONTEXTS) {
    it(`reach the program literally as ${what}, whatever they hold`, () => {
      for (const value of HOSTILE) {
        const out = sh(render(template, value));
        expect(out, `value ${JSON.stringify(value)} in ${template}`).toBe(expected(value));
      }
      expect(noMarks()).toEqual([]);
    });
  }

  it("leave existing commands unchanged when the values are plain", () => {
    const ctx: TemplateContext = { vars: { releasePath: PLAIN, port: 18183, revision: "abc123" }, env: {} };
    const r = (t: string) => renderTemplate(t, ctx, "processes[web].command", { shell: true });
    expect(r("node server.js --port {{port}}")).toBe("node server.js --port 18183");
    expect(r(`"{{releasePath}}/bin/start"`)).toBe(`"${PLAIN}/bin/start"`);
    expect(r("cd {{releasePath}} && exec node x --rev={{revision}}")).toBe(`cd ${PLAIN} && exec node x --rev=abc123`);
    expect(r("docker ps --format '{{.Names}}' {{ json . }}")).toBe("docker ps --format '{{.Names}}' {{ json . }}");
    expect(r("echo $(( {{port}} + 1 ))")).toBe("echo $(( 18183 + 1 ))");
  });

  it("quote a path with spaces and quotes so the command still finds it", () => {
    const release = mkdtempSync(path.join(dir, 'my app\'s "v2" '));
    try {
      const ctx: TemplateContext = { vars: { releasePath: release }, env: {} };
      expect(sh(renderTemplate(`cd {{releasePath}} && pwd`, ctx, "c", { shell: true })).trim()).toBe(release);
      expect(sh(renderTemplate(`cd "{{releasePath}}" && pwd`, ctx, "c", { shell: true })).trim()).toBe(release);
      expect(sh(renderTemplate(`cd '{{releasePath}}' && pwd`, ctx, "c", { shell: true })).trim()).toBe(release);
    } finally {
      rmSync(release, { recursive: true, force: true });
    }
  });

  it("are not quoted in cwd, env and paths (those are not shell text)", () => {
    const ctx: TemplateContext = { vars: { v: "it's $(x)" }, env: {} };
    expect(renderTemplate("{{v}}/sub", ctx, "processes[web].cwd")).toBe("it's $(x)/sub");
  });

  const RESTRICTED: [string, string, string][] = [
    ["inside ${...}", `printf '%s|' "\${UNSET_VAR:-{{v}}}"`, "18183|"],
    ["inside backticks", "printf '%s|' `echo {{v}}`", "18183|"],
    ["in a here-document", "cat <<EOF\n{{v}}\nEOF", "18183\n"],
    ["in a quoted here-document", "cat <<'EOF'\n{{v}}\nEOF", "18183\n"],
    ["after a backslash", `printf '%s|' \\{{v}}`, "18183|"],
  ];
  for (const [what, template, expected] of RESTRICTED) {
    it(`allow only plain values ${what}, where no quoting is reliable`, () => {
      expect(sh(render(template, "18183"))).toBe(expected);
      for (const value of HOSTILE.filter((v) => !/^[A-Za-z0-9_./:@%+,-]+$/.test(v) || v === "if")) {
        let error: unknown;
        try {
          render(template, value);
        } catch (e) {
          error = e;
        }
        expect(isRollbridgeError(error, "TEMPLATE_UNSAFE"), `value ${JSON.stringify(value)}`).toBe(true);
      }
      expect(noMarks()).toEqual([]);
    });
  }

  it("tell the contexts apart", () => {
    const contexts = (t: string): ShellContext[] => {
      const spans = [...t.matchAll(/\{\{v\}\}/g)].map((m) => ({ start: m.index, end: m.index + m[0].length }));
      return shellContexts(t, spans);
    };
    expect(contexts(`a {{v}} "{{v}}" '{{v}}' # {{v}}`)).toEqual(["unquoted", "double", "single", "comment"]);
    expect(contexts(`a#{{v}} {{v}}`)).toEqual(["unquoted", "unquoted"]);
    expect(contexts(`"$(x {{v}} "{{v}}")" '"' {{v}}`)).toEqual(["unquoted", "double", "unquoted"]);
    expect(contexts("cat <<-EOF\n\t{{v}}\n\tEOF\necho {{v}}")).toEqual(["restricted", "unquoted"]);
    expect(contexts(`"\${A:-{{v}}}" {{v}} \`{{v}}\` \\{{v}}`)).toEqual(["restricted", "unquoted", "restricted", "restricted"]);
    expect(contexts(`echo "it's" {{v}} 'a"b' {{v}}`)).toEqual(["unquoted", "unquoted"]);
  });

  it("never create the marker files", () => {
    expect(existsSync(mark("subst"))).toBe(false);
    expect(noMarks()).toEqual([]);
  });
});
