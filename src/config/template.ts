// `{{ name }}` placeholders in process commands, lifecycle hooks, cwd, env values and log paths.
// Only names that look like variables are placeholders, so shell text such as
// `docker ps --format '{{.Names}}'` passes through untouched. In shell text (command, hooks)
// each value is quoted for where it sits (shell-quote.ts); cwd, env and paths get it as is.
import { RollbridgeError } from "../errors.js";
import { quoteForShell, shellContexts } from "./shell-quote.js";

export interface TemplateContext {
  vars: Record<string, string | number | undefined>;
  env: Record<string, string | undefined>;
}

// Variables every process can use, besides `ports.<id>` and `env.<NAME>`.
export const TEMPLATE_VARIABLES = ["application", "releasePath", "releaseId", "revision", "processId", "instanceId", "replicaIndex", "replicaCount", "port", "proxy.host", "proxy.port", "proxy.upstreamHost"] as const;

const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_.-]+)?$/;

/** How a rendered value is written: `shell` quotes it for the shell text around it. */
export interface RenderOptions {
  shell?: boolean;
}

// Replaces every placeholder; `where` names the field in errors (e.g. "processes[web].command").
export function renderTemplate(template: string, ctx: TemplateContext, where: string, options: RenderOptions = {}): string {
  const sites = [...template.matchAll(PLACEHOLDER)].filter((m) => NAME.test(m[1] ?? ""));
  const contexts = options.shell
    ? shellContexts(
        template,
        sites.map((m) => ({ start: m.index, end: m.index + m[0].length })),
      )
    : [];
  let out = "";
  let last = 0;
  sites.forEach((match, i) => {
    const name = match[1] ?? "";
    const value = resolve(name, ctx, where);
    const context = contexts[i];
    out += template.slice(last, match.index) + (context === undefined ? value : quoteForShell(value, context, where, name));
    last = match.index + match[0].length;
  });
  return out + template.slice(last);
}

function resolve(name: string, ctx: TemplateContext, where: string): string {
  if (name.startsWith("env.")) {
    const variable = name.slice("env.".length);
    const value = ctx.env[variable];
    if (value === undefined) {
      throw new RollbridgeError("TEMPLATE_UNRESOLVED", `unresolved template variable {{${name}}} in ${where}`, {
        fix: `Export ${variable} in the environment the daemon runs with (then restart the daemon), or remove {{${name}}}.`,
      });
    }
    return value;
  }
  if (!Object.hasOwn(ctx.vars, name)) {
    throw new RollbridgeError("TEMPLATE_UNRESOLVED", `unknown template variable {{${name}}} in ${where}`, {
      fix: `Use one of the known variables: ${knownNames(ctx).join(", ")}.`,
    });
  }
  const value = ctx.vars[name];
  if (value === undefined) {
    throw new RollbridgeError("TEMPLATE_UNRESOLVED", `unresolved template variable {{${name}}} in ${where}`, {
      fix: unresolvedFix(name),
    });
  }
  return String(value);
}

// The distinct placeholder names in a template, in order of first appearance.
export function templateNames(template: string): string[] {
  const names: string[] = [];
  for (const match of template.matchAll(PLACEHOLDER)) {
    const name = match[1] ?? "";
    if (NAME.test(name) && !names.includes(name)) names.push(name);
  }
  return names;
}

function knownNames(ctx: TemplateContext): string[] {
  return [...Object.keys(ctx.vars).sort(), "env.<NAME>"].map((name) => `{{${name}}}`);
}

function unresolvedFix(name: string): string {
  if (name === "port") return "{{port}} needs a port on this process: add port to its config, or remove the placeholder.";
  if (name.startsWith("ports.")) {
    const id = name.slice("ports.".length);
    return `{{${name}}} needs process "${id}" to have a port (and to be running in this release); add one, or remove the placeholder.`;
  }
  return `{{${name}}} has no value here; remove the placeholder or provide the value (e.g. a --revision for {{revision}}).`;
}
