// The resolved Config the daemon runs on, and resolveConfig, which builds it from a parsed config:
// it fills the defaults that depend on other fields (health path, grace period, control socket)
// and makes paths absolute against the config file's directory.
import { basename, dirname, isAbsolute, resolve } from "node:path";
import type { AffinityOptions } from "../proxy/affinity.js";
import { resolveAffinity } from "./affinity.js";
import type { RolloutSettings } from "./rollout-schema.js";
import { DEFAULTS, type ProcessPolicy, type StopSignalTarget } from "./constants.js";
import { defaultControlPath, defaultStatePath } from "./runtime-dir.js";
import type { ParsedConfig } from "./schema.js";

// A port field normalised to an inclusive range (a fixed port is a range of one).
export type PortRange = { from: number; to: number };

export interface HealthConfig {
  /** HTTP path probed; undefined only when `ipc` is true and no path was given. */
  path: string | undefined;
  timeoutMs: number;
  intervalMs: number;
  startDelayMs: number;
  ipc: boolean;
}

export interface ResolvedProcess {
  id: string;
  policy: ProcessPolicy;
  /** Template, rendered per instance. */
  cwd: string;
  command: string;
  env: Record<string, string>;
  port: PortRange | undefined;
  health: false | HealthConfig;
  stopSignal: NodeJS.Signals;
  /** Who gets stopSignal: the whole group (default) or the main process only; SIGKILL always goes to the group. */
  stopSignalTarget: StopSignalTarget;
  stopMessage: string | undefined;
  /** Sent when the release starts draining (before any stop); undefined: IPC notice only. */
  drainSignal: NodeJS.Signals | undefined;
  nonBlockingDrain: boolean;
  lifecycle: {
    quietCommand: string | undefined;
    drainCommand: string | undefined;
    drainTimeoutMs: number;
    stopCommand: string | undefined;
  };
  gracefulStopMs: number;
  restartDelayMs: number;
  restart: { maxRestarts: number | undefined; windowMs: number; backoffFactor: number; maxDelayMs: number };
  memory: { limitBytes: number; warnBytes: number; checkIntervalMs: number } | undefined;
  replicas: number;
  outputLines: number;
  logFile: { path: string; maxBytes: number; keep: number; gzip: boolean } | undefined;
}

export interface ResolvedConfig {
  application: string;
  control: {
    path: string;
    /** True when control.path was not set: the socket is in the private runtime directory. */
    defaultPath: boolean;
    mode: number | undefined;
    owner: number | string | undefined;
    group: number | string | undefined;
  };
  proxy: {
    host: string;
    port: number;
    upstreamHost: string;
    healthPath: string;
    healthTimeoutMs: number;
    drainTimeoutMs: number;
    forceStopTimeoutMs: number;
    holdTimeoutMs: number;
    headersTimeoutMs: number;
    requestTimeoutMs: number;
    keepAliveTimeoutMs: number;
    bodyTimeoutMs: number;
    upgradeTimeoutMs: number;
    drainCloseCode: 1001 | 1012;
    /** Session affinity, normalised ("cookie" → {mode: "cookie", cookie: "rb_release"}). */
    affinity: AffinityOptions;
    trustedProxies: string[];
    /** The unix-socket listener (path absolute), or undefined for none. */
    socket: { path: string; mode: number; group: number | string | undefined } | undefined;
    /** false: no TCP listener (only with socket). */
    tcp: boolean;
  };
  processes: ResolvedProcess[];
  releaseRetention: { keep: number; maxAgeMs: number };
  /** Absolute, or undefined when persistence is off. */
  statePath: string | undefined;
  /** How statePath was written: `true` (the private default), relative to the config, or absolute. */
  statePathSource: "default" | "relative" | "absolute" | undefined;
  legacyTakeover: { screens: string[]; processes: { name: string; includes: string[]; user: number | string | undefined }[] };
  /** Absolute. */
  desiredPath: string;
  metrics: { host: string; port: number } | undefined;
  resyncIntervalMs: number;
  /** Bake window, automatic rollback and canary steps (CONTRACT.md §7). */
  rollout: RolloutSettings;
}

// The name the rest of the daemon uses for the resolved config.
export type Config = ResolvedConfig;

// The name the rest of the daemon uses for one resolved process.
export type ProcessConfig = Config["processes"][number];

// The default application name: the config directory's name.
export function defaultApplication(configPath: string): string {
  return basename(dirname(resolve(configPath))) || "rollbridge";
}

export { defaultControlPath } from "./runtime-dir.js";

// Where the proxy listens, for messages: "127.0.0.1:8182", "unix:/run/rollbridge-proxy/shop.sock" or both.
export function proxyListenersText(proxy: Pick<ResolvedConfig["proxy"], "host" | "port" | "tcp" | "socket">): string {
  const tcp = proxy.tcp ? [`${proxy.host}:${proxy.port}`] : [];
  return [...tcp, ...(proxy.socket ? [`unix:${proxy.socket.path}`] : [])].join(" and ");
}

// Turns "660", "0660", "0o660" or 0o660 into the numeric mode.
export function parseFileMode(mode: string | number | undefined): number | undefined {
  if (mode === undefined || typeof mode === "number") return mode;
  return Number.parseInt(mode.replace(/^0o/, ""), 8);
}

// Normalises a port field to a range.
export function toPortRange(port: number | PortRange | undefined): PortRange | undefined {
  if (port === undefined) return undefined;
  return typeof port === "number" ? { from: port, to: port } : { from: port.from, to: port.to };
}

// Fills dependent defaults and makes paths absolute; expects output of a successful configSchema parse.
export function resolveConfig(parsed: ParsedConfig, configPath: string): ResolvedConfig {
  const dir = dirname(resolve(configPath));
  const application = parsed.application ?? defaultApplication(configPath);
  const socket = parsed.proxy.socket;
  const proxy = {
    ...parsed.proxy,
    affinity: resolveAffinity(parsed.proxy.affinity),
    trustedProxies: [...parsed.proxy.trustedProxies],
    socket: socket === undefined ? undefined : { path: resolve(dir, socket.path), mode: parseFileMode(socket.mode) as number, group: socket.group },
  };
  return {
    application,
    control: {
      path: resolve(dir, parsed.control.path ?? defaultControlPath(application)),
      defaultPath: parsed.control.path === undefined,
      mode: parseFileMode(parsed.control.mode),
      owner: parsed.control.owner,
      group: parsed.control.group,
    },
    proxy,
    processes: parsed.processes.map((process) => resolveProcess(process, proxy, dir)),
    releaseRetention: { ...parsed.releaseRetention },
    ...resolveStatePath(parsed.statePath, application, dir),
    legacyTakeover: {
      screens: [...parsed.legacyTakeover.screens],
      processes: parsed.legacyTakeover.processes.map((entry) => ({ name: entry.name, includes: [...entry.includes], user: entry.user })),
    },
    desiredPath: resolve(dir, parsed.desiredPath),
    metrics: parsed.metrics === undefined ? undefined : { ...parsed.metrics },
    resyncIntervalMs: parsed.resyncIntervalMs,
    rollout: { ...parsed.rollout, steps: parsed.rollout.steps.map((step) => ({ ...step })) },
  };
}

/** Unset means the private default: adoption after a crash works out of the box; `false` turns the file off. */
function resolveStatePath(statePath: string | boolean | undefined, application: string, dir: string): Pick<ResolvedConfig, "statePath" | "statePathSource"> {
  if (statePath === false) return { statePath: undefined, statePathSource: undefined };
  if (statePath === undefined || statePath === true) return { statePath: defaultStatePath(application), statePathSource: "default" };
  return { statePath: resolve(dir, statePath), statePathSource: isAbsolute(statePath) ? "absolute" : "relative" };
}

function resolveProcess(process: ParsedConfig["processes"][number], proxy: ResolvedConfig["proxy"], dir: string): ResolvedProcess {
  return {
    id: process.id,
    policy: process.policy,
    cwd: process.cwd,
    command: process.command,
    env: { ...process.env },
    port: toPortRange(process.port),
    health: resolveHealth(process.policy, process.health, proxy),
    stopSignal: process.stopSignal,
    stopSignalTarget: process.stopSignalTarget,
    stopMessage: process.stopMessage,
    drainSignal: process.drainSignal,
    nonBlockingDrain: process.nonBlockingDrain,
    lifecycle: {
      quietCommand: process.lifecycle?.quietCommand,
      drainCommand: process.lifecycle?.drainCommand,
      drainTimeoutMs: process.lifecycle?.drainTimeoutMs ?? DEFAULTS.lifecycle.drainTimeoutMs,
      stopCommand: process.lifecycle?.stopCommand,
    },
    gracefulStopMs: process.gracefulStopMs ?? proxy.forceStopTimeoutMs,
    restartDelayMs: process.restartDelayMs,
    restart: {
      maxRestarts: process.restart?.maxRestarts,
      windowMs: process.restart?.windowMs ?? DEFAULTS.restart.windowMs,
      backoffFactor: process.restart?.backoffFactor ?? DEFAULTS.restart.backoffFactor,
      maxDelayMs: process.restart?.maxDelayMs ?? DEFAULTS.restart.maxDelayMs,
    },
    memory: process.memory === undefined ? undefined : { ...process.memory },
    replicas: process.replicas,
    outputLines: process.outputLines,
    logFile: process.logFile === undefined ? undefined : { ...process.logFile, path: resolveTemplatedPath(dir, process.logFile.path) },
  };
}

function resolveHealth(policy: ProcessPolicy, health: ParsedConfig["processes"][number]["health"], proxy: ResolvedConfig["proxy"]): false | HealthConfig {
  if (health === false) return false;
  // Only the proxied process is checked unless another one asks for it explicitly.
  if (health === undefined && policy !== "proxied") return false;
  const ipc = health?.ipc ?? DEFAULTS.health.ipc;
  return {
    path: health?.path ?? (ipc ? undefined : proxy.healthPath),
    timeoutMs: health?.timeoutMs ?? proxy.healthTimeoutMs,
    intervalMs: health?.intervalMs ?? DEFAULTS.health.intervalMs,
    startDelayMs: health?.startDelayMs ?? DEFAULTS.health.startDelayMs,
    ipc,
  };
}

// A path that starts with a placeholder may render to an absolute path, so only plain relative paths are anchored.
function resolveTemplatedPath(dir: string, path: string): string {
  if (isAbsolute(path) || path.trimStart().startsWith("{{")) return path;
  return resolve(dir, path);
}
