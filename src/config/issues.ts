// Validation results as issues a person can act on: every problem at once, each with a path,
// a message and a concrete fix. Zod checks each field (zod-issues.ts translates its issues); the
// cross-field rules (cross-field-rules.ts) check what a single field cannot.
import { crossFieldIssues } from "./cross-field-rules.js";
import { describeValue, isRecord } from "./issue-paths.js";
import { resolveConfig, type Config } from "./resolved-config.js";
import { unquotedPlaceholderIssues } from "./placeholders.js";
import { configSchema } from "./schema.js";
import { describeZodIssues } from "./zod-issues.js";

// One problem in a config or desired file, in the shape the CLI prints and the control API returns.
export interface ConfigIssue {
  /** Where, e.g. "processes[web].port" (the process id when known, else its index); "" for the whole file. */
  path: string;
  message: string;
  fix: string;
}

// Checks a config as loaded from its file; on success returns it resolved (defaults, absolute paths).
export function validateConfig(raw: unknown, ctx: { configPath: string }): { ok: true; config: Config } | { ok: false; issues: ConfigIssue[] } {
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
  // An unquoted {{placeholder}} explains every other complaint about its value ("must be a
  // string, not a mapping"): report it alone for that place.
  const placeholders = unquotedPlaceholderIssues(raw);
  const explained = (issue: ConfigIssue) => placeholders.some((p) => issue.path === p.path || issue.path.startsWith(`${p.path}.`) || issue.path.startsWith(`${p.path}[`));
  const issues = [...placeholders, ...[...(parsed.success ? [] : describeZodIssues(parsed.error.issues, configSchema, raw)), ...crossFieldIssues(raw, ctx.configPath)].filter((issue) => !explained(issue))];
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

function dedupe(issues: ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues.filter((issue) => {
    const key = `${issue.path}\n${issue.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
