// Text from elsewhere — the daemon's answers, a state file, /proc — shown in a terminal. A release
// id, an instance id, an event message or a process name can carry control characters; written
// raw they could move the cursor, rewrite earlier lines, set the window title or the clipboard,
// or fake a line of output. The human output escapes them (`\x1b`, `\n`); --json output is
// JSON-escaped as it is. A managed process's own output keeps its colours (see escapeAppOutput).

// C0 controls, DEL, C1 controls (U+009B is a one-character CSI), and the bidirectional overrides
// and isolates, which reorder what is shown without being visible.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

// An SGR sequence (colours, bold, underline): ESC [ parameters m, nothing else.
const SGR = /\u001b\[[0-9;:]*m/y;

/** `text` with every control character written as a visible escape (`\n`, `\t`, `\x1b`, `\u202e`). */
export function escapeControl(text: string): string {
  return text.replace(CONTROL, visible);
}

/**
 * A line of a managed process's output as `logs` shows it: colour and style sequences (SGR)
 * and tabs are kept, since app logs often use them and they cannot move the cursor; every other
 * control character (cursor movement, screen clearing, OSC titles and clipboard, a bare ESC)
 * is escaped like escapeControl does.
 */
export function escapeAppOutput(line: string): string {
  let out = "";
  let last = 0;
  for (let i = 0; i < line.length; i += 1) {
    const c = line.charCodeAt(i);
    if (c === 0x1b) {
      SGR.lastIndex = i;
      const sgr = SGR.exec(line);
      if (sgr) {
        i += sgr[0].length - 1;
        continue;
      }
    }
    if (c === 0x09 || !isControl(c)) continue;
    out += line.slice(last, i) + visible(line[i]!);
    last = i + 1;
  }
  return last === 0 ? line : out + line.slice(last);
}

// Fields that hold a managed process's own output (logs lines, a failure's last lines).
const APP_OUTPUT_KEYS = new Set(["line", "lines", "output"]);

/**
 * A copy of a parsed JSON value (a daemon answer, a report) safe to print: every string
 * escaped with escapeControl, except the app output fields (`line`, `lines`, `output`), which
 * get escapeAppOutput. Object keys are escaped too. Values without control characters come
 * back unchanged, so ids still compare equal.
 */
export function displaySafe<T>(value: T): T {
  return walk(value, false) as T;
}

function walk(value: unknown, appOutput: boolean): unknown {
  if (typeof value === "string") return appOutput ? escapeAppOutput(value) : escapeControl(value);
  if (Array.isArray(value)) return value.map((item) => walk(item, appOutput));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[escapeControl(key)] = walk(item, APP_OUTPUT_KEYS.has(key));
    return out;
  }
  return value;
}

function isControl(code: number): boolean {
  return code <= 0x1f || (code >= 0x7f && code <= 0x9f) || (code >= 0x202a && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069);
}

function visible(c: string): string {
  switch (c) {
    case "\n":
      return "\\n";
    case "\r":
      return "\\r";
    case "\t":
      return "\\t";
    default: {
      const code = c.charCodeAt(0);
      return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
    }
  }
}
