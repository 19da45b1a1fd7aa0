// What every CLI command looks like: its flags (for parsing, --help and completion) and run().
import type { ParseArgsConfig } from "node:util";

export type OptionSpec = NonNullable<ParseArgsConfig["options"]>[string] & {
  description: string;
  valueName?: string;
  /** Values shell completion asks the running daemon for (`rollbridge __complete <kind>`). */
  complete?: DynamicValues;
};

/** What a flag's value names, for completion: a process (web, worker#0) or a retained release. */
export type DynamicValues = "processes" | "releases";

export interface CommandContext {
  /** Parsed flags of this command (plus the global ones). */
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  json: boolean;
  cwd: string;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  example: string;
  options: Record<string, OptionSpec>;
  /** Positional arguments the command takes (most take none), e.g. `completion bash`. */
  positional?: { name: string; choices: string[] };
  /** Returns the exit code. */
  run(ctx: CommandContext): Promise<number>;
}

export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  config: { type: "string", short: "c", description: "config file (default: rollbridge.yaml|.yml|.json|.js|.mjs|.cjs in the current directory)", valueName: "PATH" },
  json: { type: "boolean", description: "print one machine-readable JSON document on stdout" },
  help: { type: "boolean", short: "h", description: "show help for this command" },
};
