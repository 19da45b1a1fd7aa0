import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CONFIG_FILE_NAMES, findConfigPath, loadConfig, loadRawConfig } from "../../src/config/load.js";
import type { ConfigIssue } from "../../src/config/issues.js";
import { isRollbridgeError, type ErrorCode, type RollbridgeError } from "../../src/errors.js";

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "rollbridge-config-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function write(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

async function rejection(promise: Promise<unknown>, code: ErrorCode): Promise<RollbridgeError> {
  try {
    await promise;
  } catch (error) {
    if (isRollbridgeError(error, code)) return error;
    throw error;
  }
  throw new Error(`expected ${code}`);
}

function syncRejection(fn: () => unknown, code: ErrorCode): RollbridgeError {
  try {
    fn();
  } catch (error) {
    if (isRollbridgeError(error, code)) return error;
    throw error;
  }
  throw new Error(`expected ${code}`);
}

const webObject = `{processes: [{id: "web", policy: "proxied", command: "node server.js --port {{port}}", port: {from: 18182, to: 18299}}]}`;

describe("findConfigPath", () => {
  it("tries the documented names in order", async () => {
    expect(CONFIG_FILE_NAMES).toEqual(["rollbridge.yaml", "rollbridge.yml", "rollbridge.json", "rollbridge.js", "rollbridge.mjs", "rollbridge.cjs"]);
    await write("rollbridge.cjs", "module.exports = {}");
    expect(findConfigPath(undefined, dir)).toBe(join(dir, "rollbridge.cjs"));
    await write("rollbridge.json", "{}");
    expect(findConfigPath(undefined, dir)).toBe(join(dir, "rollbridge.json"));
    await write("rollbridge.yml", "{}");
    expect(findConfigPath(undefined, dir)).toBe(join(dir, "rollbridge.yml"));
    await write("rollbridge.yaml", "{}");
    expect(findConfigPath(undefined, dir)).toBe(join(dir, "rollbridge.yaml"));
  });

  it("lists the names tried and suggests --config when nothing is found", () => {
    const error = syncRejection(() => findConfigPath(undefined, dir), "CONFIG_NOT_FOUND");
    for (const name of CONFIG_FILE_NAMES) expect(error.message).toContain(name);
    expect(error.fix).toContain("--config");
  });

  it("resolves an explicit path against cwd and fails when it does not exist", async () => {
    await mkdir(join(dir, "etc"));
    await write("etc/app.yaml", "{}");
    expect(findConfigPath("etc/app.yaml", dir)).toBe(join(dir, "etc", "app.yaml"));
    expect(syncRejection(() => findConfigPath("etc/missing.yaml", dir), "CONFIG_NOT_FOUND").message).toContain(join(dir, "etc", "missing.yaml"));
  });

  it("searches a directory given as --config", async () => {
    await mkdir(join(dir, "conf"));
    await write("conf/rollbridge.mjs", "export default {}");
    expect(findConfigPath("conf", dir)).toBe(join(dir, "conf", "rollbridge.mjs"));
  });
});

describe("loadRawConfig", () => {
  it("reports YAML syntax errors with line and column", async () => {
    const path = await write("rollbridge.yaml", "proxy:\n  port: 8182\nprocesses: [\n  {id: web\n");
    const error = await rejection(loadRawConfig(path), "CONFIG_LOAD_FAILED");
    expect(error.message).toMatch(new RegExp(`${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:\\d+:\\d+: `));
    expect(error.cause).toBeDefined();
  });

  it("reports duplicate YAML keys", async () => {
    const path = await write("rollbridge.yaml", "application: a\napplication: b\n");
    expect((await rejection(loadRawConfig(path), "CONFIG_LOAD_FAILED")).message).toContain(":2:1:");
  });

  it("reports JSON syntax errors with line and column", async () => {
    const path = await write("rollbridge.json", '{\n  "application": "a",\n}\n');
    const error = await rejection(loadRawConfig(path), "CONFIG_LOAD_FAILED");
    expect(error.message).toContain(`${path}:3:1:`);
  });

  it("keeps YAML env values as written and supports merge keys", async () => {
    const path = await write("rollbridge.yaml", "base: &base\n  command: node s.js\nprocesses:\n  - <<: *base\n    id: web\n    env: {UMASK: 0022, RATIO: 1.50, ON: true, N: 3}\n");
    const raw = (await loadRawConfig(path)) as { processes: { command: string; env: Record<string, unknown> }[] };
    expect(raw.processes[0]?.command).toBe("node s.js");
    expect(raw.processes[0]?.env).toEqual({ UMASK: "0022", RATIO: "1.50", ON: "true", N: "3" });
  });

  it("rejects unknown extensions", async () => {
    const path = await write("rollbridge.toml", "a = 1");
    expect((await rejection(loadRawConfig(path), "CONFIG_LOAD_FAILED")).fix).toContain(".yaml");
  });

  it("loads an ES module default export object", async () => {
    const path = await write("rollbridge.mjs", `export default ${webObject};`);
    expect(await loadRawConfig(path)).toMatchObject({ processes: [{ id: "web" }] });
  });

  it("calls a default-exported function with no arguments", async () => {
    const path = await write("rollbridge.mjs", `export default (...args) => ({ ...${webObject}, application: "args-" + args.length });`);
    expect(await loadRawConfig(path)).toMatchObject({ application: "args-0" });
  });

  it("awaits a default-exported async function", async () => {
    const path = await write("rollbridge.mjs", `export default async () => { await new Promise((r) => setTimeout(r, 5)); return { application: "late" }; };`);
    expect(await loadRawConfig(path)).toEqual({ application: "late" });
  });

  it("loads a .js ES module inside a type: module package", async () => {
    await write("package.json", JSON.stringify({ type: "module" }));
    const path = await write("rollbridge.js", `export default function config() { return { application: "esm-js" }; }`);
    expect(await loadRawConfig(path)).toEqual({ application: "esm-js" });
  });

  it("loads CommonJS module.exports from .cjs and from .js", async () => {
    const cjs = await write("rollbridge.cjs", `module.exports = { application: "cjs" };`);
    expect(await loadRawConfig(cjs)).toEqual({ application: "cjs" });
    const js = await write("rollbridge.js", `module.exports = async function () { return { application: "cjs-fn" }; };`);
    expect(await loadRawConfig(js)).toEqual({ application: "cjs-fn" });
  });

  it("sees the current file contents on every load", async () => {
    const cjs = await write("rollbridge.cjs", `module.exports = { application: "one" };`);
    const mjs = await write("rollbridge.mjs", `export default { application: "one" };`);
    expect(await loadRawConfig(cjs)).toEqual({ application: "one" });
    expect(await loadRawConfig(mjs)).toEqual({ application: "one" });
    await write("rollbridge.cjs", `module.exports = { application: "two" };`);
    await write("rollbridge.mjs", `export default { application: "two" };`);
    expect(await loadRawConfig(cjs)).toEqual({ application: "two" });
    expect(await loadRawConfig(mjs)).toEqual({ application: "two" });
  });

  it("wraps errors thrown while importing or calling the module", async () => {
    const broken = await write("broken.mjs", `throw new Error("boom at import");`);
    const importError = await rejection(loadRawConfig(broken), "CONFIG_LOAD_FAILED");
    expect(importError.message).toContain("boom at import");
    expect(importError.cause).toBeInstanceOf(Error);
    const failing = await write("failing.mjs", `export default async () => { throw new Error("boom in function"); };`);
    expect((await rejection(loadRawConfig(failing), "CONFIG_LOAD_FAILED")).message).toContain("boom in function");
  });

  it("explains a module without a default export", async () => {
    const path = await write("named.mjs", `export const config = {};`);
    expect((await rejection(loadRawConfig(path), "CONFIG_LOAD_FAILED")).fix).toContain("export default");
  });
});

// Where the yaml library gives up is often not where the author slipped: each common mistake
// is reported at its own line, with a message and a fix that say what to change.
describe("YAML syntax errors point at the mistake", () => {
  const cases: { mistake: string; text: string; at: string; message: RegExp; fix: RegExp }[] = [
    { mistake: "a missing colon", text: "application: shop\nprocesses:\n  - id web\n    policy: proxied\n", at: ":3:5:", message: /"id web" has no colon/, fix: /id: web/ },
    { mistake: "a missing colon on a top-level key", text: "application shop\nprocesses:\n  - id: web\n", at: ":1:1:", message: /"application shop" has no colon/, fix: /application: shop/ },
    {
      mistake: "a line indented too far",
      text: "application: shop\nprocesses:\n  - id: web\n    policy: proxied\n     command: node s.js\n",
      at: ":5:6:",
      message: /indented 5 spaces, more than "policy" on line 4/,
      fix: /Indent line 5 by 4 spaces/,
    },
    {
      mistake: "a line indented too little",
      text: "application: shop\nprocesses:\n  - id: web\n    policy: proxied\n   command: node s.js\n",
      at: ":5:4:",
      message: /indented 3 spaces, which matches no level above it/,
      fix: /Indent line 5 by 4 spaces/,
    },
    { mistake: "a tab as indentation", text: "application: shop\nproxy:\n\tport: 8182\n", at: ":3:1:", message: /a tab indents this line/, fix: /spaces/ },
    {
      mistake: "an unclosed double quote",
      text: 'application: shop\nprocesses:\n  - id: web\n    command: "node server.js\n    policy: proxied\n  - id: worker\n',
      at: ":4:14:",
      message: /double quote opened here is never closed/,
      fix: /command: "node server\.js"/,
    },
    { mistake: "an unclosed single quote", text: "application: 'shop\nproxy:\n  port: 8182\n", at: ":1:14:", message: /single quote opened here is never closed/, fix: /application: 'shop'/ },
    {
      mistake: "an unclosed flow mapping",
      text: "processes:\n  - id: web\n    port: {from: 18200, to: 18299\n    policy: proxied\n",
      at: ":3:11:",
      message: /"\{" opened here is never closed with "\}"/,
      fix: /port: \{from: 18200, to: 18299\}/,
    },
    { mistake: "a key given twice", text: "application: a\nproxy: {port: 1}\napplication: b\n", at: ":3:1:", message: /application is set twice in the same mapping \(first on line 1\)/, fix: /Keep one application/ },
    {
      mistake: "a value that starts with an unquoted placeholder",
      text: "processes:\n  - id: web\n    policy: proxied\n    cwd: {{releasePath}}/app\n",
      at: ":4:10:",
      message: /cwd starts with \{\{releasePath\}\}; unquoted, YAML reads "\{" as the start of a mapping/,
      fix: /cwd: "\{\{releasePath\}\}\/app"/,
    },
    {
      mistake: "a command that starts with an unquoted placeholder",
      text: "processes:\n  - id: web\n    command: {{releasePath}}/bin/start --port {{port}}  # the app\n",
      at: ":3:14:",
      message: /command starts with \{\{releasePath\}\}/,
      fix: /command: "\{\{releasePath\}\}\/bin\/start --port \{\{port\}\}"/,
    },
  ];

  it.each(cases)("$mistake", async ({ text, at, message, fix }) => {
    const path = await write("rollbridge.yaml", text);
    const error = await rejection(loadRawConfig(path), "CONFIG_LOAD_FAILED");
    expect(error.message).toContain(`${path}${at} `);
    expect(error.message).toMatch(message);
    expect(error.fix).toMatch(fix);
  });

  it("leaves a quoted placeholder alone", async () => {
    const path = await write("rollbridge.yaml", 'processes:\n  - id: web\n    cwd: "{{releasePath}}/app"\n    env: {PORT: "{{port}}"}\n');
    expect(await loadRawConfig(path)).toEqual({ processes: [{ id: "web", cwd: "{{releasePath}}/app", env: { PORT: "{{port}}" } }] });
  });
});

describe("loadConfig", () => {
  it("returns the resolved config with its absolute path and directory", async () => {
    await write("rollbridge.yaml", "statePath: state.json\nprocesses:\n  - {id: web, policy: proxied, command: node s.js, port: 3000}\n");
    const loaded = await loadConfig(undefined, dir);
    expect(loaded.path).toBe(join(dir, "rollbridge.yaml"));
    expect(loaded.dir).toBe(dir);
    expect(loaded.config.statePath).toBe(join(dir, "state.json"));
    expect(loaded.config.desiredPath).toBe(join(dir, "desired.yaml"));
  });

  it("loads a JS config end to end", async () => {
    await write("rollbridge.mjs", `export default async () => (${webObject});`);
    const loaded = await loadConfig("rollbridge.mjs", dir);
    expect(loaded.config.processes[0]?.port).toEqual({ from: 18182, to: 18299 });
  });

  it("throws CONFIG_INVALID with every issue in details and a formatted message", async () => {
    await write("rollbridge.yaml", "proxy: {prot: 1}\nprocesses:\n  - {id: worker, policy: companion, command: x, outputLines: 0}\n");
    const error = await rejection(loadConfig(undefined, dir), "CONFIG_INVALID");
    const issues = error.details as ConfigIssue[];
    expect(issues).toHaveLength(3);
    expect(error.message).toMatch(/^Found 3 configuration issues in rollbridge\.yaml:\n\n1\. /);
    expect(error.message).toContain("   Fix: ");
  });

  it("passes syntax errors through as CONFIG_LOAD_FAILED", async () => {
    await write("rollbridge.json", "{");
    await rejection(loadConfig(undefined, dir), "CONFIG_LOAD_FAILED");
  });
});
