// doctor: green only when a fresh daemon could start here now; every failed check says why
// and names who holds what.
import { promises as fs, readFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, portRange, runCli, startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { deploy } from "../helpers/operations.js";

const cleanups: (() => Promise<void>)[] = [];
let daemon: TestDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function configDir(body: (p: { dir: string; proxyPort: number; range: { from: number; to: number } }) => string): Promise<{ dir: string; configPath: string; proxyPort: number; range: { from: number; to: number } }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "rb-doc-"));
  cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
  const proxyPort = await freePort();
  const range = portRange(8);
  const configPath = path.join(dir, "rollbridge.yaml");
  await fs.writeFile(configPath, body({ dir, proxyPort, range }));
  return { dir, configPath, proxyPort, range };
}

const basic = ({ dir, proxyPort, range }: { dir: string; proxyPort: number; range: { from: number; to: number } }) =>
  `application: doc\ncontrol: {path: ${dir}/sock/control.sock}\nproxy: {port: ${proxyPort}}\nstatePath: ${dir}/state/app.json\nprocesses:\n  - id: web\n    policy: proxied\n    command: node app.js\n    port: {from: ${range.from}, to: ${range.to}}\n`;

function check(doc: { checks: { name: string; ok: boolean; message: string; fix?: string }[] }, name: string) {
  const found = doc.checks.find((c) => c.name === name);
  if (!found) throw new Error(`no check "${name}" in ${JSON.stringify(doc.checks.map((c) => c.name))}`);
  return found;
}

describe("doctor", () => {
  it("passes every check when a fresh daemon could start", async () => {
    const c = await configDir(basic);
    const r = await runCli(["doctor", "--config", c.configPath], { cwd: c.dir });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^✓ config: valid: 1 process, proxy on 127\.0\.0\.1:\d+/m);
    expect(r.stdout).toContain(`✓ control socket: no daemon running; ${c.dir}/sock/control.sock is free to bind`);
    expect(r.stdout).toContain(`✓ control socket directory: ${c.dir}/sock does not exist yet; ${c.dir} is writable`);
    expect(r.stdout).toContain(`✓ proxy port: 127.0.0.1:${c.proxyPort} is available`);
    expect(r.stdout).toContain(`✓ ports of web: 8 of 8 ports free in ${c.range.from}-${c.range.to}`);
    expect(r.stdout).toMatch(/✓ node: Node\.js \d+\.\d+/);
    expect(r.stdout).toMatch(/✓ desired file: none yet/);
    expect(r.stdout).toMatch(/✓ orphans: no processes left behind/);
    expect(r.stdout.trim().endsWith("All checks passed.")).toBe(true);

    const json = JSON.parse((await runCli(["doctor", "--json", "--config", c.configPath], { cwd: c.dir })).stdout);
    expect(json.ok).toBe(true);
    expect(json.checks.map((x: { name: string }) => x.name)).toEqual(["config", "node", "control socket", "control socket directory", "proxy port", "ports of web", "state file directory", "desired file", "orphans"]);
    for (const x of json.checks) expect(x).toMatchObject({ ok: true, message: expect.any(String) });
  });

  it("fails on a proxy port held by another process, and counts taken ports of a range", async () => {
    const c = await configDir(basic);
    const servers = await Promise.all([c.proxyPort, c.range.from, c.range.from + 1].map((port) => listen(port)));
    cleanups.push(async () => void (await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))));
    const r = await runCli(["doctor", "--config", c.configPath], { cwd: c.dir });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`✗ proxy port: 127.0.0.1:${c.proxyPort} is taken by another process`);
    expect(r.stdout).toContain(`fix: find it with \`ss -ltnp 'sport = :${c.proxyPort}'\``);
    expect(r.stdout).toContain("✓ ports of web: 6 of 8 ports free");
    expect(r.stdout.trim().endsWith("1 of 9 checks failed.")).toBe(true);
  });

  const ephemeral = readEphemeralRange();
  it.skipIf(ephemeral === null)("warns, without failing, when a port range lies in the kernel's ephemeral range (skipped without /proc/sys/net/ipv4/ip_local_port_range, or with ip_local_reserved_ports set)", async () => {
    const { from: lo, to: hi } = ephemeral as { from: number; to: number };
    // 8 ports near the top of the ephemeral range, where this machine's own client sockets are fewest.
    const inside = { from: hi - 200, to: hi - 193 };
    const c = await configDir((p) => basic({ ...p, range: inside }));
    const r = await runCli(["doctor", "--config", c.configPath], { cwd: c.dir });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`✓ ports of web: `);
    expect(r.stdout).toContain(
      `    warning: 8 ports (${inside.from}-${inside.to}) are in the kernel's ephemeral range ${lo}-${hi}: any outgoing connection on this host may take one as its local port after the daemon chose it for a process and before the process listens, and the start then fails with EADDRINUSE; move processes[web].port below ${lo}, or reserve it: sysctl -w net.ipv4.ip_local_reserved_ports=${inside.from}-${inside.to}`,
    );
    expect(r.stdout.trim().endsWith("All checks passed (1 with a warning).")).toBe(true);
    const json = JSON.parse((await runCli(["doctor", "--json", "--config", c.configPath], { cwd: c.dir })).stdout);
    expect(json.ok).toBe(true);
    expect(check(json, "ports of web")).toMatchObject({ ok: true, warning: expect.stringContaining(`ephemeral range ${lo}-${hi}`) });
  });

  it("is green beside a healthy daemon: the fresh-start checks say skipped, the daemon is checked instead", async () => {
    daemon = await startDaemon();
    expect((await deploy(daemon, "v1")).code).toBe(0);
    const pid = daemon.child.pid;
    const human = await runCli(["doctor", "--config", daemon.configPath], { cwd: daemon.dir });
    expect(human.code, human.stdout).toBe(0);
    expect(human.stdout).toContain(`✓ daemon: pid ${pid} answers on ${daemon.socket}: release v1 active, converged`);
    expect(human.stdout).toContain(`- proxy port: skipped: daemon running (pid ${pid} serves 127.0.0.1:${daemon.proxyPort})`);
    expect(human.stdout).toContain("- control socket directory: skipped: daemon running");
    expect(human.stdout.trim().endsWith("All checks passed (2 skipped: a daemon is running).")).toBe(true);
    const doc = JSON.parse((await runCli(["doctor", "--json", "--config", daemon.configPath], { cwd: daemon.dir })).stdout);
    expect(doc.ok).toBe(true);
    expect(check(doc, "proxy port")).toMatchObject({ ok: true, skipped: true, message: expect.stringMatching(/^skipped: daemon running/) });
    expect(check(doc, "desired file")).toMatchObject({ ok: true, message: expect.stringMatching(/is valid: release v1 at .*releases\/v1$/) });
    expect(doc.checks.map((x: { name: string }) => x.name)).not.toContain("control socket");
    // Doctor only looks: the daemon still serves.
    expect((await daemon.status()).activeRelease.id).toBe("v1");
  });

  it("fails beside a daemon whose rollout failed, or whose proxy port the config has moved", async () => {
    daemon = await startDaemon();
    expect((await deploy(daemon, "v1")).code).toBe(0);
    const v2 = await daemon.release("v2");
    expect((await daemon.cli(["apply", "-f", "-", "--wait"], { input: `release: {path: ${v2}}\nenv: {EXIT_IMMEDIATELY: "1"}\n` })).code).toBe(1);
    const failed = JSON.parse((await runCli(["doctor", "--json", "--config", daemon.configPath], { cwd: daemon.dir })).stdout);
    expect(failed.ok).toBe(false);
    expect(check(failed, "daemon")).toMatchObject({ ok: false, message: expect.stringMatching(/release v1 active, degraded \(RolloutFailed\): web exited with code 1/), fix: expect.stringContaining("rollbridge status") });

    const moved = await freePort();
    const text = await fs.readFile(daemon.configPath, "utf8");
    const copy = path.join(daemon.dir, "moved.yaml");
    await fs.writeFile(copy, text.replace(`port: ${daemon.proxyPort}`, `port: ${moved}`));
    const r = JSON.parse((await runCli(["doctor", "--json", "--config", copy], { cwd: daemon.dir })).stdout);
    expect(check(r, "proxy port")).toMatchObject({ ok: false, message: `the running daemon (pid ${daemon.child.pid}) serves 127.0.0.1:${daemon.proxyPort}, the config says 127.0.0.1:${moved}` });
  });

  it("fails on an invalid config, and on a desired file naming a missing release", async () => {
    const bad = await configDir(() => "application: doc\nprocesses: []\n");
    const r = await runCli(["doctor", "--config", bad.configPath], { cwd: bad.dir });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/✗ config: \d+ problems? in /);
    expect(r.stdout).toMatch(/fix: rollbridge validate --config/);

    const c = await configDir(basic);
    await fs.writeFile(path.join(c.dir, "desired.yaml"), `release: {path: ${c.dir}/releases/gone}\n`);
    const d = JSON.parse((await runCli(["doctor", "--json", "--config", c.configPath], { cwd: c.dir })).stdout);
    expect(d.ok).toBe(false);
    expect(check(d, "desired file")).toMatchObject({ ok: false, message: expect.stringMatching(/releases\/gone does not exist/) });
  });
});

function listen(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(port, "127.0.0.1", () => resolve(s));
  });
}

/** The kernel's ephemeral port range, or null where /proc/sys does not tell it or ports are reserved from it (the warning then counts differently). */
function readEphemeralRange(): { from: number; to: number } | null {
  try {
    if (readFileSync("/proc/sys/net/ipv4/ip_local_reserved_ports", "utf8").trim() !== "") return null;
    const [from, to] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    return Number.isInteger(from) && Number.isInteger(to) ? { from: from as number, to: to as number } : null;
  } catch {
    return null;
  }
}
