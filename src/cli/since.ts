// `--since`: a duration back from now (`30s`, `5m`, `2h`, `1d`, `1h30m`, `500ms`) or a point in
// time (`2026-12-01T12:00:00Z`, `2026-12-01 12:00`, `2026-12-01`), as journalctl and docker
// logs take it.
import { usageError } from "./output.js";

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** The time (ms since the epoch) `value` names; throws a USAGE error that shows the accepted forms. */
export function parseSince(value: string, now: number = Date.now()): number {
  const text = value.trim();
  const duration = parseDuration(text);
  if (duration !== null) return now - duration;
  // A date, or a date and time (local time unless it says Z or an offset, as Date parses ISO).
  if (/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) {
    const at = Date.parse(text.length === 10 ? `${text}T00:00:00` : text.replace(" ", "T"));
    if (Number.isFinite(at)) return at;
  }
  throw usageError(`--since ${JSON.stringify(value)}: not a duration or a time`, "give a duration back from now such as 30s, 5m, 2h, 1d (or 1h30m), or a time such as 2026-12-01T12:00:00Z");
}

/** `1h30m` → 5400000; null when `text` is not a duration. */
function parseDuration(text: string): number | null {
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(text)) return null;
  let total = 0;
  for (const [, amount, , unit] of text.matchAll(/(\d+(\.\d+)?)(ms|s|m|h|d)/g)) total += Number(amount) * (UNIT_MS[unit!] ?? 0);
  return total;
}
