// A fleet rollout with the shipped Ansible example (examples/ansible): three "hosts" on this
// machine (inventory entries with ansible_connection: local, each its own config directory,
// proxy port and daemon), nginx load-balancing across them with no retries to another host
// (proxy_next_upstream off), light load through nginx the whole time. The playbook ships the
// release to every host and rolls it out one host at a time: no request fails, and a second
// pass of the same playbook changes nothing. A release that fails on the first host ends the
// run non-zero with that host's reason, and hosts two and three are never touched.
// Skipped, saying why, without ansible-playbook or nginx (.ci/run installs both).
import { execFile } from "node:child_process";
import { existsSync, promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canConnect, CLI, freePort, ROOT, startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { startLoad } from "../helpers/load.js";
import { findNginx, mainConfig, NGINX_MISSING, startNginx, type RunningNginx } from "../helpers/nginx.js";

const PLAYBOOK = path.join(ROOT, "examples/ansible/site.yml");
const APP = path.join(ROOT, "examples/app/server.mjs");
const HOSTS = ["host1", "host2", "host3"] as const;

function findAnsiblePlaybook(): string | null {
  for (const dir of (process.env.PATH ?? "").split(":")) if (dir && existsSync(path.join(dir, "ansible-playbook"))) return path.join(dir, "ansible-playbook");
  return existsSync("/usr/bin/ansible-playbook") ? "/usr/bin/ansible-playbook" : null;
}

const ansible = findAnsiblePlaybook();
const nginx = findNginx();
const ANSIBLE_MISSING = "ansible-playbook is not installed (apt-get install -y ansible-core; .ci/run installs it): skipping the Ansible fleet rollout";

let work = "";
const hosts: TestDaemon[] = [];
let lb: RunningNginx | undefined;
let lbPort = 0;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** ansible-playbook on the example, against the three local hosts; bounded to 3 minutes. */
function playbook(args: string[]): Promise<Run> {
  const started = Date.now();
  const env = {
    ...process.env,
    ANSIBLE_CONFIG: path.join(work, "ansible.cfg"),
    ANSIBLE_NOCOLOR: "1",
    ANSIBLE_FORCE_COLOR: "0",
    ANSIBLE_LOCAL_TEMP: path.join(work, "ansible-local"),
    ANSIBLE_REMOTE_TEMP: path.join(work, "ansible-remote"),
    ANSIBLE_RETRY_FILES_ENABLED: "0",
    // Modules over the connection's stdin instead of temp files: fewer processes per task.
    ANSIBLE_PIPELINING: "1",
  };
  return new Promise((resolve) => {
    execFile(ansible!, ["-i", path.join(work, "inventory.yml"), ...args], { cwd: work, env, timeout: 180_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === "number" ? (error as unknown as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

function run(cmd: string, args: string[], cwd?: string): Promise<void> {
  return new Promise((resolve, reject) => execFile(cmd, args, { cwd, timeout: 30_000 }, (error) => (error ? reject(error) : resolve())));
}

/** A release tarball: the example app, or one that exits at boot with a reason on stderr. */
async function tarball(name: string, good: boolean): Promise<string> {
  const dir = path.join(work, "build", name);
  await fs.mkdir(dir, { recursive: true });
  if (good) await fs.copyFile(APP, path.join(dir, "server.mjs"));
  else await fs.writeFile(path.join(dir, "server.mjs"), 'console.error("DATABASE_URL is not set: refusing to start");\nprocess.exit(1);\n');
  const file = path.join(work, "build", `${name}.tar.gz`);
  await run("tar", ["-czf", file, "-C", dir, "."]);
  return file;
}

const ready = ansible !== null && nginx !== null;

beforeAll(async () => {
  if (!ready) return;
  work = await fs.mkdtemp(path.join(os.tmpdir(), "rb-fleet-"));
  await fs.writeFile(path.join(work, "ansible.cfg"), "[defaults]\ninterpreter_python = auto_silent\n");
  // Three hosts, each its own daemon, config directory and proxy port; v1 deployed by hand.
  for (let i = 0; i < HOSTS.length; i++) {
    hosts.push(
      await startDaemon({
        processes: `  - id: web
    policy: proxied
    command: node server.mjs
    env: {BOOT_DELAY_MS: "100"}
    port: {from: {{RANGE_FROM}}, to: {{RANGE_TO}}}
    health: {path: /ping, intervalMs: 50}
    gracefulStopMs: 3000`,
        proxy: { drainTimeoutMs: 2000 },
      }),
    );
  }
  await Promise.all(
    hosts.map(async (h) => {
      const v1 = await h.release("v1");
      await fs.copyFile(APP, path.join(v1, "server.mjs"));
      const r = await h.cli(["deploy", "--release-path", v1]);
      if (r.code !== 0) throw new Error(`deploy v1: ${r.stderr}`);
    }),
  );
  const inventory = [
    "app:",
    "  hosts:",
    ...hosts.flatMap((h, i) => [`    ${HOSTS[i]}:`, `      rollbridge_app_root: ${JSON.stringify(h.dir)}`, `      rollbridge_config: ${JSON.stringify(h.configPath)}`]),
    "  vars:",
    "    ansible_connection: local",
    `    ansible_python_interpreter: ${JSON.stringify(await pythonPath())}`,
    `    rollbridge_command: ${JSON.stringify([process.execPath, CLI])}`,
    "",
  ].join("\n");
  await fs.writeFile(path.join(work, "inventory.yml"), inventory);
  // nginx in front of the three proxies; a request that fails is not retried on another host.
  lbPort = await freePort();
  const site = [
    "upstream fleet {",
    ...hosts.map((h) => `    server 127.0.0.1:${h.proxyPort} max_fails=0;`),
    "    keepalive 16;",
    "}",
    "server {",
    `    listen 127.0.0.1:${lbPort};`,
    "    location / {",
    "        proxy_pass http://fleet;",
    "        proxy_http_version 1.1;",
    '        proxy_set_header Connection "";',
    "        proxy_next_upstream off;",
    "    }",
    "}",
    "",
  ].join("\n");
  const prefix = path.join(work, "nginx");
  await fs.mkdir(prefix);
  await fs.writeFile(path.join(prefix, "site.conf"), site);
  await fs.writeFile(path.join(prefix, "nginx.conf"), mainConfig(prefix, path.join(prefix, "site.conf")));
  lb = await startNginx(nginx!, prefix, path.join(prefix, "nginx.conf"), () => canConnect(lbPort));
}, 120_000);

afterAll(async () => {
  await lb?.stop();
  await Promise.all(hosts.map((h) => h.stop()));
  if (work) await fs.rm(work, { recursive: true, force: true });
}, 60_000);

async function pythonPath(): Promise<string> {
  for (const p of ["/usr/bin/python3", "/usr/local/bin/python3"]) if (existsSync(p)) return p;
  return "python3";
}

describe("fleet rollout with Ansible (examples/ansible)", () => {
  it("rolls v2 out one host at a time under load through nginx with 0 failed requests, and a second pass changes nothing", async (ctx) => {
    if (ansible === null) ctx.skip(ANSIBLE_MISSING);
    if (nginx === null) ctx.skip(NGINX_MISSING);
    const archive = await tarball("v2", true);
    const load = startLoad(lbPort, { connections: 4, path: "/" });
    // The same playbook twice in one ansible-playbook run (it starts slowly): the second pass must change nothing.
    const result = await playbook([PLAYBOOK, PLAYBOOK, "-e", "rollbridge_release_id=v2", "-e", `rollbridge_release_archive=${archive}`, "-e", "rollbridge_revision=r2"]);
    const stats = await load.stop();
    expect(result.code, result.stdout + result.stderr).toBe(0);

    expect(stats.failed + stats.non2xx, JSON.stringify(stats.errors)).toBe(0);
    expect(stats.byRelease.v1).toBeGreaterThan(0);
    expect(stats.byRelease.v2).toBeGreaterThan(0);

    const statuses = await Promise.all(hosts.map((h) => h.status()));
    for (const s of statuses) {
      expect(s.rollout).toMatchObject({ releaseId: "v2", outcome: "serving", reason: null });
      expect(s.activeRelease).toMatchObject({ id: "v2", revision: "r2" });
    }
    // One host at a time: each host's v2 was created only after the one before it switched to v2.
    const v2 = statuses.map((s) => s.releases.find((r: { id: string }) => r.id === "v2"));
    expect(Date.parse(v2[1].createdAt)).toBeGreaterThanOrEqual(Date.parse(v2[0].activatedAt));
    expect(Date.parse(v2[2].createdAt)).toBeGreaterThanOrEqual(Date.parse(v2[1].activatedAt));

    // The second pass: every host looked (status), none changed.
    const passes = result.stdout.split("PLAY [Ship release v2]");
    expect(passes).toHaveLength(3);
    const second = passes[2]!;
    for (const host of HOSTS) expect(second).toMatch(new RegExp(`ok: \\[${host}\\]`));
    expect(second).not.toMatch(/^changed: /m);
    const first = passes[1]!;
    expect(first).toMatch(/^changed: \[host3\]/m);
    const fleetMs = Date.parse(v2[2].activatedAt) - Date.parse(v2[0].createdAt);
    console.log(
      `fleet rollout: ${HOSTS.length} hosts, v1 → v2 in ${fleetMs} ms (first host's v2 created → last host's switch); ansible-playbook (both passes) ${result.ms} ms; ${stats.sent} requests through nginx, ${stats.failed + stats.non2xx} failed`,
    );
  }, 240_000);

  it("stops at the first host when the release fails there: exit non-zero with its reason, hosts two and three untouched", async (ctx) => {
    if (ansible === null) ctx.skip(ANSIBLE_MISSING);
    if (nginx === null) ctx.skip(NGINX_MISSING);
    const archive = await tarball("v3", false);
    const before = await Promise.all(hosts.map(async (h) => ({ desired: await fs.readFile(h.desiredPath, "utf8"), status: await h.status() })));
    const load = startLoad(lbPort, { connections: 4, path: "/" });
    const result = await playbook([PLAYBOOK, "-e", "rollbridge_release_id=v3", "-e", `rollbridge_release_archive=${archive}`, "-e", "rollbridge_rollback_on_failure=true"]);
    const stats = await load.stop();
    console.log(
      `failure case: ansible-playbook exit ${result.code} in ${result.ms} ms\n${result.stdout
        .split("\n")
        .filter((l) => /fatal:|failed=|FAILED/.test(l))
        .join("\n")}`,
    );

    expect(result.code).not.toBe(0);
    expect(result.stdout).toMatch(/fatal: \[host1\]: FAILED! .*host1: release v3 failed \(exit 1\): .*exited.*DATABASE_URL is not set.*it keeps serving v2/);
    expect(result.stdout).toMatch(/^host1 .* failed=1 /m);
    expect(stats.failed + stats.non2xx, JSON.stringify(stats.errors)).toBe(0);

    // The release was shipped everywhere, but only host1 tried it; it still serves v2.
    for (const h of hosts) expect(existsSync(path.join(h.dir, "releases/v3/server.mjs"))).toBe(true);
    const s1 = await hosts[0]!.status();
    expect(s1.rollout).toMatchObject({ releaseId: "v3", outcome: "failed" });
    expect(s1.activeRelease.id).toBe("v2");
    // Hosts two and three: the same desired file, no v3 record, the same v2 processes.
    for (const i of [1, 2]) {
      const h = hosts[i]!;
      expect(await fs.readFile(h.desiredPath, "utf8")).toBe(before[i]!.desired);
      const s = await h.status();
      expect(s.releases.map((r: { id: string }) => r.id)).not.toContain("v3");
      expect(s.rollout).toMatchObject({ releaseId: "v2", outcome: "serving" });
      const pids = (x: { processes: { releaseId: string; pid: number | null }[] }) => x.processes.filter((p) => p.releaseId === "v2").map((p) => p.pid);
      expect(pids(s)).toEqual(pids(before[i]!.status));
    }
    expect(result.stdout).not.toMatch(/\[host2\]: FAILED|Apply release v3 and wait until it serves\] \*+\n(ok|changed|fatal): \[host[23]\]/);
  }, 240_000);
});
