// `rollbridge recover [--force]`: lists (and with --force stops) the processes a crashed daemon
// left running, from the state file (statePath). Works with no daemon; with one running, what
// that daemon manages is never listed or stopped.
import type { Config } from "../../config/resolved-config.js";
import { findOrphans, orphanEntry, stopOrphans, type OrphanEntry, type OrphanRecord, type OrphanStopReport } from "../../reconcile/orphans.js";
import type { Command } from "../command.js";
import { configFor } from "../context.js";
import { liveDaemon, type LiveDaemon } from "../live-daemon.js";
import { green, printError, printJson, red, table, yellow } from "../output.js";
import { displaySafe } from "../terminal-text.js";

export const recoverCommand: Command = {
  name: "recover",
  summary: "list (and with --force stop) processes left running by a daemon that crashed",
  usage: "rollbridge recover [--force] [--json]",
  example: "rollbridge recover --config /etc/rollbridge/app.yaml --force",
  options: {
    force: { type: "boolean", description: "stop each orphan's whole process group (stop signal, SIGKILL after the grace period)" },
  },
  async run(ctx) {
    try {
      const loaded = await configFor(ctx);
      const result = await recover(loaded.config, Boolean(ctx.values.force));
      if (ctx.json) printJson(ctx, { ok: result.ok, ...result.document });
      else ctx.stdout(renderRecover(displaySafe(result.document), loaded.path));
      return result.ok ? 0 : 1;
    } catch (error) {
      return printError(ctx, error, 1);
    }
  },
};

/** What `recover --json` prints (besides `ok`). */
export interface RecoverDocument {
  statePath: string | null;
  /** The daemon answering on control.path right now, if any. */
  daemon: { pid: number } | null;
  force: boolean;
  orphans: OrphanEntry[];
  stopped: OrphanStopReport[];
}

/** Finds the orphans and, with `force`, stops them; shared with predeploy-cleanup. */
export async function recover(config: Config, force: boolean, live?: LiveDaemon | null): Promise<{ ok: boolean; document: RecoverDocument; records: OrphanRecord[] }> {
  const daemon = live === undefined ? await liveDaemon(config) : live;
  const records = await findOrphans(config);
  const document: RecoverDocument = {
    statePath: config.statePath ?? null,
    daemon: daemon ? { pid: daemon.pid } : null,
    force,
    orphans: records.map(orphanEntry),
    stopped: [],
  };
  if (force && records.length > 0) document.stopped = await stopOrphans(config, records, daemon?.managed ?? new Set());
  const ok = document.stopped.every((r) => r.outcome !== "survived" && r.outcome !== "error");
  return { ok, document, records };
}

/** The human form of a recover result. */
export function renderRecover(doc: RecoverDocument, configPath: string): string {
  if (doc.statePath === null) return `statePath is false in ${configPath}: no state snapshot is kept, so there are no orphans to find\n`;
  let out = "";
  if (doc.daemon) out += `daemon ${doc.daemon.pid} is running: what it manages is not an orphan and is never stopped here\n`;
  if (doc.orphans.length === 0) return out + `${green("no orphans")}: nothing is left running by a daemon that died (state file ${doc.statePath})\n`;
  out += `${yellow(`${doc.orphans.length} orphan${doc.orphans.length === 1 ? "" : "s"}`)} left running by a daemon that did not shut down cleanly (state file ${doc.statePath}):\n`;
  out += table(
    ["PROCESS", "RELEASE", "PID", "GROUP", "PORT", "DETECTED"],
    doc.orphans.map((o) => [o.instanceId, o.releaseId, o.pid, o.pgid, o.port, o.detectedAt]),
  );
  if (!doc.force) return out + "nothing was stopped; rollbridge recover --force stops each whole process group (stop signal, SIGKILL after the grace period)\n";
  for (const report of doc.stopped) out += `${okOutcome(report) ? green("✓") : red("✗")} ${report.message}\n`;
  return out;
}

function okOutcome(report: OrphanStopReport): boolean {
  return report.outcome !== "survived" && report.outcome !== "error";
}
