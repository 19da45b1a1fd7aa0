// Printing results and errors the same way in every command.
import { RollbridgeError, errorMessage, isRollbridgeError } from "../errors.js";
import type { CommandContext } from "./command.js";
import { escapeControl } from "./terminal-text.js";

export function printJson(ctx: CommandContext, value: unknown): void {
  ctx.stdout(JSON.stringify(value, null, 2) + "\n");
}

/** Prints an error (message and fix) to stderr, or as JSON on stdout with --json; returns the exit code. */
export function printError(ctx: CommandContext, error: unknown, exitCode = 1): number {
  const code = isRollbridgeError(error) ? error.code : "ERROR";
  const fix = isRollbridgeError(error) ? error.fix : undefined;
  if (ctx.json) {
    const body: Record<string, unknown> = { code, message: errorMessage(error) };
    if (fix) body.fix = fix;
    if (isRollbridgeError(error) && error.details !== undefined) body.details = error.details;
    printJson(ctx, { ok: false, error: body });
  }
  ctx.stderr(`rollbridge: ${escapeControl(errorMessage(error))}\n`);
  if (fix) ctx.stderr(`  fix: ${escapeControl(fix)}\n`);
  return exitCode;
}

export function usageError(message: string, fix?: string): RollbridgeError {
  return new RollbridgeError("USAGE", message, fix ? { fix } : {});
}

const useColor = () => process.stdout.isTTY && !process.env.NO_COLOR;

export function color(code: number, text: string): string {
  return useColor() ? `\u001b[${code}m${text}\u001b[0m` : text;
}

export const green = (t: string) => color(32, t);
export const red = (t: string) => color(31, t);
export const yellow = (t: string) => color(33, t);
export const dim = (t: string) => color(2, t);
export const bold = (t: string) => color(1, t);

/** Length as the terminal shows it: colour escapes take no columns. */
function visibleLength(text: string): number {
  return text.replace(/\u001b\[[0-9;]*m/g, "").length;
}

/** A plain left-aligned table (coloured cells keep their columns aligned). */
export function table(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null || c === undefined ? "-" : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => visibleLength(r[i] ?? ""))));
  return (
    cells
      .map((r) =>
        r
          .map((c, i) => (c ?? "") + " ".repeat(Math.max(0, (widths[i] ?? 0) - visibleLength(c ?? ""))))
          .join("  ")
          .trimEnd(),
      )
      .join("\n") + "\n"
  );
}

/** 1536 → "1.5 KiB". */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}
