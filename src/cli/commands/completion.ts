// `rollbridge completion bash|zsh|fish`: print a shell completion script for every command and flag.
import type { Command } from "../command.js";
import { SHELLS, completionScript, type Shell } from "../completion-scripts.js";
import { printError, printJson, usageError } from "../output.js";
import { COMMANDS } from "./index.js";

export const completionCommand: Command = {
  name: "completion",
  summary: "print a shell completion script (bash, zsh or fish)",
  usage: "rollbridge completion bash|zsh|fish",
  example: "source <(rollbridge completion bash)   # in ~/.bashrc",
  options: {},
  positional: { name: "shell", choices: SHELLS },
  run(ctx) {
    const shell = ctx.positionals[0];
    if (shell === undefined || !SHELLS.includes(shell as Shell)) {
      return Promise.resolve(printError(ctx, usageError(shell === undefined ? "completion needs a shell" : `unknown shell "${shell}"`, `use one of: ${SHELLS.join(", ")} (rollbridge completion bash)`), 2));
    }
    const script = completionScript(shell as Shell, COMMANDS);
    if (ctx.json) printJson(ctx, { shell, script });
    else ctx.stdout(script);
    return Promise.resolve(0);
  },
};
