// The slice of the config the pure planner needs, so planner tables stay small and readable.
import type { RolloutSettings } from "../config/rollout-schema.js";
import type { Config } from "../config/schema.js";

export interface PlannerProcess {
  id: string;
  policy: "proxied" | "companion" | "singleton" | "service";
  replicas: number;
  restartDelayMs: number;
  restart: { maxRestarts?: number; windowMs: number; backoffFactor: number; maxDelayMs: number };
  /** The proxied process is gated on readiness (HTTP health and/or IPC) before traffic moves. */
  gated: boolean;
  nonBlockingDrain: boolean;
}

export interface PlannerConfig {
  processes: PlannerProcess[];
  drainTimeoutMs: number;
  retention: { keep: number; maxAgeMs: number };
  /** Base delay before a failed desired release is tried again; doubles per failure. */
  failedRetryBaseMs: number;
  failedRetryMaxMs: number;
  /**
   * Bake window, error budget and canary steps (CONTRACT.md §7); a desired file's `rollout`
   * overrides them for its deploy. A release serves (`serving`) once its bake window passed.
   */
  rollout: RolloutSettings;
  /** proxy.affinity is on: a drain lasts at least AFFINITY_IDLE_MS, so pinned clients can come back. */
  affinity?: boolean;
}

export function plannerConfig(config: Config): PlannerConfig {
  return {
    processes: config.processes.map((p) => ({
      id: p.id,
      policy: p.policy,
      replicas: p.replicas,
      restartDelayMs: p.restartDelayMs,
      restart: {
        ...(p.restart.maxRestarts === undefined ? {} : { maxRestarts: p.restart.maxRestarts }),
        windowMs: p.restart.windowMs,
        backoffFactor: p.restart.backoffFactor,
        maxDelayMs: p.restart.maxDelayMs,
      },
      gated: p.policy === "proxied",
      nonBlockingDrain: p.nonBlockingDrain,
    })),
    drainTimeoutMs: config.proxy.drainTimeoutMs,
    retention: { keep: config.releaseRetention.keep, maxAgeMs: config.releaseRetention.maxAgeMs },
    failedRetryBaseMs: 10_000,
    failedRetryMaxMs: 300_000,
    rollout: config.rollout,
    affinity: config.proxy.affinity.mode !== "none",
  };
}

/** Replica 0 of a single-instance process keeps the plain id; pools are `<id>#<index>`. */
export function instanceIdFor(processId: string, replicaIndex: number, replicaCount: number): string {
  return replicaCount > 1 ? `${processId}#${replicaIndex}` : processId;
}

/** The process id an instance id was made from (the inverse of instanceIdFor; `#` is not allowed in process ids). */
export function processIdOf(instanceId: string): string {
  const hash = instanceId.indexOf("#");
  return hash < 0 ? instanceId : instanceId.slice(0, hash);
}
