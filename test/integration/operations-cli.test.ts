// The CLI surface without a daemon: --help on every command, a clear error naming the socket
// when no daemon answers, and shell completion generated from the command table.
import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, runCli } from "../helpers/daemon.js";

let dir: string;
let configPath: string;
let socket: string;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "rb-cli-"));
  socket = path.join(dir, "nobody.sock");
  configPath = path.join(dir, "rollbridge.yaml");
  await fs.writeFile(configPath, `application: cli-test\ncontrol: {path: ${socket}}\nprocesses:\n  - id: web\n    policy: proxied\n    command: node app.js\n    port: {from: 41000, to: 41010}\n`);
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const ALL = ["validate", "doctor", "daemon", "ensure-daemon", "apply", "diff", "deploy", "status", "logs", "events", "rollback", "stop", "restart", "shutdown", "completion", "help"];

// Commands that need a daemon, with the arguments that make them reach for it.
const NEEDS_DAEMON: [string[], number][] = [
  [["status"], 1],
  [["logs"], 1],
  [["logs", "--follow"], 1],
  [["events"], 1],
  [["events", "--follow"], 1],
  [["rollback"], 1],
  [["restart"], 1],
  [["stop"], 1],
  [["shutdown"], 1],
  [["apply", "--release-path", "."], 1],
  [["deploy", "--release-path", "."], 1],
  [["diff", "--release-path", "."], 2],
];

describe("every command", () => {
  it("prints its usage, flags and an example for --help and exits 0", async () => {
    const main = await runCli(["--help"]);
    for (const name of ALL) expect(main.stdout).toContain(`  ${name} `);
    for (const name of ALL) {
      const r = await runCli([name, "--help"]);
      expect(r.code, name).toBe(0);
      expect(r.stdout).toContain(`Usage: rollbridge ${name}`);
      expect(r.stdout).toContain("--json");
      expect(r.stdout).toContain("Example:");
    }
  });

  it("names the socket it tried and exits non-zero when no daemon answers", async () => {
    for (const [args, code] of NEEDS_DAEMON) {
      const human = await runCli([...args, "--config", configPath], { cwd: dir });
      expect(human.code, args.join(" ")).toBe(code);
      expect(human.stderr).toContain(`no daemon answers on ${socket}`);
      expect(human.stderr).toContain("ensure-daemon");
      const json = await runCli([...args, "--config", configPath, "--json"], { cwd: dir });
      expect(json.code, args.join(" ")).toBe(code);
      if (args.includes("--follow")) continue; // a follow stream prints JSON lines, errors on stderr
      const doc = JSON.parse(json.stdout);
      expect(doc).toMatchObject({ ok: false, error: { code: "DAEMON_NOT_RUNNING" } });
      expect(doc.error.message).toContain(socket);
    }
  });

  it("prints a command's help for `rollbridge help COMMAND`, the same as `COMMAND --help`", async () => {
    for (const name of ["deploy", "logs", "help"]) {
      const help = await runCli(["help", name]);
      expect(help.code, name).toBe(0);
      expect(help.stdout).toBe((await runCli([name, "--help"])).stdout);
      expect(help.stdout).toContain(`Usage: rollbridge ${name}`);
    }
    const all = await runCli(["help"]);
    expect(all.code).toBe(0);
    expect(all.stdout).toBe((await runCli(["--help"])).stdout);
    const unknown = await runCli(["help", "deplyo"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "deplyo"');
    expect(unknown.stderr).toContain("did you mean deploy?");
  });

  it("rejects an unknown flag with exit 2", async () => {
    const r = await runCli(["restart", "--bogus", "--config", configPath], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bogus/);
  });
});

describe("validate", () => {
  const web = (line: string) => `processes:\n  - id: web\n    policy: proxied\n${line}\n    command: node app.js\n    port: {from: 41000, to: 41010}\n`;

  it("points a YAML syntax mistake at its line and column, with the fix", async () => {
    const file = path.join(dir, "syntax.yaml");
    await fs.writeFile(file, web("    cwd: {{releasePath}}/app"));
    const r = await runCli(["validate", "--config", file], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${file}:4:10: the value of cwd starts with {{releasePath}}`);
    expect(r.stderr).toContain('fix: Quote the whole value: cwd: "{{releasePath}}/app".');
    await fs.writeFile(file, web('    cwd: "{{releasePath}}/app\n    stopSignal: SIGINT'));
    const quote = await runCli(["validate", "--config", file, "--json"], { cwd: dir });
    expect(quote.code).toBe(1);
    const doc = JSON.parse(quote.stdout);
    expect(doc.error.code).toBe("CONFIG_LOAD_FAILED");
    expect(doc.error.message).toContain(`${file}:4:10: the double quote opened here is never closed`);
  });

  it("says to quote a value that YAML read as a mapping, and still lists every other problem", async () => {
    const file = path.join(dir, "mapping.yaml");
    await fs.writeFile(file, web("    env: {PORT: {{port}}}\n    stopSignl: SIGINT"));
    const r = await runCli(["validate", "--config", file], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Found 2 configuration issues");
    expect(r.stderr).toContain("processes[web].env.PORT is an unquoted {{port}}");
    expect(r.stderr).toContain('Fix: Quote the value: PORT: "{{port}}".');
    expect(r.stderr).not.toContain("must be a string");
    const json = JSON.parse((await runCli(["validate", "--config", file, "--json"], { cwd: dir })).stdout);
    expect(json.issues.map((i: { path: string }) => i.path)).toEqual(["processes[web].env.PORT", "processes[web].stopSignl"]);
    await fs.writeFile(file, web('    env: {PORT: "{{port}}"}'));
    expect((await runCli(["validate", "--config", file], { cwd: dir })).code).toBe(0);
  });
});

function bashComplete(words: string[]): Promise<string[]> {
  const script = `source <("${process.execPath}" "${CLI}" completion bash); COMP_WORDS=(${words.map((w) => `"${w}"`).join(" ")}); COMP_CWORD=${words.length - 1}; _rollbridge; echo "\${COMPREPLY[@]}"`;
  return new Promise((resolve, reject) => {
    execFile("bash", ["-c", script], { timeout: 20_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${error.message}\n${stderr}`));
      else resolve(stdout.trim().split(/\s+/).filter(Boolean));
    });
  });
}

describe("completion", () => {
  it("completes command names, flags and flag values in bash", async () => {
    expect(await bashComplete(["rollbridge", "ap"])).toEqual(["apply"]);
    expect(await bashComplete(["rollbridge", "rol"])).toEqual(["rollback"]);
    expect(await bashComplete(["rollbridge", "r"])).toEqual(expect.arrayContaining(["rollback", "restart"]));
    expect(await bashComplete(["rollbridge", "restart", "--pol"])).toEqual(["--policy"]);
    expect(await bashComplete(["rollbridge", "restart", "--policy", "c"])).toEqual(["companion"]);
    expect(await bashComplete(["rollbridge", "deploy", "--ensure"])).toEqual(["--ensure-daemon"]);
    expect(await bashComplete(["rollbridge", "completion", ""])).toEqual(expect.arrayContaining(["bash", "zsh"]));
    // Every flag of every command is offered.
    expect(await bashComplete(["rollbridge", "logs", "--"])).toEqual(expect.arrayContaining(["--process", "--follow", "--config", "--json", "--help"]));
  });

  it("prints zsh and fish scripts naming every command, and refuses an unknown shell", async () => {
    const fish = await runCli(["completion", "fish"]);
    expect(fish.code).toBe(0);
    for (const name of ALL) expect(fish.stdout).toContain(`-n __fish_use_subcommand -a ${name} -d `);
    const zsh = await runCli(["completion", "zsh"]);
    expect(zsh.code).toBe(0);
    expect(zsh.stdout).toMatch(/^#compdef rollbridge/);
    for (const name of ALL) expect(zsh.stdout).toContain(`'${name}:`);
    expect(zsh.stdout).toContain("compdef _rollbridge rollbridge");
    const bad = await runCli(["completion", "tcsh"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("bash, zsh, fish");
  });
});
