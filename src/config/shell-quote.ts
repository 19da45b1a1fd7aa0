// Quoting template values for the shell text they land in (`command` and the lifecycle hooks run
// through /bin/sh -c). A value is data: whatever it holds (`$(touch x)`, quotes, spaces, a
// newline) reaches the program as one literal piece of the word the template put it in. The
// context of each placeholder is read from the template alone, with POSIX sh quoting rules.
import { RollbridgeError } from "../errors.js";

/**
 * Where a placeholder sits in shell text:
 * - unquoted: a plain word (`--port {{port}}`, also inside `$(...)`);
 * - double: inside "..." (`"{{releasePath}}/bin/start"`);
 * - single: inside '...';
 * - comment: after an unquoted `#` that starts a word;
 * - restricted: where no quoting is reliable (inside `${...}`, backticks, a here-document, or
 *   right after a backslash): only values made of safe characters are allowed there.
 */
export type ShellContext = "unquoted" | "double" | "single" | "comment" | "restricted";

/** A placeholder's position in a template and the shell context it sits in. */
export interface PlaceholderSite {
  start: number;
  end: number;
  context: ShellContext;
}

/**
 * The shell context of every placeholder span (`[start, end)`, in order) of `template`.
 * Placeholders count as ordinary word characters, so they never change the context around them.
 */
export function shellContexts(template: string, spans: readonly { start: number; end: number }[]): ShellContext[] {
  const lexer = new ShellLexer(template);
  return spans.map((span) => {
    lexer.advanceTo(span.start);
    const context = lexer.context();
    lexer.skipPlaceholder(span.end);
    return context;
  });
}

/** `value` written so that the shell reads it back literally in `context`; `where` names the field in errors. */
export function quoteForShell(value: string, context: ShellContext, where: string, name: string): string {
  switch (context) {
    case "unquoted":
      return isSafeWord(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
    case "double":
      return value.replace(/[\\"$`]/g, (c) => `\\${c}`);
    case "single":
      // Close the quote, add an escaped quote, reopen: 'it'\''s'.
      return value.replaceAll("'", `'\\''`);
    case "comment":
      // A newline would end the comment and start a command.
      return value.replace(/[\r\n]/g, " ");
    case "restricted":
      if (isSafeWord(value)) return value;
      throw new RollbridgeError(
        "TEMPLATE_UNSAFE",
        `{{${name}}} in ${where} sits where its value cannot be quoted (inside \${...}, backticks, a here-document, or after a backslash), and the value has characters other than letters, digits and _ . / : @ % + , -`,
        {
          fix: `Move {{${name}}} to a plain word or into "..." in ${where} (use $(...) rather than backticks), or read the value from the environment (e.g. "$ROLLBRIDGE_REVISION").`,
        },
      );
    default: {
      const _exhaustive: never = context;
      return _exhaustive;
    }
  }
}

// Characters the shell never treats specially in a word, so such a value can stand bare.
const SAFE_WORD = /^[A-Za-z0-9_./:@%+,-]+$/;
// Reserved words are only special as whole words, but a bare `if` could become one.
const RESERVED = new Set(["if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while", "until", "for", "in", "function", "select", "time"]);

function isSafeWord(value: string): boolean {
  return SAFE_WORD.test(value) && !RESERVED.has(value);
}

type FrameKind = "code" | "double" | "single" | "comment" | "param" | "heredoc";

interface Frame {
  kind: FrameKind;
  /** For code frames: what ends it — `)` of `$(`, a backtick, or nothing (the top level). */
  close?: ")" | "`";
  /** Open parentheses inside a `$(` frame (subshells, `$((`), so the matching `)` is found. */
  depth: number;
  /** Inside backticks or `${...}` (or nested in them): no quoting is reliable. */
  restricted: boolean;
}

/** A forward-only scanner of POSIX sh quoting, enough to tell the context at any offset. */
class ShellLexer {
  private pos = 0;
  private readonly stack: Frame[] = [{ kind: "code", depth: 0, restricted: false }];
  /** Here-documents announced on the current line: their bodies start at the next newline. */
  private pendingHeredocs: { delimiter: string; stripTabs: boolean }[] = [];
  /** Set when the character before `pos` was an escaping backslash outside single quotes. */
  private escaped = false;

  constructor(private readonly text: string) {}

  context(): ShellContext {
    const frame = this.top();
    if (this.escaped || frame.restricted || frame.kind === "param" || frame.kind === "heredoc") return "restricted";
    switch (frame.kind) {
      case "code":
        return "unquoted";
      case "double":
        return "double";
      case "single":
        return "single";
      case "comment":
        return "comment";
      default:
        return "restricted";
    }
  }

  /** A placeholder is word text: it ends an escape and starts a word (no `#` comment right after it). */
  skipPlaceholder(end: number): void {
    this.escaped = false;
    this.pos = end;
  }

  advanceTo(target: number): void {
    while (this.pos < target) this.step();
  }

  private top(): Frame {
    return this.stack[this.stack.length - 1]!;
  }

  private push(kind: FrameKind, close?: ")" | "`"): void {
    const outer = this.top();
    const frame: Frame = { kind, depth: 0, restricted: outer.restricted || kind === "param" || close === "`" };
    if (close !== undefined) frame.close = close;
    this.stack.push(frame);
  }

  private pop(): void {
    if (this.stack.length > 1) this.stack.pop();
  }

  private step(): void {
    const c = this.text[this.pos]!;
    const next = this.text[this.pos + 1];
    const frame = this.top();
    if (this.escaped) {
      // The escaped character is literal; a newline after a backslash is a line continuation.
      this.escaped = false;
      this.pos += 1;
      return;
    }
    switch (frame.kind) {
      case "single":
        if (c === "'") this.pop();
        this.pos += 1;
        return;
      case "comment":
        if (c === "\n") {
          this.pop();
          return; // the newline itself is handled by the code frame (here-documents)
        }
        this.pos += 1;
        return;
      case "heredoc":
        this.heredocLine();
        return;
      case "double":
        this.pos += 1;
        if (c === "\\") this.escaped = true;
        else if (c === '"') this.pop();
        else this.expansion(c, next);
        return;
      case "param":
        this.pos += 1;
        if (c === "\\") this.escaped = true;
        else if (c === "}") this.pop();
        else if (c === "'") this.push("single");
        else if (c === '"') this.push("double");
        else this.expansion(c, next);
        return;
      case "code":
        this.codeChar(frame, c, next);
        return;
      default: {
        const _exhaustive: never = frame.kind;
        return _exhaustive;
      }
    }
  }

  /** `$(`, `${` and backticks open nested frames in code, double quotes and parameter words. */
  private expansion(c: string, next: string | undefined): void {
    if (c === "$" && next === "(") {
      this.pos += 1;
      this.push("code", ")");
    } else if (c === "$" && next === "{") {
      this.pos += 1;
      this.push("param");
    } else if (c === "`") {
      this.push("code", "`");
    }
  }

  private codeChar(frame: Frame, c: string, next: string | undefined): void {
    const prev = this.pos > 0 ? this.text[this.pos - 1] : undefined;
    this.pos += 1;
    switch (c) {
      case "\\":
        this.escaped = true;
        return;
      case "'":
        this.push("single");
        return;
      case '"':
        this.push("double");
        return;
      case "`":
        if (frame.close === "`") this.pop();
        else this.push("code", "`");
        return;
      case "(":
        frame.depth += 1;
        return;
      case ")":
        if (frame.depth > 0) frame.depth -= 1;
        else if (frame.close === ")") this.pop();
        return;
      case "#":
        if (prev === undefined || /[\s;&|()<>]/.test(prev)) this.push("comment");
        return;
      case "\n":
        if (this.pendingHeredocs.length > 0) this.push("heredoc");
        return;
      case "<":
        if (next === "<" && this.text[this.pos + 1] !== "<") this.announceHeredoc();
        return;
      default:
        this.expansion(c, next);
    }
  }

  /** After `<<`: reads the optional `-` and the delimiter word (quotes removed). */
  private announceHeredoc(): void {
    let i = this.pos + 1;
    let stripTabs = false;
    if (this.text[i] === "-") {
      stripTabs = true;
      i += 1;
    }
    while (this.text[i] === " " || this.text[i] === "\t") i += 1;
    const match = /^(?:'[^']*'|"[^"]*"|\\.|[^\s;&|()<>])+/.exec(this.text.slice(i));
    if (!match) return;
    this.pendingHeredocs.push({ delimiter: match[0].replace(/['"\\]/g, ""), stripTabs });
    this.pos = i + match[0].length;
  }

  /** One step in a here-document body: a line equal to the delimiter ends it (and starts the next announced one). */
  private heredocLine(): void {
    const atLineStart = this.pos === 0 || this.text[this.pos - 1] === "\n";
    const current = this.pendingHeredocs[0];
    if (!atLineStart || current === undefined) {
      this.pos += 1;
      return;
    }
    const eol = this.text.indexOf("\n", this.pos);
    const lineEnd = eol < 0 ? this.text.length : eol;
    const line = this.text.slice(this.pos, lineEnd);
    if ((current.stripTabs ? line.replace(/^\t+/, "") : line) !== current.delimiter) {
      this.pos += 1;
      return;
    }
    this.pos = lineEnd;
    this.pendingHeredocs.shift();
    if (this.pendingHeredocs.length > 0 && eol >= 0)
      this.pos += 1; // the next body starts on the next line
    else this.pop();
  }
}
