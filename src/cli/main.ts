#!/usr/bin/env node
// The `rollbridge` CLI: parses the command line and runs one command.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { GLOBAL_OPTIONS, type CommandContext } from "./command.js";
import { COMMAND_LOADERS } from "./commands/registry.js";
import { commandHelp, mainHelp } from "./help.js";
import { printError, usageError } from "./output.js";

/** The hidden command shell completion calls on every Tab: it loads only what it needs. */
const COMPLETE_COMMAND = "__complete";

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

export async function main(argv: string[]): Promise<number> {
  const stdout = (t: string) => void process.stdout.write(t);
  const stderr = (t: string) => void process.stderr.write(t);
  const [name, ...rest] = argv;
  if (name === COMPLETE_COMMAND) return (await import("./complete-ids.js")).completeIds(rest, process.cwd(), stdout);
  if (name === "--version" || name === "-v" || name === "version") {
    stdout(`${version()}\n`);
    return 0;
  }
  if (name === undefined || name === "--help" || name === "-h") {
    const { COMMANDS } = await import("./commands/index.js");
    stdout(mainHelp(COMMANDS));
    return name === undefined ? 2 : 0;
  }
  // Node 22.1+: the modules loaded from here on come from the compile cache (compile-cache.ts).
  (await import("./compile-cache.js")).enableCompileCache();
  // Only the named command's module: each loads what it needs (status neither YAML nor zod).
  const load = Object.hasOwn(COMMAND_LOADERS, name) ? COMMAND_LOADERS[name] : undefined;
  const command = load === undefined ? undefined : await load();
  const baseCtx: CommandContext = { values: {}, positionals: [], json: rest.includes("--json"), cwd: process.cwd(), stdout, stderr };
  if (!command) {
    const close = Object.keys(COMMAND_LOADERS).filter((n) => n.startsWith(name.slice(0, 2)));
    return printError(baseCtx, usageError(`unknown command "${name}"`, close.length ? `did you mean ${close.join(" or ")}? (rollbridge help lists all)` : "rollbridge help lists the commands"), 2);
  }
  let parsed;
  try {
    const options = Object.fromEntries(
      Object.entries({ ...GLOBAL_OPTIONS, ...command.options }).map(([k, v]) => {
        const { description: _d, valueName: _v, complete: _c, ...rest } = v;
        return [k, rest];
      }),
    );
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  } catch (error) {
    return printError(baseCtx, usageError((error as Error).message.replace(/\. To specify.*$/s, ""), `rollbridge ${name} --help shows its flags`), 2);
  }
  if (parsed.values.help) {
    stdout(commandHelp(command));
    return 0;
  }
  if (parsed.positionals.length > (command.positional ? 1 : 0)) {
    return printError(baseCtx, usageError(`unexpected argument "${parsed.positionals[0]}"`, `rollbridge ${name} --help shows its flags`), 2);
  }
  const ctx: CommandContext = { ...baseCtx, values: parsed.values as CommandContext["values"], positionals: parsed.positionals, json: Boolean(parsed.values.json) };
  // Human output never prints the daemon's strings raw: ids and messages could drive the terminal.
  if (!ctx.json) {
    const [{ filterReceived }, { displaySafe }] = await Promise.all([import("../control/client.js"), import("./terminal-text.js")]);
    filterReceived(displaySafe);
  }
  return command.run(ctx);
}

/**
 * Exit status when the reader of stdout or stderr goes away (`rollbridge events | head -1`):
 * 128 + SIGPIPE, what the shell reports for cat, git or grep cut off the same way. The CLI
 * exits at once and quietly: no stack trace, no EPIPE message.
 */
export const EXIT_OUTPUT_CLOSED = 141;

for (const output of [process.stdout, process.stderr]) {
  output.on("error", (error: NodeJS.ErrnoException) => {
    // Nothing can be reported on a stream that is gone; any other write error ends the CLI as a failure.
    process.exit(error.code === "EPIPE" ? EXIT_OUTPUT_CLOSED : 1);
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`rollbridge: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
