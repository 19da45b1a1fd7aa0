// YAML syntax errors that point at the mistake. The yaml library reports where its parser
// gave up, which is often not where the author slipped: an unclosed quote is reported at the
// end of the file, an over-indented line at the line above it, a missing colon as "implicit
// keys need to be on a single line". This finds the likely mistake and says how to fix it.
import { CST, Lexer } from "yaml";
import { placeholderFix } from "./placeholders.js";

/** A syntax problem: 1-based line and column of the mistake, what is wrong, and the fix. */
export interface YamlProblem {
  line: number;
  column: number;
  message: string;
  fix: string;
}

/** What the yaml library reports (a YAMLParseError): its code, message and position. */
export interface YamlErrorLike {
  code: string;
  message: string;
  linePos?: [{ line: number; col: number }, { line: number; col: number }?] | undefined;
}

/** The mistake behind the parser's first error in `text`. */
export function explainYamlError(text: string, error: YamlErrorLike): YamlProblem {
  const lines = text.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
  const at = error.linePos?.[0] ?? { line: 1, col: 1 };
  const reported = (error.message.split("\n")[0] ?? error.message).replace(/ at line \d+, column \d+:?$/, "");
  const lineText = lines[at.line - 1] ?? "";

  const placeholder = unquotedPlaceholder(lineText);
  if (placeholder) {
    return {
      line: at.line,
      column: placeholder.column,
      message: `${placeholder.key ? `the value of ${placeholder.key}` : "this value"} starts with ${placeholder.name}; unquoted, YAML reads "{" as the start of a mapping`,
      fix: `Quote the whole value: ${placeholderFix(placeholder.key, placeholder.value)}.`,
    };
  }
  if (/quote/i.test(reported) && error.code === "MISSING_CHAR") {
    const open = unclosedQuote(text);
    if (open) return quoteProblem(lines, open);
  }
  if (/^Flow (map|sequence)|flow (map|sequence|collection)/i.test(reported)) {
    const open = unclosedFlow(text);
    if (open) return flowProblem(lines, open);
  }
  switch (error.code) {
    case "TAB_AS_INDENT":
      return { line: at.line, column: 1, message: "a tab indents this line; YAML indents with spaces only", fix: `Replace the tab at the start of line ${at.line} with spaces, as many as the lines around it use.` };
    case "BLOCK_AS_IMPLICIT_KEY":
    case "MULTILINE_IMPLICIT_KEY": {
      const deeper = overIndentedNext(lines, at.line);
      if (deeper) return deeper;
      const colonless = missingColon(lineText, at.line, at.col);
      if (colonless) return colonless;
      break;
    }
    case "MISSING_CHAR":
    case "BAD_INDENT": {
      const misaligned = misalignedLine(lines, at.line);
      if (misaligned) return misaligned;
      break;
    }
    case "DUPLICATE_KEY": {
      const key = /^\s*(?:-\s+)?([^:#]+?)\s*:/.exec(lineText)?.[1];
      const indent = indentOf(lineText);
      const first = key === undefined ? -1 : lines.slice(0, at.line - 1).findLastIndex((l) => indentOf(l) === indent && new RegExp(`^\\s*(?:-\\s+)?${escapeRegExp(key)}\\s*:`).test(l));
      if (key !== undefined) {
        return {
          line: at.line,
          column: at.col,
          message: `${key} is set twice in the same mapping${first >= 0 ? ` (first on line ${first + 1})` : ""}`,
          fix: `Keep one ${key}: remove or rename the other.`,
        };
      }
      break;
    }
    default:
      break;
  }
  return { line: at.line, column: at.col, message: reported, fix: "Fix the YAML syntax at that line and column." };
}

/** A value on this line that starts with an unquoted `{{`: where, the key, the value as written. */
export function unquotedPlaceholder(line: string): { column: number; key: string | null; name: string; value: string } | null {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = null;
      continue;
    }
    if (c === "#" && (i === 0 || /\s/.test(line[i - 1] ?? ""))) return null;
    if ((c === '"' || c === "'") && (i === 0 || /[\s:,[{-]/.test(line[i - 1] ?? ""))) {
      quote = c;
      continue;
    }
    if (c !== "{" || line[i + 1] !== "{") continue;
    const before = line.slice(0, i).trimEnd();
    const starts = before === "" || /(^|\s)-$/.test(before) || /:$/.test(before) || /[[,]$/.test(before);
    if (!starts || (before.endsWith(":") && i === before.length)) continue;
    const name = /^\{\{\s*([^{}\s]*)\s*\}\}/.exec(line.slice(i))?.[0] ?? "{{";
    const key = /(?:^|[\s,{[])(?:-\s+)?([^\s:,{}[\]#"']+)\s*:$/.exec(before)?.[1] ?? null;
    const value = line
      .slice(i)
      .replace(/\s+#.*$/, "")
      .trimEnd();
    return { column: i + 1, key, name, value };
  }
  return null;
}

interface Opener {
  offset: number;
  char: string;
}

/** The quoted scalar that runs to the end of the text (the parser found no closing quote). */
function unclosedQuote(text: string): Opener | null {
  let found: Opener | null = null;
  for (const { token, offset } of tokens(text)) {
    const type = CST.tokenType(token);
    if (type !== "double-quoted-scalar" && type !== "single-quoted-scalar") continue;
    const q = token[0] ?? '"';
    const closed = token.length > 1 && token.endsWith(q) && (q === "'" || !/(^|[^\\])(\\\\)*\\"$/.test(token));
    if (!closed) found = { offset, char: q };
  }
  return found;
}

/** The innermost `{` or `[` still open when the lexer had to end its flow collection (or the text ended). */
function unclosedFlow(text: string): Opener | null {
  const stack: Opener[] = [];
  for (const { token, offset } of tokens(text)) {
    const type = CST.tokenType(token);
    if (type === "flow-map-start" || type === "flow-seq-start") stack.push({ offset, char: token });
    else if (type === "flow-map-end" || type === "flow-seq-end") stack.pop();
    else if (type === "flow-error-end" && stack.length > 0) return stack[stack.length - 1] ?? null;
  }
  return stack[stack.length - 1] ?? null;
}

/** Lexer tokens with their offsets in the source (control tokens take no source characters). */
function* tokens(text: string): Generator<{ token: string; offset: number }> {
  let offset = 0;
  for (const token of new Lexer().lex(text)) {
    if (token === CST.DOCUMENT || token === CST.FLOW_END || token === CST.SCALAR) {
      yield { token, offset };
      continue;
    }
    yield { token, offset };
    offset += token.length;
  }
}

function position(lines: string[], offset: number): { line: number; column: number } {
  let rest = offset;
  for (let i = 0; i < lines.length; i++) {
    const length = (lines[i] ?? "").length + 1;
    if (rest < length) return { line: i + 1, column: rest + 1 };
    rest -= length;
  }
  return { line: lines.length, column: 1 };
}

function quoteProblem(lines: string[], open: Opener): YamlProblem {
  const { line, column } = position(lines, open.offset);
  const text = (lines[line - 1] ?? "").trimEnd();
  const kind = open.char === '"' ? "double" : "single";
  return {
    line,
    column,
    message: `the ${kind} quote opened here is never closed, so YAML reads the rest of the file as one string`,
    fix: `Close the quote where the value ends, e.g. ${text.trim()}${open.char}`,
  };
}

function flowProblem(lines: string[], open: Opener): YamlProblem {
  const { line, column } = position(lines, open.offset);
  const closer = open.char === "{" ? "}" : "]";
  const text = (lines[line - 1] ?? "").replace(/\s+#.*$/, "").trimEnd();
  // `port: {from: 1, to: 2` wants its closer on that line; a `[` ending its line opens a multi-line list.
  const sameLine = text.length > column;
  return {
    line,
    column,
    message: `the "${open.char}" opened here is never closed with "${closer}"`,
    fix: sameLine ? `End it on the same line, e.g. ${text.trim()}${closer}` : `Close it with "${closer}" after its last entry.`,
  };
}

/** `policy: proxied` followed by a line indented deeper: the deeper line is the mistake. */
function overIndentedNext(lines: string[], lineNo: number): YamlProblem | null {
  const line = lines[lineNo - 1] ?? "";
  const pair = /^(\s*(?:-\s+)?)([^\s#][^:#]*?):\s+\S/.exec(line);
  if (!pair) return null;
  const keyColumn = (pair[1] ?? "").length;
  for (let next = lineNo; next < lines.length; next++) {
    const text = lines[next] ?? "";
    if (text.trim() === "" || text.trim().startsWith("#")) continue;
    const indent = indentOf(text);
    if (indent <= keyColumn) return null;
    return {
      line: next + 1,
      column: indent + 1,
      message: `this line is indented ${indent} spaces, more than "${pair[2]}" on line ${lineNo} (${keyColumn}), which already has a value`,
      fix: `Indent line ${next + 1} by ${keyColumn} spaces, like line ${lineNo}; only a key that ends its line with ":" takes more deeply indented lines under it.`,
    };
  }
  return null;
}

/** `id web` where `id: web` was meant. */
function missingColon(line: string, lineNo: number, col: number): YamlProblem | null {
  const content = line
    .slice(col - 1)
    .replace(/\s+#.*$/, "")
    .trimEnd();
  if (content === "" || /:(\s|$)/.test(content) || /^["'[{]/.test(content)) return null;
  const words = /^(-\s+)?([^\s]+)\s+(.+)$/.exec(content);
  const suggestion = words ? `${words[2]}: ${words[3]}` : `${content}:`;
  return {
    line: lineNo,
    column: col,
    message: `"${content}" has no colon, so YAML cannot tell the key from the value`,
    fix: `Write it as key: value, e.g. ${suggestion}`,
  };
}

/** A line whose indentation matches none of the levels around it. */
function misalignedLine(lines: string[], lineNo: number): YamlProblem | null {
  const line = lines[lineNo - 1] ?? "";
  if (line.trim() === "") return null;
  const indent = indentOf(line);
  for (let prev = lineNo - 2; prev >= 0; prev--) {
    const text = lines[prev] ?? "";
    if (text.trim() === "" || text.trim().startsWith("#")) continue;
    const keyColumn = /^(\s*(?:-\s+)?)/.exec(text)?.[1]?.length ?? 0;
    if (keyColumn === indent) return null;
    return {
      line: lineNo,
      column: indent + 1,
      message: `this line is indented ${indent} space${indent === 1 ? "" : "s"}, which matches no level above it (line ${prev + 1} is at ${keyColumn})`,
      fix: `Indent line ${lineNo} by ${keyColumn} spaces to keep it in the same mapping as line ${prev + 1}, or align it with the key it belongs under.`,
    };
  }
  return null;
}

function indentOf(line: string): number {
  return /^ */.exec(line)?.[0].length ?? 0;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
