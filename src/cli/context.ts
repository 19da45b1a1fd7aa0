// Loading the config for a command and reaching its daemon. Commands that only need the daemon
// go through daemonFor: when the config file on disk is broken (an edit saved while the daemon
// runs), they still reach the daemon — through the socket the file still names, or the one the
// daemon recorded for that config path — and print the config problem as a warning on stderr.
//
// Fast path: when the config file's text is the very text the running daemon validated (the
// fingerprint in its config record), the socket and the desired file are the ones the daemon
// derived from it, so commands that only talk to the daemon skip the YAML parser and the schema
// (a quarter of a second of start-up). Any difference, a JS config, no record: the full load.
import { lstat, readFile } from "node:fs/promises";
import path from "node:path";
import { findConfigRecord } from "../config/config-record.js";
import { configFingerprint, findConfigPath } from "../config/find.js";
import type { LoadedConfig } from "../config/load.js";
import type { Config } from "../config/resolved-config.js";
import { defaultApplication } from "../config/resolved-config.js";
import { defaultControlCandidates, defaultControlPath } from "../config/runtime-dir.js";
import { request, type ControlEndpoint } from "../control/client.js";
import { errorMessage, isRollbridgeError } from "../errors.js";
import type { StatusDocument } from "../control/protocol.js";
import type { CommandContext } from "./command.js";
import { yellow } from "./output.js";

export async function configFor(ctx: CommandContext): Promise<LoadedConfig> {
  const { loadConfig } = await import("../config/load.js");
  return loadConfig(ctx.values.config as string | undefined, ctx.cwd);
}

/** The daemon a command talks to, and the config behind it when that still loads. */
export interface DaemonTarget {
  endpoint: ControlEndpoint;
  /** The desired file the daemon watches (asked from the daemon when the config is broken). */
  desiredPath(): Promise<string>;
}

/** Where to reach the daemon of `ctx`'s config, even when that config file is broken (see the header). */
export async function daemonFor(ctx: CommandContext): Promise<DaemonTarget> {
  const recorded = await recordedTarget(ctx).catch(() => null);
  if (recorded !== null) return recorded;
  try {
    const loaded = await configFor(ctx);
    const endpoint = await endpointFor(loaded.config);
    return { endpoint, desiredPath: async () => loaded.config.desiredPath };
  } catch (error) {
    if (!isRollbridgeError(error, "CONFIG_INVALID") && !isRollbridgeError(error, "CONFIG_LOAD_FAILED")) throw error;
    const configPath = findConfigPath(ctx.values.config as string | undefined, ctx.cwd);
    const endpoint = await endpointDespiteBrokenConfig(configPath);
    if (endpoint === null) throw error;
    ctx.stderr(`${yellow("warning:")} the config file cannot be used, so the running daemon keeps its last good config; talking to it on ${endpoint.path}\n${indent(errorMessage(error))}\n`);
    return {
      endpoint,
      desiredPath: async () => (await request<StatusDocument>(endpoint, "GET", "/status", undefined, 5000)).desired.file,
    };
  }
}

export async function daemonRequest<T>(ctx: CommandContext, method: string, route: string, body?: unknown, timeoutMs?: number): Promise<{ target: DaemonTarget; result: T }> {
  const target = await daemonFor(ctx);
  const result = await request<T>(target.endpoint, method, route, body, timeoutMs);
  return { target, result };
}

/**
 * The control socket of a valid config: control.path, or — when it is the default — the first
 * default location that exists (this user's runtime directory, its fallback, a root daemon's).
 */
export async function endpointFor(config: Config): Promise<ControlEndpoint> {
  if (!config.control.defaultPath) return { path: config.control.path, owner: config.control.owner };
  const found = await firstExisting(defaultControlCandidates(config.application));
  return { path: found ?? config.control.path, owner: config.control.owner };
}

/**
 * The target the fast path (see the header) finds: the running daemon's record of this config
 * file carries the fingerprint of its text as it is now. The endpoint is then what endpointFor
 * would compute from the validated config; null whenever the full load is needed.
 */
async function recordedTarget(ctx: CommandContext): Promise<DaemonTarget | null> {
  const configPath = findConfigPath(ctx.values.config as string | undefined, ctx.cwd);
  if (!/\.(ya?ml|json)$/i.test(configPath)) return null;
  const record = await findConfigRecord(configPath);
  if (record?.configHash === undefined || record.controlDefault === undefined) return null;
  if (configFingerprint(await readFile(configPath, "utf8")) !== record.configHash) return null;
  const { application, owner, desiredPath } = record;
  const socket = record.controlDefault ? ((await firstExisting(defaultControlCandidates(application))) ?? defaultControlPath(application)) : record.socket;
  return { endpoint: { path: socket, owner }, desiredPath: async () => desiredPath };
}

/** The socket the broken file still names (when that part reads), else the one the daemon recorded; null when neither exists. */
async function endpointDespiteBrokenConfig(configPath: string): Promise<ControlEndpoint | null> {
  const named = await namedEndpoints(configPath);
  for (const endpoint of named) if (await exists(endpoint.path)) return endpoint;
  const record = await findConfigRecord(configPath);
  if (record !== null && (await exists(record.socket))) return { path: record.socket, owner: record.owner };
  return null;
}

/** control.path (or the default for the application) as far as the raw file can be read. */
async function namedEndpoints(configPath: string): Promise<ControlEndpoint[]> {
  let raw: unknown;
  try {
    const { loadRawConfig } = await import("../config/load.js");
    raw = await loadRawConfig(configPath);
  } catch {
    return [];
  }
  if (!isRecord(raw)) return [];
  const control = raw["control"] ?? {};
  if (!isRecord(control)) return [];
  const owner = typeof control["owner"] === "string" || typeof control["owner"] === "number" ? control["owner"] : undefined;
  const explicit = control["path"];
  if (typeof explicit === "string" && explicit !== "") return [{ path: path.resolve(path.dirname(configPath), explicit), owner }];
  if (explicit !== undefined) return [];
  const application = raw["application"] ?? defaultApplication(configPath);
  if (typeof application !== "string" || application === "" || application.includes("/")) return [];
  return defaultControlCandidates(application).map((p) => ({ path: p, owner }));
}

async function firstExisting(paths: string[]): Promise<string | null> {
  for (const p of paths) if (await exists(p)) return p;
  return null;
}

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function indent(text: string): string {
  return text
    .split("\n")
    .map((line) => `  ${line}`)
    .join("\n");
}
