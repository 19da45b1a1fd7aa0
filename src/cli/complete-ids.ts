// `rollbridge __complete processes|releases [--config PATH]`: the ids shell completion offers
// for --process and --release-id, one per line. Hidden (not in the command table): the
// completion scripts call it. It must be quiet and quick whatever happens — no daemon, a
// broken config, a daemon that hangs — so every failure prints nothing, and the daemon gets
// one short request.
import { parseArgs } from "node:util";
import { loadConfig } from "../config/load.js";
import { request } from "../control/client.js";
import type { StatusDocument } from "../control/protocol.js";
import type { DynamicValues } from "./command.js";
import { endpointFor } from "./context.js";

/** How long completion waits for the daemon: a shell waiting on Tab must not hang. */
const DAEMON_TIMEOUT_MS = 1000;

/** Prints the ids (one per line) and returns the exit code; never writes to stderr. */
export async function completeIds(argv: string[], cwd: string, stdout: (text: string) => void): Promise<number> {
  let kind: DynamicValues;
  let config: string | undefined;
  try {
    const parsed = parseArgs({ args: argv, options: { config: { type: "string", short: "c" } }, allowPositionals: true, strict: false });
    const first = parsed.positionals[0];
    if (first !== "processes" && first !== "releases") return 2;
    kind = first;
    config = typeof parsed.values.config === "string" ? parsed.values.config : undefined;
  } catch {
    return 2;
  }
  let ids: string[];
  try {
    const loaded = await loadConfig(config, cwd);
    const fromConfig = kind === "processes" ? loaded.config.processes.map((p) => p.id) : [];
    let status: StatusDocument | null = null;
    try {
      status = await request<StatusDocument>(await endpointFor(loaded.config), "GET", "/status", undefined, DAEMON_TIMEOUT_MS);
    } catch {
      // No daemon (or a slow one): processes still complete from the config.
    }
    ids = kind === "processes" ? [...fromConfig, ...(status?.processes.map((p) => p.instanceId) ?? [])] : (status?.releases.filter((r) => r.id !== status?.activeRelease?.id).map((r) => r.id) ?? []);
  } catch {
    return 1;
  }
  // One id per line: an id with a newline or a control character would break the shell's list.
  const unique = [...new Set(ids)].filter((id) => id !== "" && !/[\u0000-\u001f\u007f]/.test(id));
  if (unique.length > 0) stdout(unique.join("\n") + "\n");
  return 0;
}
