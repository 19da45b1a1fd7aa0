// The environment ensure-daemon gives the daemon it starts: the least that works, not the deploy
// shell's whole environment (CI tokens, cloud credentials, SSH agent sockets), because everything
// the daemon has, every process it manages inherits. Kept: PATH, HOME, LANG and LC_*, TZ, the XDG
// directories Rollbridge's own default paths depend on, and every variable the config refers to as
// `{{env.NAME}}`. `--inherit-env` passes everything instead (the old behaviour).
import type { Config } from "../config/resolved-config.js";
import { templateNames } from "../config/template.js";

/** Variables always passed on (when set). */
export const BASE_ENV = ["PATH", "HOME", "LANG", "TZ", "XDG_RUNTIME_DIR", "XDG_STATE_HOME"] as const;

/** The environment for the daemon: the minimal one, or all of `env` with `inherit`. */
export function daemonEnvironment(env: NodeJS.ProcessEnv, config: Config, inherit: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  const wanted = new Set<string>([...BASE_ENV, ...referencedEnv(config)]);
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) continue;
    if (inherit || wanted.has(name) || name.startsWith("LC_")) out[name] = value;
  }
  return out;
}

/** Every NAME of a `{{env.NAME}}` placeholder anywhere in the config (commands, cwd, env values, log paths, hooks). */
export function referencedEnv(config: Config): string[] {
  const names = new Set<string>();
  const visit = (value: unknown): void => {
    if (typeof value === "string") {
      for (const name of templateNames(value)) if (name.startsWith("env.")) names.add(name.slice("env.".length));
    } else if (Array.isArray(value)) value.forEach(visit);
    else if (typeof value === "object" && value !== null) Object.values(value).forEach(visit);
  };
  visit(config.processes);
  return [...names].sort();
}
