// Reading a `logs` request's query (process, lines, since) from its URL.
import { RollbridgeError } from "../errors.js";
import type { LogQuery } from "./daemon-api.js";

/** Reads and checks the query; a malformed value is a USAGE error (400). */
export function logQuery(url: URL): LogQuery {
  return {
    process: url.searchParams.get("process") || null,
    lines: intParam(url, "lines", 0),
    since: intParam(url, "since", 0),
  };
}

function intParam(url: URL, name: string, min: number): number | null {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === "") return null;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) throw new RollbridgeError("USAGE", `${name} must be an integer of at least ${min}, not "${raw}"`);
  return n;
}
