// Readiness of a freshly spawned process: companions are ready once spawned; the proxied
// process once its gate passes — an HTTP 2xx on health.path and/or an IPC "online"/"ready"
// message when health.ipc is set.
import type { ProcessConfig } from "../config/schema.js";
import { HealthCheck } from "../observe/health.js";
import type { ManagedProcess } from "../process/managed-process.js";
import type { ReadinessTarget } from "./instance.js";

export interface ReadinessHooks {
  host: string;
  now: () => number;
  /** False once the target moved on (restarted, replaced): late results are ignored. */
  isCurrent: () => boolean;
  onReady: (readyAt: number) => void;
  onFailed: (reason: string) => void;
}

export function startReadiness(proc: ProcessConfig, target: ReadinessTarget, managed: ManagedProcess, port: number | undefined, hooks: ReadinessHooks): void {
  const gated = proc.policy === "proxied";
  const health = proc.health;
  if (!gated || health === false || port === undefined || (!health.path && !health.ipc)) {
    managed.markRunning();
    target.healthState = gated ? "ready" : "none";
    if (gated) {
      target.readyAt = hooks.now();
      hooks.onReady(target.readyAt);
    }
    return;
  }
  target.healthState = "pending";
  let httpReady = !health.path;
  let ipcReady = !health.ipc;
  const pending = () => hooks.isCurrent() && target.healthState === "pending";
  const becomeReady = (answeredAt: number) => {
    if (!pending() || !httpReady || !ipcReady) return;
    managed.markRunning();
    target.healthState = "ready";
    // Switch latency is measured from the moment the app answered, not when we noticed.
    target.readyAt = Math.min(answeredAt, hooks.now());
    hooks.onReady(target.readyAt);
  };
  const fail = (reason: string) => {
    if (!pending()) return;
    target.healthState = "failed";
    target.healthReason = reason;
    hooks.onFailed(reason);
  };
  if (health.ipc) {
    const timer = setTimeout(() => {
      if (!ipcReady) fail(`${managed.spec.instanceId} did not send "online" or "ready" over IPC within ${health.timeoutMs} ms`);
    }, health.startDelayMs + health.timeoutMs);
    timer.unref();
    managed.onExit(() => clearTimeout(timer));
    managed.onMessage((message) => {
      if (message === "online" || message === "ready") {
        ipcReady = true;
        clearTimeout(timer);
        becomeReady(hooks.now());
      }
    });
  }
  if (health.path) {
    const check = new HealthCheck({ host: hooks.host, port, path: health.path, intervalMs: health.intervalMs, timeoutMs: health.timeoutMs, startDelayMs: health.startDelayMs });
    target.health = check;
    check.onChange(() => {
      if (target.health !== check) return;
      if (check.state === "ready") {
        httpReady = true;
        becomeReady(check.readyAt ?? hooks.now());
      } else if (check.state === "failed") {
        fail(check.reason ?? "health check failed");
      }
    });
    check.start();
  }
}
