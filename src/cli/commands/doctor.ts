// `rollbridge doctor`: validate the config, then probe the machine: a green doctor means a
// fresh daemon can start here now, or, beside a running daemon, that it answers and is
// healthy (the fresh-start checks then say "skipped: daemon running"). Exit 1 when any check fails.
import { validateConfig } from "../../config/issues.js";
import { findConfigPath, loadRawConfig } from "../../config/load.js";
import { proxyListenersText } from "../../config/resolved-config.js";
import { errorMessage, isRollbridgeError } from "../../errors.js";
import type { Command } from "../command.js";
import { checkNode, environmentChecks, type DoctorCheck } from "../doctor-checks.js";
import { dim, green, printJson, red, yellow } from "../output.js";

export const doctorCommand: Command = {
  name: "doctor",
  summary: "check the config and the environment (socket, ports, desired file, orphans)",
  usage: "rollbridge doctor [--config PATH] [--json]",
  example: "rollbridge doctor --config /etc/rollbridge/app.yaml",
  options: {},
  async run(ctx) {
    const checks: DoctorCheck[] = [];
    let file: string | undefined;
    try {
      file = findConfigPath(ctx.values.config as string | undefined, ctx.cwd);
      const result = validateConfig(await loadRawConfig(file), { configPath: file });
      if (result.ok) {
        const c = result.config;
        checks.push({ name: "config", ok: true, message: `valid: ${c.processes.length} process${c.processes.length === 1 ? "" : "es"}, proxy on ${proxyListenersText(c.proxy)} (${file})` });
        checks.push(checkNode());
        checks.push(...(await environmentChecks(c)));
      } else {
        const first = result.issues[0];
        checks.push({
          name: "config",
          ok: false,
          message: `${result.issues.length} problem${result.issues.length === 1 ? "" : "s"} in ${file}${first ? `, first: ${first.path ? `${first.path}: ` : ""}${first.message}` : ""}`,
          fix: `rollbridge validate --config ${file} lists every problem with its fix`,
        });
        checks.push(checkNode());
      }
    } catch (error) {
      checks.push({ name: "config", ok: false, message: errorMessage(error), fix: (isRollbridgeError(error) && error.fix) || "pass --config PATH" });
      checks.push(checkNode());
    }
    const failed = checks.filter((c) => !c.ok);
    if (ctx.json) printJson(ctx, { ok: failed.length === 0, file: file ?? null, checks });
    else {
      for (const c of checks) {
        ctx.stdout(`${c.skipped ? dim("-") : c.ok ? green("✓") : red("✗")} ${c.name}: ${c.message}\n`);
        if (!c.ok && c.fix) ctx.stdout(`    fix: ${c.fix}\n`);
        if (c.warning) ctx.stdout(`    ${yellow("warning")}: ${c.warning}\n`);
      }
      const skips = checks.filter((c) => c.skipped).length;
      const warned = checks.filter((c) => c.ok && c.warning).length;
      const note = [skips ? `${skips} skipped: a daemon is running` : "", warned ? `${warned} with a warning` : ""].filter(Boolean).join("; ");
      const notes = note ? ` (${note})` : "";
      ctx.stdout(failed.length === 0 ? `\nAll checks passed${notes}.\n` : `\n${failed.length} of ${checks.length} checks failed${notes}.\n`);
    }
    return failed.length === 0 ? 0 : 1;
  },
};
