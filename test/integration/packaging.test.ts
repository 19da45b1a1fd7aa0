// The package as the README's Install section has a user install it: `npm pack`, then the
// tarball installed globally (into a temp prefix) and into an empty project, and the
// `rollbridge` command run from each. Dependencies come from the npm registry, so the test
// skips (saying why) when the registry cannot be reached.
import { execFile } from "node:child_process";
import { promises as fs, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, ROOT } from "../helpers/daemon.js";

const VERSION = (JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string }).version;
/** What `files` in package.json may ship, besides package.json itself. */
const SHIPPED = [/^dist\/.+\.js$/, /^schemas\/[^/]+\.json$/, /^examples\//, /^docs\/[^/]+\.md$/, /^README\.md$/, /^LICENSE$/, /^package\.json$/];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

// The parent `npm test` exports npm_* settings (prefix, lifecycle); a nested npm must not inherit them.
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith("npm_")));
}

function run(command: string, args: string[], cwd: string, timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env: cleanEnv(), timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === "number" ? (error as { code: number }).code : 1) : 0;
      const killed = error !== null && (error as { killed?: boolean }).killed === true;
      resolve({ code, stdout, stderr: killed ? `${command} ${args[0]} did not finish within ${timeoutMs / 1000} s\n${stderr}` : stderr });
    });
  });
}

async function registryProblem(): Promise<string | null> {
  const ping = await run("npm", ["ping", "--fetch-retries=0", "--fetch-timeout=10000"], os.tmpdir(), 15_000);
  if (ping.code === 0) return null;
  const registry = (await run("npm", ["config", "get", "registry"], os.tmpdir(), 10_000)).stdout.trim() || "the npm registry";
  const reason = ping.stderr.split("\n").find((line) => /\berr|fail|did not finish/i.test(line)) ?? `npm ping exited ${ping.code}`;
  return `${registry} is unreachable (${reason.trim()}); dependencies cannot be installed`;
}

const problem = await registryProblem();
const temps: string[] = [];
afterAll(async () => {
  for (const dir of temps) await fs.rm(dir, { recursive: true, force: true });
});

describe("the npm package", () => {
  if (problem !== null) {
    console.warn(`packaging test skipped: ${problem}`);
    it.skip(`installs from its tarball and runs through npx (skipped: ${problem})`, () => undefined);
    return;
  }

  it("installs from its tarball globally (rollbridge --version, validate, help) and into a project (npx rollbridge), docs included", async () => {
    const head = readFileSync(CLI, "utf8").split("\n", 1)[0];
    expect(head, "dist/cli/main.js must start with a shebang (run npm run build)").toBe("#!/usr/bin/env node");

    const work = await fs.mkdtemp(path.join(os.tmpdir(), "rb-pack-"));
    temps.push(work);
    // npm test has just built dist; rebuilding here would rewrite files other tests are running.
    const pack = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", work], ROOT, 60_000);
    expect(pack.code, pack.stderr).toBe(0);
    const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
    const files = info!.files.map((f) => f.path);
    expect(files.filter((f) => !SHIPPED.some((pattern) => pattern.test(f)))).toEqual([]);
    expect(files).toEqual(expect.arrayContaining(["dist/cli/main.js", "schemas/config.schema.json", "schemas/desired.schema.json", "README.md", "LICENSE"]));
    expect(files.filter((f) => f.endsWith(".map") || f.startsWith("src/") || f.startsWith("test/"))).toEqual([]);
    // Every page of the documentation travels with the package (README links into docs/).
    const docs = (await fs.readdir(path.join(ROOT, "docs"))).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`);
    expect(docs.length).toBeGreaterThan(5);
    expect(files).toEqual(expect.arrayContaining(docs));
    // The README names the tarball npm pack writes.
    expect(info!.filename).toBe(`rollbridge-${VERSION}.tgz`);
    expect(readFileSync(path.join(ROOT, "README.md"), "utf8")).toContain(`npm install -g ./${info!.filename}`);
    const tarball = path.join(work, info!.filename);

    // Global install, as the README says (into a temp prefix instead of /usr/local).
    const prefix = path.join(work, "prefix");
    const global = await run("npm", ["install", "-g", "--prefix", prefix, tarball, "--no-audit", "--no-fund", "--prefer-offline"], work, 90_000);
    expect(global.code, global.stderr).toBe(0);
    const rollbridge = path.join(prefix, "bin", "rollbridge");
    const installed = path.join(prefix, "lib", "node_modules", "rollbridge");
    const globalVersion = await run(rollbridge, ["--version"], work, 30_000);
    expect(globalVersion.code, globalVersion.stderr).toBe(0);
    expect(globalVersion.stdout.trim()).toBe(VERSION);
    const example = await run(rollbridge, ["validate", "--config", path.join(installed, "examples", "rollbridge.yaml")], work, 30_000);
    expect(example.code, example.stdout + example.stderr).toBe(0);
    const help = await run(rollbridge, ["help", "deploy"], work, 30_000);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toContain("Usage: rollbridge deploy --release-path P");
    expect((await fs.stat(path.join(installed, "docs", "cli.md"))).isFile()).toBe(true);

    const project = path.join(work, "project");
    await fs.mkdir(project);
    await fs.writeFile(path.join(project, "package.json"), JSON.stringify({ name: "uses-rollbridge", version: "1.0.0", private: true }, null, 2));
    const install = await run("npm", ["install", tarball, "--no-audit", "--no-fund", "--prefer-offline"], project, 90_000);
    expect(install.code, install.stderr).toBe(0);

    const bin = path.join(project, "node_modules/rollbridge/dist/cli/main.js");
    expect((await fs.stat(bin)).mode & 0o111, "the installed bin is executable").not.toBe(0);

    const npxHelp = await run("npx", ["rollbridge", "--help"], project, 30_000);
    expect(npxHelp.code, npxHelp.stderr).toBe(0);
    expect(npxHelp.stdout).toMatch(/^\s+apply\s/m);
    expect(npxHelp.stdout).toMatch(/^\s+diff\s/m);

    const version = await run("npx", ["rollbridge", "--version"], project, 30_000);
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout.trim()).toBe(VERSION);

    // The shipped example config is valid as installed.
    const validate = await run("npx", ["rollbridge", "validate", "--config", "node_modules/rollbridge/examples/rollbridge.yaml"], project, 30_000);
    expect(validate.code, validate.stdout + validate.stderr).toBe(0);
  }, 240_000);
});
