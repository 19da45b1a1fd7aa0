// An unquoted `{{port}}` at the start of a YAML value is read as a flow mapping (a mapping
// whose one key is the mapping {port: null}), not as text; validation would then say "must be a
// string, not a mapping", which does not tell the author what happened. These find such values
// in loaded data and phrase the fix: quote the value.
import { formatPath, isRecord, type Path } from "./issue-paths.js";
import type { ConfigIssue } from "./issues.js";

/** What the yaml library makes of `{{name}}` as a whole value: `{"{ name }": null}`. */
const PARSED_PLACEHOLDER = /^\{ ?([^\s{}]+) ?\}$/;

/** The placeholder a parsed value was written as (`{{port}}`), or null when it is anything else. */
export function parsedPlaceholder(value: unknown): string | null {
  if (!isRecord(value)) return null;
  const keys = Object.keys(value);
  if (keys.length !== 1 || value[keys[0]!] !== null) return null;
  const match = PARSED_PLACEHOLDER.exec(keys[0]!);
  return match ? `{{${match[1]}}}` : null;
}

/** One issue per value of `raw` that was an unquoted placeholder, with the fix to quote it. */
export function unquotedPlaceholderIssues(raw: unknown): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const walk = (value: unknown, path: Path) => {
    const placeholder = path.length > 0 ? parsedPlaceholder(value) : null;
    if (placeholder !== null) {
      const where = formatPath(path, raw);
      const last = path[path.length - 1];
      const key = typeof last === "string" ? last : null;
      issues.push({
        path: where,
        message: `${where} is an unquoted ${placeholder}: YAML reads a value that starts with "{" as a mapping, not as text`,
        fix: `Quote the value: ${placeholderFix(key, placeholder)}.`,
      });
      return;
    }
    if (Array.isArray(value)) value.forEach((item, index) => walk(item, [...path, index]));
    else if (isRecord(value)) for (const [k, v] of Object.entries(value)) walk(v, [...path, k]);
  };
  walk(raw, []);
  return issues;
}

/** `cwd: "{{releasePath}}/app"`: the value as written, double-quoted (JSON quoting is valid YAML). */
export function placeholderFix(key: string | null, value: string): string {
  const quoted = JSON.stringify(value);
  return key === null ? `- ${quoted}` : `${key}: ${quoted}`;
}
