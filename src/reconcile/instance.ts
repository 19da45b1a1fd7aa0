// One slot of a release's process table (e.g. "web" of release v3), surviving restarts of
// the OS process behind it, and how a slot's command line and environment are rendered.
import type { Config, ProcessConfig } from "../config/schema.js";
import type { ErrorCode } from "../errors.js";
import { renderTemplate, type TemplateContext } from "../config/template.js";
import type { HealthCheck } from "../observe/health.js";
import type { ManagedProcess } from "../process/managed-process.js";
import type { RotatingLogFile } from "../process/log-file.js";
import type { ExitInfo, OutputLine } from "../process/types.js";
import type { HealthState, ReleaseSpec, StartReason } from "./types.js";

/** Where readiness (HTTP health / IPC) is tracked: a slot's current process or its successor. */
export interface ReadinessTarget {
  health?: HealthCheck;
  healthState: HealthState;
  healthReason?: string;
  /** Why readiness failed (HEALTH_FAILED, LISTENER_NOT_OWNED), next to healthReason. */
  healthCode?: ErrorCode;
  readyAt?: number;
}

/** A replacement process starting for a slot, not yet taking traffic. */
export interface Successor extends ReadinessTarget {
  proc?: ManagedProcess;
  port?: number;
  spawnError?: string;
  startedAt?: number;
}

/** A replaced process finishing its requests before it is stopped. */
export interface Retiring {
  proc: ManagedProcess;
  port?: number;
  since: number;
  stopRequested: boolean;
}

export interface Instance extends ReadinessTarget {
  instanceId: string;
  processId: string;
  replicaIndex: number;
  replicaCount: number;
  releaseKey: string;
  port?: number;
  proc?: ManagedProcess;
  health?: HealthCheck;
  healthState: HealthState;
  healthReason?: string;
  healthCode?: ErrorCode;
  /** When the instance was first seen ready, for switch latency. */
  readyAt?: number;
  stopRequested: boolean;
  spawnError?: string;
  lastExit?: ExitInfo;
  restarts: number;
  restartTimes: number[];
  failed: boolean;
  lastStartReason: StartReason;
  startedAt?: number;
  /** Output of earlier OS processes of this slot (each line with its time, stream and pid), kept across restarts for `logs`. */
  previousOutput: OutputLine[];
  pendingRestart?: StartReason;
  successor?: Successor;
  retiring: Retiring[];
  memoryRestarts: number;
  lastMemoryRestartAt?: number;
  /** Services only: the rollout that first started it, until a switch adopts it. */
  startedFor?: string;
  /** The slot's log file (kept across restarts of the slot). */
  logFile?: RotatingLogFile;
}

/** What the sampler last saw of one OS process of a slot. */
export interface ProcessUsage {
  /** The process the sample is of: a sample of an earlier process of the slot is not shown. */
  pid: number;
  rssBytes: number;
  /** CPU seconds used so far (utime + stime, children reaped included). */
  cpuSeconds: number;
  /** Share of one CPU over the time since the previous sample of this pid; null after the first. */
  cpuPercent: number | null;
  /** performance.now() of the sample. */
  sampledAt: number;
}

export function newInstance(instanceId: string, processId: string, replicaIndex: number, replicaCount: number, releaseKey: string, reason: StartReason): Instance {
  return {
    instanceId,
    processId,
    replicaIndex,
    replicaCount,
    releaseKey,
    healthState: "none",
    stopRequested: false,
    restarts: 0,
    restartTimes: [],
    failed: false,
    lastStartReason: reason,
    previousOutput: [],
    retiring: [],
    memoryRestarts: 0,
  };
}

/**
 * The slot's retained output, oldest first, at most `limit` lines: earlier processes' lines
 * and those of every process the slot has now (current, a starting successor, retiring ones).
 */
export function slotOutput(inst: Instance, limit: number): OutputLine[] {
  const live = [inst.proc, inst.successor?.proc, ...inst.retiring.map((r) => r.proc)].flatMap((p) => p?.output() ?? []);
  return mergeOutput(inst.previousOutput, live, limit);
}

/** Moves a process's lines into the slot's history (when it is replaced, restarted or forgotten). */
export function retainOutput(inst: Instance, proc: ManagedProcess | undefined, limit: number): void {
  if (proc) inst.previousOutput = mergeOutput(inst.previousOutput, proc.output(), limit);
}

/** Lines of several processes in time order (a stable sort keeps each one's own order), the last `limit`. */
function mergeOutput(a: readonly OutputLine[], b: readonly OutputLine[], limit: number): OutputLine[] {
  const all = b.length === 0 ? [...a] : [...a, ...b].sort((x, y) => x.at - y.at);
  return all.slice(-Math.max(1, limit));
}

export interface RenderInput {
  config: Config;
  proc: ProcessConfig;
  release: ReleaseSpec;
  instanceId: string;
  replicaIndex: number;
  replicaCount: number;
  port: number | undefined;
  /** Ports of the other processes this instance may reference as {{ports.<id>}}. */
  ports: Record<string, number>;
  daemonEnv: Record<string, string | undefined>;
}

export interface RenderedProcess {
  /** Shell text: every value in it is quoted for where it sits. */
  command: string;
  cwd: string;
  env: Record<string, string>;
  /** logFile.path with its templates rendered, when the process has a log file. */
  logFile?: string;
  /** The lifecycle hooks, rendered and quoted like the command. */
  hooks: RenderedHooks;
  /** The variables the templates saw, to render the hooks again at stop time (after a config reload). */
  templateContext: TemplateContext;
}

/** The lifecycle hooks of a process, rendered (unset hooks stay unset). */
export interface RenderedHooks {
  quietCommand?: string;
  drainCommand?: string;
  stopCommand?: string;
}

const HOOKS = ["quietCommand", "drainCommand", "stopCommand"] as const;

/** Renders a process's lifecycle hooks as shell text; throws TEMPLATE_UNRESOLVED or TEMPLATE_UNSAFE naming the hook. */
export function renderHooks(proc: ProcessConfig, ctx: TemplateContext): RenderedHooks {
  const hooks: RenderedHooks = {};
  for (const hook of HOOKS) {
    const template = proc.lifecycle[hook];
    if (template !== undefined) hooks[hook] = renderTemplate(template, ctx, `processes[${proc.id}].lifecycle.${hook}`, { shell: true });
  }
  return hooks;
}

/** Renders command, hooks, cwd and env; throws TEMPLATE_UNRESOLVED (or TEMPLATE_UNSAFE) naming the field that failed. */
export function renderProcess(input: RenderInput): RenderedProcess {
  const { config, proc, release } = input;
  const vars: Record<string, string | number | undefined> = {
    application: config.application,
    releasePath: release.path,
    releaseId: release.id,
    revision: release.revision ?? release.id,
    processId: proc.id,
    instanceId: input.instanceId,
    replicaIndex: input.replicaIndex,
    replicaCount: input.replicaCount,
    port: input.port,
    "proxy.host": config.proxy.host,
    "proxy.port": config.proxy.port,
    "proxy.upstreamHost": config.proxy.upstreamHost,
  };
  for (const [id, port] of Object.entries(input.ports)) vars[`ports.${id}`] = port;
  const ctx: TemplateContext = { vars, env: input.daemonEnv };
  const where = (field: string) => `processes[${proc.id}].${field}`;
  const command = renderTemplate(proc.command, ctx, where("command"), { shell: true });
  const hooks = renderHooks(proc, ctx);
  const cwd = renderTemplate(proc.cwd, ctx, where("cwd"));

  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.daemonEnv)) if (v !== undefined) env[k] = v;
  env.ROLLBRIDGE_APPLICATION = config.application;
  env.ROLLBRIDGE_PROCESS_ID = proc.id;
  env.ROLLBRIDGE_INSTANCE_ID = input.instanceId;
  env.ROLLBRIDGE_RELEASE_ID = release.id;
  env.ROLLBRIDGE_RELEASE_PATH = release.path;
  env.ROLLBRIDGE_REVISION = release.revision ?? release.id;
  env.ROLLBRIDGE_REPLICA_INDEX = String(input.replicaIndex);
  env.ROLLBRIDGE_REPLICA_COUNT = String(input.replicaCount);
  // PORT too (the Heroku/Express convention), so `app.listen(process.env.PORT)` just works. A
  // process without a port gets neither: a PORT the daemon itself inherited (its shell, a unit
  // file) would otherwise send it to bind a port that is not its own. Its env may set PORT.
  if (input.port !== undefined) {
    env.ROLLBRIDGE_PORT = String(input.port);
    env.PORT = String(input.port);
  } else {
    delete env.ROLLBRIDGE_PORT;
    delete env.PORT;
  }
  for (const [k, v] of Object.entries(proc.env)) env[k] = renderTemplate(v, ctx, where(`env.${k}`));
  for (const [k, v] of Object.entries(release.env)) env[k] = v;
  const rendered: RenderedProcess = { command, cwd, env, hooks, templateContext: ctx };
  if (proc.logFile) rendered.logFile = renderTemplate(proc.logFile.path, ctx, where("logFile.path"));
  return rendered;
}
