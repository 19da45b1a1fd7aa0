// The loop's failure policy: an action that throws is retried with a per-action exponential
// backoff (1 s doubling to 30 s, keyed by the action's identity, not by its reason text); an
// error whose code says retrying cannot help (a bad template, an unsafe path) is terminal and is
// not retried while the planner keeps asking for the same action. Status shows both.
import { errorMessage, isRollbridgeError, type ErrorCode } from "../errors.js";
import type { FailingActionStatus } from "../control/protocol.js";
import type { Action } from "./types.js";

/** Backoff of a failing action: `initialMs` after the first failure, doubled per failure, at most `maxMs`. */
export interface BackoffSettings {
  initialMs: number;
  maxMs: number;
}

export const ACTION_BACKOFF: BackoffSettings = { initialMs: 1000, maxMs: 30_000 };

/** How long after its `attempts`-th consecutive failure an action runs again. */
export function backoffDelay(attempts: number, settings: BackoffSettings = ACTION_BACKOFF): number {
  if (attempts <= 0) return 0;
  // 2 ** 30 s is long past any cap: no overflow to Infinity for a very long failing streak.
  return Math.min(settings.maxMs, settings.initialMs * 2 ** Math.min(attempts - 1, 30));
}

/** Codes that fail the same way however often they are retried: only a new desired state or config helps. */
export function isTerminalCode(code: ErrorCode | undefined): boolean {
  switch (code) {
    case "CONFIG_INVALID":
    case "DESIRED_INVALID":
    case "TEMPLATE_UNRESOLVED":
    case "TEMPLATE_UNSAFE":
    case "UNSAFE_PATH":
    case "UNKNOWN_PROCESS":
    case "UNKNOWN_RELEASE":
    case "NOT_SUPPORTED":
    case "USAGE":
      return true;
    default:
      return false;
  }
}

/** What names one action across passes: its type and the record, slot or pid it works on (never its reason text). */
export function actionIdentity(action: Action): string {
  switch (action.type) {
    case "createRelease":
      return `createRelease ${action.spec.generation}`;
    case "startService":
      return `startService ${action.processId}`;
    case "startProcess":
      return `startProcess ${action.key} ${action.processId}#${action.replicaIndex}`;
    case "stopProcess":
      return `stopProcess ${action.key} ${action.instanceId} ${action.kind}`;
    case "stopRetired":
    case "forgetRetired":
      return `${action.type} ${action.key} ${action.instanceId} ${action.pid}`;
    case "forgetProcess":
    case "startSuccessor":
    case "promoteSuccessor":
    case "abandonSuccessor":
    case "markProcessFailed":
      return `${action.type} ${action.key} ${action.instanceId}`;
    case "switchTraffic":
      return `switchTraffic ${action.key ?? "none"}`;
    case "resumeRelease":
    case "adoptServices":
    case "beginDrain":
    case "closeConnections":
    case "markStopped":
    case "markFailed":
    case "pruneRelease":
    case "beginBake":
    case "finishRollout":
    case "rollBack":
      return `${action.type} ${action.key}`;
    case "beginCanary":
      return `beginCanary ${action.key} ${action.step}`;
    default: {
      const _exhaustive: never = action;
      return _exhaustive;
    }
  }
}

/** One failing action's record. */
export interface ActionFailure {
  identity: string;
  action: Action["type"];
  key: string | null;
  instanceId: string | null;
  error: string;
  code: ErrorCode | null;
  attempts: number;
  terminal: boolean;
  lastFailedAt: number;
  /** When it may run again; null for a terminal failure. */
  nextAttemptAt: number | null;
}

/** The failing actions of the executor, by identity. Only the reconcile pass calls it (execute.ts). */
export class ActionFailures {
  private readonly entries = new Map<string, ActionFailure>();

  constructor(private readonly settings: BackoffSettings = ACTION_BACKOFF) {}

  /** False while the action backs off, or for good after a terminal failure. */
  mayRun(action: Action, now: number): boolean {
    const entry = this.entries.get(actionIdentity(action));
    if (!entry) return true;
    return entry.nextAttemptAt !== null && now >= entry.nextAttemptAt;
  }

  succeeded(action: Action): void {
    this.entries.delete(actionIdentity(action));
  }

  failed(action: Action, error: unknown, now: number): ActionFailure {
    const identity = actionIdentity(action);
    const attempts = (this.entries.get(identity)?.attempts ?? 0) + 1;
    const code = isRollbridgeError(error) ? error.code : null;
    const terminal = isTerminalCode(code ?? undefined);
    const entry: ActionFailure = {
      identity,
      action: action.type,
      key: "key" in action ? action.key : null,
      instanceId: "instanceId" in action ? action.instanceId : null,
      error: errorMessage(error),
      code,
      attempts,
      terminal,
      lastFailedAt: now,
      nextAttemptAt: terminal ? null : now + backoffDelay(attempts, this.settings),
    };
    this.entries.set(identity, entry);
    return entry;
  }

  /** Forgets the failures of actions the planner no longer asks for: the world moved on, a later need starts afresh. */
  retain(planned: readonly Action[]): void {
    const wanted = new Set(planned.map(actionIdentity));
    for (const identity of this.entries.keys()) if (!wanted.has(identity)) this.entries.delete(identity);
  }

  /** A new desired state or config: terminal failures may succeed now, backoffs start over. */
  clear(): void {
    this.entries.clear();
  }

  /** The earliest time a backing-off action may run again (the loop requeues for it). */
  nextAttemptAt(): number | undefined {
    let next: number | undefined;
    for (const entry of this.entries.values()) if (entry.nextAttemptAt !== null && (next === undefined || entry.nextAttemptAt < next)) next = entry.nextAttemptAt;
    return next;
  }

  /** For status: each failing action, oldest identity first. */
  status(now: number): FailingActionStatus[] {
    return [...this.entries.values()].map((entry) => ({
      action: entry.action,
      releaseKey: entry.key,
      instanceId: entry.instanceId,
      error: entry.error,
      code: entry.code,
      attempts: entry.attempts,
      terminal: entry.terminal,
      lastFailedAt: new Date(entry.lastFailedAt).toISOString(),
      nextAttemptInMs: entry.nextAttemptAt === null ? null : Math.max(0, entry.nextAttemptAt - now),
    }));
  }
}
