// `rollbridge help [COMMAND]`: the help of the CLI, or of one command (as `COMMAND --help`).
import type { Command } from "../command.js";
import { commandHelp, mainHelp } from "../help.js";
import { printError, printJson, usageError } from "../output.js";
import { COMMANDS } from "./index.js";

export const helpCommand: Command = {
  name: "help",
  summary: "show the help of the CLI, or of one command",
  usage: "rollbridge help [COMMAND]",
  example: "rollbridge help deploy",
  options: {},
  // A getter: COMMANDS is not yet defined while the command table's modules load.
  positional: {
    name: "command",
    get choices() {
      return COMMANDS.map((c) => c.name);
    },
  },
  run(ctx) {
    const name = ctx.positionals[0];
    if (name === undefined) {
      const text = mainHelp(COMMANDS);
      if (ctx.json) printJson(ctx, { command: null, help: text });
      else ctx.stdout(text);
      return Promise.resolve(0);
    }
    const command = COMMANDS.find((c) => c.name === name);
    if (!command) {
      const close = COMMANDS.map((c) => c.name).filter((n) => n.startsWith(name.slice(0, 2)));
      return Promise.resolve(printError(ctx, usageError(`unknown command "${name}"`, close.length ? `did you mean ${close.join(" or ")}? (rollbridge help lists all)` : "rollbridge help lists the commands"), 2));
    }
    const text = commandHelp(command);
    if (ctx.json) printJson(ctx, { command: command.name, help: text });
    else ctx.stdout(text);
    return Promise.resolve(0);
  },
};
