// Shell completion as a shell runs it: bash, zsh and fish scripts generated from the command
// table, and process and release ids completed from the running daemon through the hidden
// `rollbridge __complete` command, which stays quiet and bounded when no daemon answers.
import { execFile } from "node:child_process";
import { existsSync, promises as fs } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, runCli, startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { WEB_AND_WORKERS, deploy } from "../helpers/operations.js";

let daemon: TestDaemon;
/** A directory with a `rollbridge` wrapper, first on PATH: the scripts call the binary by the name typed. */
let bin: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  bin = await fs.mkdtemp(path.join(os.tmpdir(), "rb-complete-bin-"));
  await fs.writeFile(path.join(bin, "rollbridge"), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`, { mode: 0o755 });
  env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}` };
  daemon = await startDaemon({ processes: WEB_AND_WORKERS, proxy: { drainTimeoutMs: 500 } });
  for (const release of ["v1", "v2"]) {
    const r = await deploy(daemon, release);
    expect(r.code, r.stderr).toBe(0);
  }
}, 60_000);
afterAll(async () => {
  await daemon?.stop();
  if (bin) await fs.rm(bin, { recursive: true, force: true });
});

function shell(command: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(command, args, { env, timeout: 30_000, cwd: daemon.dir }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

async function bashComplete(words: string[]): Promise<string[]> {
  const script = `source <(rollbridge completion bash); COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _rollbridge; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = await shell("bash", ["-c", script]);
  expect(r.stderr).toBe("");
  return r.stdout.split("\n").filter(Boolean).sort();
}

/** A test that needs `tool`; skipped, saying why, where it is not installed. */
function withShell(tool: string, name: string, fn: () => Promise<void>): void {
  if (["/usr/bin", "/bin", "/usr/local/bin"].some((dir) => existsSync(path.join(dir, tool)))) {
    it(name, fn, 60_000);
    return;
  }
  const why = `${tool} is not installed (.ci/run installs it with apt-get)`;
  console.warn(`completion test skipped: ${why}`);
  it.skip(`${name} (skipped: ${why})`, () => undefined);
}

describe("__complete", () => {
  it("prints the process ids of the config and the running instances, one per line", async () => {
    const r = await runCli(["__complete", "processes", "--config", daemon.configPath]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout.split("\n").filter(Boolean).sort()).toEqual(["web", "worker", "worker#0", "worker#1"]);
  });

  it("prints the retained releases a rollback can go to (not the active one)", async () => {
    const r = await runCli(["__complete", "releases", "--config", daemon.configPath]);
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n").filter(Boolean)).toEqual(["v1"]);
  });

  it("is quiet without a daemon, and bounded when the socket never answers", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "rb-complete-"));
    const socket = path.join(dir, "hang.sock");
    const config = path.join(dir, "rollbridge.yaml");
    await fs.writeFile(config, `control: {path: ${socket}}\nprocesses:\n  - {id: api, policy: proxied, command: node a.js, port: {from: 41000, to: 41010}}\n`);
    try {
      const none = await runCli(["__complete", "processes", "--config", config]);
      expect(none).toEqual({ code: 0, stdout: "api\n", stderr: "" });
      expect(await runCli(["__complete", "releases", "--config", config])).toEqual({ code: 0, stdout: "", stderr: "" });
      // Accepts connections, never answers: completion gives up on it and still offers the config's ids.
      const sockets: net.Socket[] = [];
      const server = net.createServer((s) => void sockets.push(s));
      await new Promise<void>((resolve) => server.listen(socket, resolve));
      try {
        const hung = await runCli(["__complete", "processes", "--config", config], { timeoutMs: 15_000 });
        expect(hung).toEqual({ code: 0, stdout: "api\n", stderr: "" });
      } finally {
        for (const s of sockets) s.destroy();
        await new Promise((resolve) => server.close(resolve));
      }
      const broken = await runCli(["__complete", "processes", "--config", path.join(dir, "missing.yaml")]);
      expect(broken.stdout + broken.stderr).toBe("");
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }, 40_000);
});

describe("bash", () => {
  it("completes --process and --release-id from the daemon the --config on the line names", async () => {
    expect(await bashComplete(["rollbridge", "logs", "--config", daemon.configPath, "--process", ""])).toEqual(["web", "worker", "worker#0", "worker#1"]);
    expect(await bashComplete(["rollbridge", "restart", "--config", daemon.configPath, "-p", "worker#"])).toEqual(["worker#0", "worker#1"]);
    expect(await bashComplete(["rollbridge", "rollback", `--config=${daemon.configPath}`, "--release-id", ""])).toEqual(["v1"]);
    expect(await bashComplete(["rollbridge", "help", "dep"])).toEqual(["deploy"]);
    expect(await bashComplete(["rollbridge", "completion", ""])).toEqual(expect.arrayContaining(["bash", "fish", "zsh"]));
  });
});

describe("zsh", () => {
  withShell("zsh", "loads, and its id helper asks the daemon for the --config on the line", async () => {
    // compadd is zsh's completion builtin; outside a completion widget it is stubbed to print what it is given.
    const script = `source <(rollbridge completion zsh)
compadd() { [[ $1 == -a ]] && print -l \${(P)2} }
words=(logs --config '${daemon.configPath}' --process '')
_rollbridge_bin=rollbridge
_rollbridge_ids processes
words=(rollback --release-id '')
_rollbridge_ids releases
print done`;
    const r = await shell("zsh", ["-f", "-c", script]);
    expect(r.stderr).toBe("");
    const lines = r.stdout.split("\n").filter(Boolean);
    expect(lines.slice(0, 4).sort()).toEqual(["web", "worker", "worker#0", "worker#1"]);
    // Without --config the helper asks the config of the current directory (the daemon's dir here).
    expect(lines.slice(4)).toEqual(["v1", "done"]);
    expect((await shell("zsh", ["-n", "-c", (await runCli(["completion", "zsh"])).stdout])).code).toBe(0);
  });
});

describe("fish", () => {
  withShell("fish", "completes commands, flags, and ids from the daemon", async () => {
    const file = path.join(bin, "rollbridge.fish");
    await fs.writeFile(file, (await runCli(["completion", "fish"])).stdout);
    const complete = async (line: string) => {
      const r = await shell("fish", ["--no-config", "-c", `source '${file}'; complete -C '${line}'`]);
      expect(r.stderr).toBe("");
      return r.stdout
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split("\t")[0]!)
        .sort();
    };
    expect(await complete("rollbridge rol")).toEqual(["rollback"]);
    expect(await complete("rollbridge deploy --ensure")).toEqual(["--ensure-daemon"]);
    expect(await complete("rollbridge restart --policy c")).toEqual(["companion"]);
    expect(await complete("rollbridge completion ")).toEqual(["bash", "fish", "zsh"]);
    expect(await complete("rollbridge logs --")).toEqual(expect.arrayContaining(["--process", "--follow", "--config", "--json", "--help"]));
    expect(await complete(`rollbridge logs --config ${daemon.configPath} --process `)).toEqual(["web", "worker", "worker#0", "worker#1"]);
    expect(await complete(`rollbridge rollback -c ${daemon.configPath} --release-id `)).toEqual(["v1"]);
  });
});
