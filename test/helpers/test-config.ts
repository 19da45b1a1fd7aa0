// A daemon config file in a fresh temp dir, as the integration tests write it: free ports on
// 127.0.0.1, the control socket in the dir, and the `processes:` list built from the fixture
// apps. startDaemon and startRuntime write theirs with it, and so do the tests that start a
// daemon some other way (ensure-daemon) and need the file only.
import { promises as fs } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../fixtures");
export const FIXTURE_APP = path.join(FIXTURES, "app.mjs");
export const FIXTURE_WORKER = path.join(FIXTURES, "worker.mjs");

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

const PORT_BLOCKS = 240; // of 50 ports from 20000: below the kernel's ephemeral range (32768+ here)
const POOL_STRIDE = 4; // vitest workers (VITEST_POOL_ID 1..maxWorkers) get disjoint blocks
const usedBlocks = new Set<number>();

/**
 * A block of ports no parallel test file uses: each vitest worker draws from its own blocks
 * (by VITEST_POOL_ID), and one file never gets the same block twice while it has others left.
 * Below the kernel's ephemeral range, where load generators' client sockets take local ports.
 */
export function portRange(size = 40): { from: number; to: number } {
  const pool = (Math.max(1, Number(process.env.VITEST_POOL_ID) || 1) - 1) % POOL_STRIDE;
  let mine: number[] = [];
  for (let block = pool; block < PORT_BLOCKS; block += POOL_STRIDE) if (!usedBlocks.has(block)) mine.push(block);
  if (mine.length === 0) {
    usedBlocks.clear();
    mine = Array.from({ length: PORT_BLOCKS / POOL_STRIDE }, (_, i) => pool + i * POOL_STRIDE);
  }
  const block = mine[Math.floor(Math.random() * mine.length)]!;
  usedBlocks.add(block);
  const from = 20_000 + block * 50;
  return { from, to: from + size - 1 };
}

/** Fields of one `processes:` entry, each value YAML as it stands; an undefined value leaves the field out. */
export type ProcessFields = Record<string, string | number | boolean | undefined>;

/** One entry of the `processes:` list, indented as the list under `processes:` (id first). */
export function processEntry(fields: ProcessFields): string {
  return Object.entries(fields)
    .filter(([, value]) => value !== undefined)
    .map(([key, value], i) => `${i === 0 ? "  - " : "    "}${key}: ${value}`)
    .join("\n");
}

/**
 * The proxied fixture app `web` on the file's port range, health-checked every 50 ms; `fields`
 * change or add fields (`restartDelayMs: undefined` leaves the restart delay at its default).
 */
export function webProcess(fields: ProcessFields = {}): string {
  return processEntry({
    id: "web",
    policy: "proxied",
    command: "node {{APP}}",
    port: "{from: {{RANGE_FROM}}, to: {{RANGE_TO}}}",
    health: "{path: /ping, intervalMs: 50}",
    restartDelayMs: 200,
    gracefulStopMs: 3000,
    ...fields,
  });
}

/** A companion process (the heartbeat worker fixture unless `command` says otherwise). */
export function companionProcess(id: string, fields: ProcessFields = {}): string {
  return processEntry({ id, policy: "companion", command: "node {{WORKER}}", ...fields });
}

/** The `processes:` YAML with {{APP}}, {{WORKER}}, {{RANGE_FROM}} and {{RANGE_TO}} filled in. */
export function fillProcesses(yaml: string, range: { from: number; to: number }): string {
  return yaml.replaceAll("{{APP}}", FIXTURE_APP).replaceAll("{{WORKER}}", FIXTURE_WORKER).replaceAll("{{RANGE_FROM}}", String(range.from)).replaceAll("{{RANGE_TO}}", String(range.to));
}

export interface ConfigSetup {
  /** The temp dir's name prefix (default `rb-`). */
  dirPrefix?: string;
  /** The application name, before `-<temp dir name>` (default `test`). */
  application?: string;
  /** Extra `control:` fields (mode, owner, group), next to the socket path. */
  control?: Record<string, string | number>;
  /** The proxy port (default: a free one). */
  proxyPort?: number;
  /** `proxy:` fields after host and port, each value YAML as it stands. */
  proxy?: Record<string, number | string>;
  /** More top-level YAML, above `processes:`. */
  extra?: string;
  /** The `processes:` list (default: `webProcess()`), filled in by `fillProcesses`. */
  processes?: string;
}

export interface TestConfig {
  dir: string;
  configPath: string;
  socket: string;
  proxyPort: number;
  /** The port range {{RANGE_FROM}}..{{RANGE_TO}} of this config. */
  range: { from: number; to: number };
}

/** Writes `rollbridge.yaml` into a fresh temp dir; nothing is started. */
export async function writeTestConfig(setup: ConfigSetup = {}): Promise<TestConfig> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), setup.dirPrefix ?? "rb-"));
  const proxyPort = setup.proxyPort ?? (await freePort());
  const range = portRange();
  const socket = path.join(dir, "control.sock");
  const control = [`path: ${socket}`, ...Object.entries(setup.control ?? {}).map(([k, v]) => `${k}: ${typeof v === "string" ? JSON.stringify(v) : v}`)];
  const yaml = [
    `application: ${setup.application ?? "test"}-${path.basename(dir)}`,
    `control: {${control.join(", ")}}`,
    `proxy:`,
    `  host: 127.0.0.1`,
    `  port: ${proxyPort}`,
    ...Object.entries(setup.proxy ?? {}).map(([k, v]) => `  ${k}: ${v}`),
    setup.extra ?? "",
    `processes:`,
    fillProcesses(setup.processes ?? webProcess(), range),
  ].join("\n");
  const configPath = path.join(dir, "rollbridge.yaml");
  await fs.writeFile(configPath, yaml + "\n");
  return { dir, configPath, socket, proxyPort, range };
}

/** A release directory `releases/<name>` under `dir`, created if missing. */
export async function releaseDir(dir: string, name: string): Promise<string> {
  const p = path.join(dir, "releases", name);
  await fs.mkdir(p, { recursive: true });
  return p;
}
