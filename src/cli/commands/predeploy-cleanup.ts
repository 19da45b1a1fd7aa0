// `rollbridge predeploy-cleanup --release-path P [--dry-run]`: before the first Rollbridge deploy
// on a host (or after a crash), stop what would get in its way: orphans of a crashed daemon,
// then — only while no Rollbridge release is active — the old supervisor's processes named in
// `legacyTakeover`. Never the CLI itself, its ancestors, or anything a live daemon manages.
import { promises as fs } from "node:fs";
import path from "node:path";
import type { Config } from "../../config/resolved-config.js";
import { RollbridgeError } from "../../errors.js";
import type { GroupStopOutcome } from "../../process/group-stop.js";
import { selfAndAncestors } from "../../process/identity.js";
import { findLegacyProcesses, listScreens, quitScreen, stopLegacyProcess, type ScreenQuitOutcome } from "../../process/legacy.js";
import { liveStateWriter } from "../../reconcile/orphans.js";
import type { Command } from "../command.js";
import { configFor } from "../context.js";
import { liveDaemon, type LiveDaemon } from "../live-daemon.js";
import { green, printError, printJson, red, usageError, yellow } from "../output.js";
import { displaySafe } from "../terminal-text.js";
import { recover, renderRecover, type RecoverDocument } from "./recover.js";

export type ScreenReportOutcome = ScreenQuitOutcome | "would-quit" | "not-running" | "protected";
export type ProcessReportOutcome = GroupStopOutcome | "would-stop" | "error";

export interface LegacyReport {
  /** Why legacy processes were left alone (an active release), or null. */
  skipped: string | null;
  /** false: `screen` is not installed, so configured screens were not looked for. */
  screenInstalled: boolean | null;
  screens: { name: string; id: string | null; pid: number | null; outcome: ScreenReportOutcome }[];
  processes: { name: string; pid: number; pgid: number; program: string; wholeGroup: boolean; outcome: ProcessReportOutcome; ms: number; message?: string }[];
}

export const predeployCleanupCommand: Command = {
  name: "predeploy-cleanup",
  summary: "stop orphans of a crashed daemon, then legacyTakeover processes while no release is active",
  usage: "rollbridge predeploy-cleanup --release-path P [--dry-run] [--json]",
  example: "rollbridge predeploy-cleanup --config /etc/rollbridge/app.yaml --release-path /srv/app/releases/20261123120000",
  options: {
    "release-path": { type: "string", description: "the release about to be deployed (must exist)", valueName: "P" },
    "dry-run": { type: "boolean", description: "only report what would be stopped" },
  },
  async run(ctx) {
    const given = ctx.values["release-path"];
    if (typeof given !== "string" || given === "") {
      return printError(ctx, usageError("--release-path is required", "pass the release you are about to deploy: --release-path /srv/app/releases/<id>"), 2);
    }
    try {
      const loaded = await configFor(ctx);
      const config = loaded.config;
      const releasePath = path.resolve(ctx.cwd, given);
      const stat = await fs.stat(releasePath).catch(() => null);
      if (!stat?.isDirectory()) {
        throw new RollbridgeError("USAGE", `release path ${releasePath} is not a directory`, { fix: "unpack the release first, then run predeploy-cleanup with its path" });
      }
      const dryRun = Boolean(ctx.values["dry-run"]);
      const daemon = await liveDaemon(config);
      const orphans = await recover(config, !dryRun, daemon);
      const legacy = await takeOver(
        config,
        daemon,
        dryRun,
        orphans.records.flatMap((o) => [o.pid, o.pgid]),
      );
      const ok = orphans.ok && legacyOk(legacy);
      const document = { releasePath, dryRun, daemon: daemon ? { pid: daemon.pid, activeReleaseId: daemon.activeReleaseId } : null, orphans: orphans.document, legacy };
      if (ctx.json) printJson(ctx, { ok, ...document });
      else ctx.stdout(render(displaySafe(document), loaded.path));
      return ok ? 0 : 1;
    } catch (error) {
      return printError(ctx, error, 1);
    }
  },
};

/** Stops (or, dry, lists) the configured screens, then the matching processes. */
async function takeOver(config: Config, daemon: LiveDaemon | null, dryRun: boolean, orphanPids: number[]): Promise<LegacyReport> {
  const report: LegacyReport = { skipped: null, screenInstalled: null, screens: [], processes: [] };
  const { screens, processes } = config.legacyTakeover;
  if (daemon?.activeReleaseId) {
    report.skipped = `release ${daemon.activeReleaseId} is active under daemon ${daemon.pid}: Rollbridge already serves, legacy processes are left alone`;
    return report;
  }
  // A daemon that wrote the state file and still lives (even if its socket does not answer) is never legacy.
  const writer = await liveStateWriter(config);
  const protectedPids = new Set<number>([...(await selfAndAncestors()), ...(daemon?.managed ?? []), ...orphanPids, ...(writer === null ? [] : [writer])]);
  if (screens.length > 0) {
    const sessions = await listScreens();
    report.screenInstalled = sessions !== null;
    for (const name of screens) {
      const matching = (sessions ?? []).filter((s) => s.name === name);
      if (matching.length === 0) report.screens.push({ name, id: null, pid: null, outcome: "not-running" });
      for (const session of matching) {
        let outcome: ScreenReportOutcome;
        if (protectedPids.has(session.pid)) outcome = "protected";
        else if (dryRun) outcome = "would-quit";
        else outcome = await quitScreen(session);
        report.screens.push({ name, id: session.id, pid: session.pid, outcome });
      }
    }
  }
  // After the screens: what ran inside them is gone by now and is not stopped twice.
  for (const proc of await findLegacyProcesses(processes, protectedPids)) {
    const base = { name: proc.name, pid: proc.pid, pgid: proc.pgid, program: proc.program, wholeGroup: proc.wholeGroup };
    if (dryRun) {
      report.processes.push({ ...base, outcome: "would-stop", ms: 0 });
      continue;
    }
    try {
      const result = await stopLegacyProcess(proc, config.proxy.forceStopTimeoutMs);
      report.processes.push({ ...base, outcome: result.outcome, ms: result.ms });
    } catch (error) {
      report.processes.push({ ...base, outcome: "error", ms: 0, message: (error as Error).message });
    }
  }
  return report;
}

function legacyOk(report: LegacyReport): boolean {
  return report.screens.every((s) => s.outcome !== "failed") && report.processes.every((p) => p.outcome !== "survived" && p.outcome !== "error");
}

function render(doc: { releasePath: string; dryRun: boolean; orphans: RecoverDocument; legacy: LegacyReport }, configPath: string): string {
  let out = `predeploy cleanup for ${doc.releasePath}${doc.dryRun ? " (dry run: nothing is stopped)" : ""}\n\n`;
  out += "orphans:\n" + indent(renderRecover(doc.orphans, configPath)) + "\nlegacy processes:\n";
  const legacy = doc.legacy;
  if (legacy.skipped) return out + `  ${legacy.skipped}\n`;
  if (legacy.screenInstalled === false) out += `  ${yellow("screen is not installed")}: the configured screen sessions were not looked for\n`;
  for (const s of legacy.screens) {
    const what = s.id ? `screen session ${s.id}` : `screen session "${s.name}"`;
    out += `  ${mark(s.outcome !== "failed")} ${what}: ${screenText(s.outcome)}\n`;
  }
  for (const p of legacy.processes) {
    const what = `${p.name}: ${p.program} pid ${p.pid}${p.wholeGroup ? ` (group ${p.pgid})` : ""}`;
    out += `  ${mark(p.outcome !== "survived" && p.outcome !== "error")} ${what}: ${processText(p.outcome, p.ms)}${p.message ? ` (${p.message})` : ""}\n`;
  }
  if (legacy.screens.length === 0 && legacy.processes.length === 0) out += "  none running\n";
  return out;
}

function mark(ok: boolean): string {
  return ok ? green("✓") : red("✗");
}

function indent(text: string): string {
  return text
    .split("\n")
    .map((line) => (line ? `  ${line}` : line))
    .join("\n");
}

function screenText(outcome: ScreenReportOutcome): string {
  switch (outcome) {
    case "quit":
      return "quit";
    case "gone":
      return "already gone";
    case "failed":
      return "still running after screen -X quit";
    case "would-quit":
      return "would be quit";
    case "not-running":
      return "not running";
    case "protected":
      return "left alone: this command runs inside it";
    default: {
      const _exhaustive: never = outcome;
      return _exhaustive;
    }
  }
}

function processText(outcome: ProcessReportOutcome, ms: number): string {
  switch (outcome) {
    case "exited":
      return `stopped (SIGTERM, ${ms} ms)`;
    case "killed":
      return `SIGKILLed after the grace period (${ms} ms)`;
    case "gone":
      return "already gone";
    case "changed":
      return "its pid was reused meanwhile: left alone";
    case "other-user":
      return "it runs as another user than the one configured: left alone";
    case "survived":
      return "still alive after SIGKILL";
    case "would-stop":
      return "would be stopped";
    case "error":
      return "could not be stopped";
    default: {
      const _exhaustive: never = outcome;
      return _exhaustive;
    }
  }
}
