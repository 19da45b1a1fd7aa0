// Every usage line (the first thing `--help` and `rollbridge help COMMAND` show) lists every
// flag the command takes, and names no flag it does not take.
import { describe, expect, it } from "vitest";
import { GLOBAL_OPTIONS, type Command } from "../../src/cli/command.js";
import { COMMANDS } from "../../src/cli/commands/index.js";

/** The flags a usage line mentions: `--release-path`, `-f` (not the `-` of `-f FILE|-`). */
function flagsIn(usage: string): string[] {
  return [...usage.matchAll(/(?<![\w-])(--?[a-z][a-z0-9-]*)/g)].map((m) => m[1]!);
}

function missingFromUsage(c: Command): string[] {
  const mentioned = new Set(flagsIn(c.usage));
  return Object.entries(c.options)
    .filter(([name, spec]) => !mentioned.has(`--${name}`) && !(spec.short !== undefined && mentioned.has(`-${spec.short}`)))
    .map(([name]) => `--${name}`);
}

function unknownInUsage(c: Command): string[] {
  const known = new Set<string>();
  for (const [name, spec] of Object.entries({ ...GLOBAL_OPTIONS, ...c.options })) {
    known.add(`--${name}`);
    if (spec.short) known.add(`-${spec.short}`);
  }
  return flagsIn(c.usage).filter((flag) => !known.has(flag));
}

describe("usage lines", () => {
  it.each(COMMANDS.map((c) => [c.name, c] as const))("%s lists every flag it takes and only those", (_name, command) => {
    expect(missingFromUsage(command)).toEqual([]);
    expect(unknownInUsage(command)).toEqual([]);
    for (const choice of command.positional?.choices ?? []) if (command.name !== "help") expect(command.usage).toContain(choice);
  });

  it("would notice a flag left out, or one that does not exist", () => {
    const c: Command = { name: "x", summary: "s", usage: "rollbridge x [--bogus]", example: "rollbridge x", options: { wait: { type: "boolean", description: "d" } }, run: () => Promise.resolve(0) };
    expect(missingFromUsage(c)).toEqual(["--wait"]);
    expect(unknownInUsage(c)).toEqual(["--bogus"]);
    expect(flagsIn("rollbridge apply [-f FILE|-] [--replicas id=N]...")).toEqual(["-f", "--replicas"]);
  });
});

describe("the lazy command registry", () => {
  it("names every command of the help list, in its order, and each loader returns that command", async () => {
    const { COMMAND_LOADERS } = await import("../../src/cli/commands/registry.js");
    expect(Object.keys(COMMAND_LOADERS)).toEqual(COMMANDS.map((c) => c.name));
    for (const [name, load] of Object.entries(COMMAND_LOADERS)) expect(await load()).toBe(COMMANDS.find((c) => c.name === name));
  });
});
