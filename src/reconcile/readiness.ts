// Readiness of a freshly spawned process: companions are ready once spawned; the proxied
// process once its gate passes — an HTTP 2xx on health.path and/or an IPC "online"/"ready"
// message when health.ipc is set — *and* the listener on its port belongs to its own process
// group. That last check runs after the gate passes, immediately before the process is marked
// ready: an answer on the port proves only that someone answers, and a port another local user
// took (during a deploy, after a crash) must never get traffic. Without a health check the
// proxied process is ready once its group listens on its port.
// A result known at once (a companion, a proxied process with no port) is set on the target
// here, inside the action that started the process; one that comes later goes to the hooks
// only: the slot records it when the next pass begins (runtime.ts), never from a callback.
import type { ProcessConfig } from "../config/schema.js";
import type { ErrorCode } from "../errors.js";
import { FAST_PROBE_MS, FAST_PROBE_WINDOW_MS, HealthCheck } from "../observe/health.js";
import { checkListener, describeHolders, type ListenerCheck } from "../process/listener-owner.js";
import type { ManagedProcess } from "../process/managed-process.js";
import { formatEndpoint } from "../process/proc-net.js";
import type { ReadinessTarget } from "./instance.js";

export interface ReadinessHooks {
  host: string;
  now: () => number;
  /** False once the target moved on (restarted, replaced): late results are ignored. */
  isCurrent: () => boolean;
  /** How long a proxied process without a health check has to listen on its port (proxy.healthTimeoutMs). */
  listenTimeoutMs: number;
  /** It is ready (`readyAt`: when it answered); at most once, and never after onFailed. */
  onReady: (readyAt: number) => void;
  /** It failed its check; at most once, and never after onReady. */
  onFailed: (reason: string, failure: ReadinessFailure) => void;
}

/** Why readiness failed, for the rollout failure's code and the event's data. */
export interface ReadinessFailure {
  code: ErrorCode;
  /** Listeners on the port that are not the group's (LISTENER_NOT_OWNED only). */
  holders?: { endpoint: string; uid: number; pid: number | null }[];
}

/** How often the listener is looked for while the group has not bound its port yet: often in the first second (as health probes are), then every LISTEN_POLL_MS. */
const LISTEN_POLL_MS = 100;

export function startReadiness(proc: ProcessConfig, target: ReadinessTarget, managed: ManagedProcess, port: number | undefined, hooks: ReadinessHooks): void {
  const gated = proc.policy === "proxied";
  const health = proc.health;
  if (!gated || port === undefined) {
    managed.markRunning();
    target.healthState = gated ? "ready" : "none";
    if (gated) {
      target.readyAt = hooks.now();
      hooks.onReady(target.readyAt);
    }
    return;
  }
  target.healthState = "pending";
  // The target stays "pending" until the next pass records the result: `settled` ends the check here.
  let settled = false;
  const pending = () => !settled && hooks.isCurrent() && target.healthState === "pending" && managed.exitInfo === undefined;
  const fail = (reason: string, failure: ReadinessFailure) => {
    if (!pending()) return;
    settled = true;
    hooks.onFailed(reason, failure);
  };
  const ready = (answeredAt: number) => {
    if (!pending()) return;
    settled = true;
    managed.markRunning();
    // Switch latency is measured from the moment the app answered, not when we noticed.
    hooks.onReady(Math.min(answeredAt, hooks.now()));
  };
  const verify = (answeredAt: number | undefined, timeoutMs: number, why: string) =>
    void verifyListener({ host: hooks.host, port, managed, pending, now: hooks.now, deadline: hooks.now() + timeoutMs, why }).then((verdict) => {
      if (verdict.ok) ready(answeredAt ?? verdict.at);
      else fail(verdict.reason, verdict.failure);
    });

  if (health === false || (!health.path && !health.ipc)) {
    verify(undefined, hooks.listenTimeoutMs, `did not listen on ${formatEndpoint(hooks.host, port)} within ${hooks.listenTimeoutMs} ms (it has no health check: it is ready once it listens on its port)`);
    return;
  }
  let httpReady = !health.path;
  let ipcReady = !health.ipc;
  let verifying = false;
  const gatePassed = (answeredAt: number) => {
    if (!pending() || !httpReady || !ipcReady || verifying) return;
    verifying = true;
    verify(answeredAt, health.timeoutMs, `passed its readiness check, but nothing of its process group listens on ${formatEndpoint(hooks.host, port)}`);
  };
  if (health.ipc) {
    const timer = setTimeout(() => {
      if (!ipcReady) fail(`${managed.spec.instanceId} did not send "online" or "ready" over IPC within ${health.timeoutMs} ms`, { code: "HEALTH_FAILED" });
    }, health.startDelayMs + health.timeoutMs);
    timer.unref();
    managed.onExit(() => clearTimeout(timer));
    managed.onMessage((message) => {
      if (message === "online" || message === "ready") {
        ipcReady = true;
        clearTimeout(timer);
        gatePassed(hooks.now());
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
        gatePassed(check.readyAt ?? hooks.now());
      } else if (check.state === "failed") {
        fail(check.reason ?? "health check failed", { code: "HEALTH_FAILED" });
      }
    });
    check.start();
  }
}

type Verdict = { ok: true; at: number } | { ok: false; reason: string; failure: ReadinessFailure };

/**
 * Waits until the listener on host:port is the group's (ok), someone else's (fails at once), or
 * the deadline passes with nothing listening. Stops quietly once the process is no longer
 * pending (exited, replaced): its exit is reported elsewhere.
 */
async function verifyListener(input: { host: string; port: number; managed: ManagedProcess; pending: () => boolean; now: () => number; deadline: number; why: string }): Promise<Verdict> {
  const { managed } = input;
  const id = managed.spec.instanceId;
  const pgid = managed.pid;
  if (pgid === undefined) return { ok: false, reason: `${id} has no process to check`, failure: { code: "SPAWN_FAILED" } };
  const fastUntil = input.now() + FAST_PROBE_WINDOW_MS;
  for (;;) {
    let found: ListenerCheck;
    try {
      found = await checkListener({ host: input.host, port: input.port, pgid });
    } catch {
      found = { state: "none" };
    }
    if (!input.pending()) return { ok: false, reason: `${id} is no longer starting`, failure: { code: "HEALTH_FAILED" } };
    switch (found.state) {
      case "owned":
        return { ok: true, at: input.now() };
      case "foreign":
        return {
          ok: false,
          reason: `${id}'s port ${found.holders[0]?.endpoint ?? formatEndpoint(input.host, input.port)} is held by ${describeHolders(found.holders)}, not by the process Rollbridge started (pid ${pgid}); no traffic was sent there`,
          failure: { code: "LISTENER_NOT_OWNED", holders: found.holders },
        };
      case "none":
        if (input.now() >= input.deadline) return { ok: false, reason: `${id} ${input.why}`, failure: { code: "HEALTH_FAILED" } };
        await new Promise((resolve) => setTimeout(resolve, input.now() < fastUntil ? FAST_PROBE_MS : LISTEN_POLL_MS));
        break;
      default: {
        const _exhaustive: never = found;
        return _exhaustive;
      }
    }
  }
}
