// The text of `rollbridge --help`, `rollbridge help COMMAND` and `rollbridge COMMAND --help`,
// generated from the command table so it always lists every command and flag.
import { GLOBAL_OPTIONS, type Command, type OptionSpec } from "./command.js";

/** The help of the CLI: every command with its summary, and the global flags. */
export function mainHelp(commands: readonly Command[]): string {
  let out = "rollbridge: zero-downtime deploys on one host\n\nUsage: rollbridge <command> [flags]\n\nCommands:\n";
  for (const c of commands) out += `  ${c.name.padEnd(18)} ${c.summary}\n`;
  out += "\nGlobal flags:\n";
  for (const [name, spec] of Object.entries(GLOBAL_OPTIONS)) out += optionLine(name, spec);
  out += "  -v, --version                  print the version\n";
  out += "\nRun `rollbridge help <command>` (or `rollbridge <command> --help`) for a command's flags and an example.\n";
  return out;
}

/** The help of one command: usage, its flags, the global flags, an example. */
export function commandHelp(c: Command): string {
  let out = `rollbridge ${c.name}: ${c.summary}\n\nUsage: ${c.usage}\n`;
  const own = Object.entries(c.options);
  if (own.length) {
    out += "\nFlags:\n";
    for (const [name, spec] of own) out += optionLine(name, spec);
  }
  out += "\nGlobal flags:\n";
  for (const [name, spec] of Object.entries(GLOBAL_OPTIONS)) out += optionLine(name, spec);
  out += `\nExample:\n  ${c.example}\n`;
  return out;
}

function optionLine(name: string, spec: OptionSpec): string {
  const flag = `${spec.short ? `-${spec.short}, ` : "    "}--${name}${spec.type === "string" ? ` ${spec.valueName ?? "VALUE"}` : ""}`;
  return `  ${flag.padEnd(30)} ${spec.description}\n`;
}
