// `rollbridge validate`: every config problem at once, each with a fix; exit 1 on problems.
import path from "node:path";
import { formatIssues, validateConfig } from "../../config/issues.js";
import { findConfigPath, loadRawConfig } from "../../config/load.js";
import { proxyListenersText } from "../../config/resolved-config.js";
import type { Command } from "../command.js";
import { green, printError, printJson } from "../output.js";

export const validateCommand: Command = {
  name: "validate",
  summary: "check the config and report every problem at once, each with a fix",
  usage: "rollbridge validate [--config PATH] [--json]",
  example: "rollbridge validate --config /etc/rollbridge/app.yaml",
  options: {},
  async run(ctx) {
    let file: string;
    let raw: unknown;
    try {
      file = findConfigPath(ctx.values.config as string | undefined, ctx.cwd);
      raw = await loadRawConfig(file);
    } catch (error) {
      return printError(ctx, error, 1);
    }
    const result = validateConfig(raw, { configPath: file });
    if (result.ok) {
      const c = result.config;
      const summary = `valid: ${c.processes.length} process${c.processes.length === 1 ? "" : "es"}, proxy on ${proxyListenersText(c.proxy)}, desired file ${c.desiredPath}`;
      if (ctx.json) printJson(ctx, { ok: true, file, issues: [], summary, application: c.application });
      else ctx.stdout(`${green("✓")} ${path.relative(ctx.cwd, file) || file}: ${summary}\n`);
      return 0;
    }
    if (ctx.json) printJson(ctx, { ok: false, file, issues: result.issues });
    else ctx.stderr(formatIssues(path.relative(ctx.cwd, file) || file, result.issues) + "\n");
    return 1;
  },
};
