// Table tests for the pure planner: (config, desired, observed, now) → actions, requeue, converged.
// Each row names a behaviour; `actions` is the exact, ordered plan in describeAction's notation.
import { describe, expect, it } from "vitest";
import { AFFINITY_IDLE_MS, failedRetryDelay, plan, replicaCount, restartDecision } from "../../src/reconcile/plan.js";
import type { PlannerConfig, PlannerProcess } from "../../src/reconcile/planner-config.js";
import type { DesiredTarget, ObservedState, Plan } from "../../src/reconcile/types.js";
import { HOUR, MINUTE, SECOND, T, allExited, crashed, describeAction, desired, healthy, keyOf, observed, plannerConfig, release, running, singletonProcess, stopped, stopping, webProcess, workerProcess } from "./plan-fixtures.js";

interface Row {
  name: string;
  config?: PlannerConfig;
  desired: DesiredTarget | null;
  observed: ObservedState;
  now?: number;
  /** The whole plan, in order. */
  actions: string[];
  converged?: boolean;
  /** A number: exactly this; null: no requeue asked for; absent: not checked. */
  requeueAfterMs?: number | null;
  /** Requeue asked for, and no later than this. */
  requeueAtMostMs?: number;
}

function run(row: Pick<Row, "config" | "desired" | "observed" | "now">): Plan {
  return plan(row.config ?? plannerConfig(), row.desired, row.observed, row.now ?? T);
}

function check(row: Row): Plan {
  const result = run(row);
  expect(result.actions.map(describeAction)).toEqual(row.actions);
  if (row.converged !== undefined) expect(result.converged).toBe(row.converged);
  if (row.requeueAfterMs === null) expect(result.requeueAfterMs).toBeUndefined();
  else if (row.requeueAfterMs !== undefined) expect(result.requeueAfterMs).toBe(row.requeueAfterMs);
  if (row.requeueAtMostMs !== undefined) {
    expect(result.requeueAfterMs).toBeDefined();
    expect(result.requeueAfterMs!).toBeLessThanOrEqual(row.requeueAtMostMs);
  }
  return result;
}

const withNonBlockingWorker = plannerConfig({ processes: [webProcess(), workerProcess({ nonBlockingDrain: true })] });
const withSingleton = plannerConfig({ processes: [webProcess(), workerProcess(), singletonProcess("clock")] });

describe("plan: steady state", () => {
  it.each<Row>([
    {
      name: "does nothing and is converged when nothing is desired and nothing runs",
      desired: null,
      observed: observed(null),
      actions: [],
      converged: true,
      requeueAfterMs: null,
    },
    {
      name: "does nothing and is converged when the active release runs every instance ready",
      desired: desired("v1"),
      observed: observed("v1", healthy("v1")),
      actions: [],
      converged: true,
      requeueAfterMs: null,
    },
    {
      name: "stays idle with retained stopped and failed releases whose processes have all exited",
      desired: desired("v3"),
      observed: observed("v3", allExited("v1", "stopped"), allExited("v2", "failed"), healthy("v3")),
      actions: [],
      converged: true,
      requeueAfterMs: null,
    },
    {
      name: "stays idle with a pool of workers that matches the desired replicas",
      desired: desired("v1", { replicas: { worker: 3 } }),
      observed: observed(
        "v1",
        release("v1", "active", [running("worker", { replicaIndex: 0, replicaCount: 3 }), running("worker", { replicaIndex: 1, replicaCount: 3 }), running("worker", { replicaIndex: 2, replicaCount: 3 }), running("web")]),
      ),
      actions: [],
      converged: true,
      requeueAfterMs: null,
    },
    {
      name: "stays idle when desired is stopped and nothing is active any more",
      desired: desired("v1", { stopped: true }),
      observed: observed(null, allExited("v1", "stopped")),
      actions: [],
      converged: true,
      requeueAfterMs: null,
    },
  ])("$name", (row) => {
    check(row);
  });

  it("reports Ready and no Progressing or Degraded condition in the steady state", () => {
    const result = run({ desired: desired("v1"), observed: observed("v1", healthy("v1")) });
    expect(result.conditions).toEqual([expect.objectContaining({ type: "Ready", status: true })]);
  });
});

describe("plan: bringing the desired release forward", () => {
  it.each<Row>([
    {
      name: "creates a release the daemon does not know yet",
      desired: desired("v1"),
      observed: observed(null),
      actions: ["createRelease v1"],
      converged: false,
      requeueAfterMs: 0,
    },
    {
      name: "creates a new desired release while the previous one keeps serving untouched",
      desired: desired("v2"),
      observed: observed("v1", healthy("v1")),
      actions: ["createRelease v2"],
      converged: false,
      requeueAfterMs: 0,
    },
    {
      name: "resumes a stopped release when the desired state rolls back to it",
      desired: desired("v1"),
      observed: observed("v2", allExited("v1", "stopped"), healthy("v2")),
      actions: ["resumeRelease v1"],
      converged: false,
      requeueAfterMs: 0,
    },
    {
      name: "resumes a draining release when the desired state rolls back to it (no drain steps for it)",
      desired: desired("v1"),
      observed: observed("v2", healthy("v1", "draining", { connections: { inflight: 3 } }), healthy("v2")),
      actions: ["resumeRelease v1"],
      converged: false,
      requeueAfterMs: 0,
    },
    {
      name: "tries a new generation at once even while the previous desired release is in its failure backoff",
      desired: desired("v3"),
      observed: observed("v1", healthy("v1"), allExited("v2", "failed", { record: { failure: { reason: "boom", code: "HEALTH_FAILED", at: T - SECOND } } })),
      actions: ["createRelease v3"],
      converged: false,
    },
    {
      name: "switches traffic off and drains the active release when desired says stopped",
      desired: desired("v1", { stopped: true }),
      observed: observed("v1", healthy("v1")),
      actions: ["switchTraffic none from v1", "beginDrain v1"],
      converged: false,
    },
    {
      name: "routes traffic back to the desired release when it is marked active but not routed",
      desired: desired("v1"),
      observed: observed(null, healthy("v1")),
      actions: ["switchTraffic v1 from none"],
      converged: false,
    },
  ])("$name", (row) => {
    check(row);
  });
});

describe("plan: rolling out a starting release", () => {
  it.each<Row>([
    {
      name: "starts the companions first, not the proxied process",
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), release("v2", "starting")),
      actions: ["startProcess v2 worker[0/1] deploy"],
      converged: false,
      requeueAfterMs: 1000,
    },
    {
      name: "starts every replica of a companion pool before the proxied process",
      desired: desired("v1", { replicas: { worker: 2 } }),
      observed: observed(null, release("v1", "starting")),
      actions: ["startProcess v1 worker[0/2] deploy", "startProcess v1 worker[1/2] deploy"],
      converged: false,
    },
    {
      name: "waits while a companion slot is known but not spawned yet",
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), release("v2", "starting", [running("worker", { phase: "absent", pid: undefined })])),
      actions: [],
      converged: false,
      requeueAfterMs: 1000,
    },
    {
      name: "starts the proxied process once every companion has been spawned (not yet ready is fine)",
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), release("v2", "starting", [running("worker", { phase: "starting" })])),
      actions: ["startProcess v2 web[0/1] deploy"],
      converged: false,
      requeueAfterMs: 1000,
    },
    {
      name: "starts the proxied process at once when the desired replicas turn the companion off",
      desired: desired("v1", { replicas: { worker: 0 } }),
      observed: observed(null, release("v1", "starting")),
      actions: ["startProcess v1 web[0/1] deploy"],
      converged: false,
    },
    {
      name: "keeps traffic on the previous release while the proxied instance's health check is pending",
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), release("v2", "starting", [running("worker"), running("web", { phase: "starting", health: "pending" })])),
      actions: [],
      converged: false,
      requeueAfterMs: 1000,
    },
    {
      name: "switches traffic to the new release once its proxied instance is ready, then drains the previous one",
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), healthy("v2", "starting")),
      actions: ["switchTraffic v2 from v1", "beginDrain v1"],
      converged: false,
      requeueAfterMs: 0,
    },
    {
      name: "switches traffic on the first deploy with nothing to drain",
      desired: desired("v1"),
      observed: observed(null, healthy("v1", "starting")),
      actions: ["switchTraffic v1 from none"],
      converged: false,
      requeueAfterMs: 0,
    },
    {
      name: "waits for every proxied replica to be ready before switching",
      desired: desired("v1", { replicas: { web: 2 } }),
      observed: observed(null, release("v1", "starting", [running("worker"), running("web", { replicaIndex: 0, replicaCount: 2 }), running("web", { replicaIndex: 1, replicaCount: 2, health: "pending" })])),
      actions: [],
      converged: false,
      requeueAfterMs: 1000,
    },
    {
      name: "starts the missing proxied replica instead of switching with only part of the pool",
      desired: desired("v1", { replicas: { web: 2 } }),
      observed: observed(null, release("v1", "starting", [running("worker"), running("web", { replicaIndex: 0, replicaCount: 2 })])),
      actions: ["startProcess v1 web[1/2] deploy"],
      converged: false,
    },
    {
      name: "does not start singletons during the rollout; switches once web is ready",
      config: withSingleton,
      desired: desired("v2"),
      observed: observed("v1", release("v1", "active", [running("worker"), running("web"), running("clock")]), healthy("v2", "starting")),
      actions: ["switchTraffic v2 from v1", "beginDrain v1"],
      converged: false,
    },
    {
      name: "forgets leftovers of an earlier attempt that have exited, and starts the slot afresh",
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), release("v2", "starting", [stopped("worker")])),
      actions: ["forgetProcess v2 worker", "startProcess v2 worker[0/1] deploy"],
      converged: false,
    },
    {
      name: "waits for leftovers of an earlier attempt to stop before starting anything",
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), release("v2", "starting", [stopping("worker")])),
      actions: [],
      converged: false,
      requeueAfterMs: 100,
    },
  ])("$name", (row) => {
    check(row);
  });
});

describe("plan: a rollout that fails keeps the previous release active", () => {
  it.each<Row>([
    {
      name: "fails the rollout when a companion exits before the release is ready, and stops what it started",
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), release("v2", "starting", [crashed("worker", T - 100), running("web", { phase: "starting", health: "pending" })])),
      actions: ["markFailed v2 PROCESS_EXITED worker", "stopProcess v2 web"],
      converged: false,
      requeueAfterMs: 0,
    },
    {
      name: "fails the rollout when the proxied process cannot be spawned",
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), release("v2", "starting", [running("worker"), running("web", { phase: "exited", pid: undefined, health: "none", spawnError: "spawn ENOENT" })])),
      actions: ["markFailed v2 SPAWN_FAILED web", "stopProcess v2 worker"],
      converged: false,
    },
    {
      name: "fails the rollout when a slot fails before it gets a pid (e.g. no free port)",
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), release("v2", "starting", [running("worker"), running("web", { phase: "absent", pid: undefined, health: "none", spawnError: "no free port" })])),
      actions: ["markFailed v2 SPAWN_FAILED web", "stopProcess v2 worker"],
      converged: false,
    },
    {
      name: "keeps the previous release active when the new one fails its health check",
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), release("v2", "starting", [running("worker"), running("web", { health: "failed", healthReason: "GET /ping: 500" })])),
      actions: ["markFailed v2 HEALTH_FAILED web", "stopProcess v2 worker", "stopProcess v2 web"],
      converged: false,
    },
    {
      name: "fails the rollout with LISTENER_NOT_OWNED when another process holds the new instance's port",
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), release("v2", "starting", [running("worker"), running("web", { health: "failed", healthReason: "web's port is held by pid 9 (uid 1001)", healthCode: "LISTENER_NOT_OWNED" })])),
      actions: ["markFailed v2 LISTENER_NOT_OWNED web", "stopProcess v2 worker", "stopProcess v2 web"],
      converged: false,
    },
    {
      name: "fails a first deploy with nothing active without switching traffic anywhere",
      desired: desired("v1"),
      observed: observed(null, release("v1", "starting", [running("worker"), running("web", { health: "failed" })])),
      actions: ["markFailed v1 HEALTH_FAILED web", "stopProcess v1 worker", "stopProcess v1 web"],
      converged: false,
    },
    {
      name: "an abandoned rollout (apply --wait --timeout) that the desired file went back from ends failed, not superseded, and its processes stop",
      desired: desired("v1"),
      observed: { ...observed("v1", healthy("v1"), release("v2", "starting", [running("worker"), running("web", { phase: "starting", health: "pending" })])), abandoned: { [keyOf("v2")]: "not ready within 1500 ms (--timeout)" } },
      actions: ["markFailed v2 TIMEOUT -", "stopProcess v2 worker", "stopProcess v2 web"],
      converged: false,
      requeueAfterMs: 0,
    },
    {
      name: "an abandoned rollout the desired file still names (its rewrite failed) ends failed too, instead of going on",
      desired: desired("v2"),
      observed: { ...observed("v1", healthy("v1"), release("v2", "starting", [running("worker")])), abandoned: { [keyOf("v2")]: "not ready within 1500 ms (--timeout)" } },
      actions: ["markFailed v2 TIMEOUT -", "stopProcess v2 worker"],
      converged: false,
      requeueAfterMs: 0,
    },
    {
      name: "an abandon of a release that is no longer starting (it switched meanwhile) changes nothing",
      desired: desired("v1"),
      observed: { ...observed("v1", healthy("v1")), abandoned: { [keyOf("v1")]: "not ready within 1500 ms (--timeout)" } },
      actions: [],
      converged: true,
    },
  ])("$name", (row) => {
    check(row);
  });

  it("an abandoned rollout's failure names the release, the reason and TIMEOUT, and its processes stop as 'release failed'", () => {
    const result = run({
      desired: desired("v1"),
      observed: { ...observed("v1", healthy("v1"), release("v2", "starting", [running("worker")])), abandoned: { [keyOf("v2")]: "not ready within 1500 ms (--timeout)" } },
    });
    expect(result.actions[0]).toEqual({ type: "markFailed", key: keyOf("v2"), failure: { reason: "rollout of v2 abandoned: not ready within 1500 ms (--timeout)", code: "TIMEOUT" } });
    expect(result.actions[1]).toMatchObject({ type: "stopProcess", key: keyOf("v2"), kind: "retire", reason: "release failed" });
  });

  it("carries the health check reason into the release failure and stops with reason 'rollout failed'", () => {
    const result = run({
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), release("v2", "starting", [running("worker"), running("web", { health: "failed", healthReason: "GET /ping: 500" })])),
    });
    expect(result.actions[0]).toEqual({ type: "markFailed", key: keyOf("v2"), failure: { reason: "GET /ping: 500", code: "HEALTH_FAILED", instanceId: "web" } });
    for (const action of result.actions.slice(1)) expect(action).toMatchObject({ type: "stopProcess", key: keyOf("v2"), kind: "retire", reason: "rollout failed" });
  });

  it("names the exit code of a process that exited during the rollout", () => {
    const result = run({ desired: desired("v2"), observed: observed("v1", healthy("v1"), release("v2", "starting", [crashed("worker", T - 100)])) });
    expect(result.actions[0]).toMatchObject({ type: "markFailed", failure: { code: "PROCESS_EXITED", reason: "worker exited with code 1 before it became ready" } });
  });

  it("says what the shell meant by exit codes 127 and 126", () => {
    const exitedWith = (code: number) =>
      run({ desired: desired("v2"), observed: observed("v1", healthy("v1"), release("v2", "starting", [crashed("worker", T - 100, { exit: { code, signal: null, at: T - 100, requested: false } })])) }).actions[0];
    expect(exitedWith(127)).toMatchObject({ failure: { reason: "worker exited with code 127 (the shell could not find a command) before it became ready" } });
    expect(exitedWith(126)).toMatchObject({ failure: { reason: "worker exited with code 126 (the shell could not execute a command: permission denied) before it became ready" } });
  });
});

describe("plan: a failed desired release is retried with backoff", () => {
  const failedAt = (at: number, failedAttempts = 1) => ({ record: { failedAttempts, failure: { reason: "boom", code: "HEALTH_FAILED" as const, at } } });

  it.each<Row>([
    {
      name: "does not resume a failed release before its retry backoff has passed",
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), allExited("v2", "failed", failedAt(T - 4 * SECOND))),
      actions: [],
      converged: false,
      requeueAfterMs: 6_000,
    },
    {
      name: "resumes a failed release once its retry backoff has passed and its processes have exited",
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), allExited("v2", "failed", failedAt(T - 10 * SECOND))),
      actions: ["resumeRelease v2"],
      converged: false,
      requeueAfterMs: 0,
    },
    {
      name: "doubles the retry backoff per consecutive failure (third failure waits 40 s)",
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), allExited("v2", "failed", failedAt(T - 30 * SECOND, 3))),
      actions: [],
      converged: false,
      requeueAfterMs: 10_000,
    },
    {
      name: "caps the retry backoff at five minutes",
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), allExited("v2", "failed", failedAt(T - 5 * MINUTE, 12))),
      actions: ["resumeRelease v2"],
      converged: false,
    },
    {
      name: "does not resume a failed release past its backoff while one of its processes is still stopping",
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), release("v2", "failed", [stopped("worker"), stopping("web")], failedAt(T - MINUTE))),
      actions: [],
      converged: false,
      requeueAfterMs: 100,
    },
    {
      name: "stops an instance of the failed release that is still running",
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), release("v2", "failed", [running("worker"), stopped("web")], failedAt(T - SECOND))),
      actions: ["stopProcess v2 worker"],
      converged: false,
    },
  ])("$name", (row) => {
    check(row);
  });

  it.each([
    { attempts: 0, delay: 10_000 },
    { attempts: 1, delay: 10_000 },
    { attempts: 2, delay: 20_000 },
    { attempts: 3, delay: 40_000 },
    { attempts: 5, delay: 160_000 },
    { attempts: 6, delay: 300_000 },
    { attempts: 20, delay: 300_000 },
  ])("failedRetryDelay waits $delay ms after $attempts failed attempts", ({ attempts, delay }) => {
    expect(failedRetryDelay(plannerConfig(), attempts)).toBe(delay);
  });

  it("reports the rollout failure as Degraded while the failed release waits", () => {
    const result = run({ desired: desired("v2"), observed: observed("v1", healthy("v1"), allExited("v2", "failed", failedAt(T - SECOND))) });
    expect(result.conditions).toContainEqual(expect.objectContaining({ type: "Degraded", status: true, reason: "RolloutFailed" }));
  });
});

describe("plan: supervising the active release", () => {
  it.each<Row>([
    {
      name: "waits out the restart delay before restarting a crashed instance",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [running("worker"), crashed("web", T - 400)])),
      actions: [],
      converged: false,
      requeueAfterMs: 600,
    },
    {
      name: "restarts a crashed instance once restartDelayMs has passed",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [running("worker"), crashed("web", T - 1_000)])),
      actions: ["startProcess v1 web[0/1] crash"],
      converged: false,
    },
    {
      name: "restarts a crashed companion without touching the healthy proxied instance",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [crashed("worker", T - 500), running("web")])),
      actions: ["startProcess v1 worker[0/1] crash"],
      converged: false,
    },
    {
      name: "grows the restart delay with backoffFactor per recent restart (one restart: 2 s)",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [running("worker"), crashed("web", T - 1_500, { restarts: 1, restartTimes: [T - 10 * SECOND] })])),
      actions: [],
      converged: false,
      requeueAfterMs: 500,
    },
    {
      name: "caps the growing restart delay at maxDelayMs (two restarts: 4 s capped to 3 s)",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [running("worker"), crashed("web", T - 1_000, { restarts: 2, restartTimes: [T - 20 * SECOND, T - 10 * SECOND] })])),
      actions: [],
      converged: false,
      requeueAfterMs: 2_000,
    },
    {
      name: "marks an instance failed once maxRestarts restarts happened within windowMs",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [running("worker"), crashed("web", T - MINUTE, { restarts: 3, restartTimes: [T - 30 * SECOND, T - 20 * SECOND, T - 10 * SECOND] })])),
      actions: ["markProcessFailed v1 web"],
      converged: false,
    },
    {
      name: "does not count restarts older than windowMs toward maxRestarts",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [running("worker"), crashed("web", T - 5 * SECOND, { restarts: 3, restartTimes: [T - 2 * MINUTE, T - 20 * SECOND, T - 10 * SECOND] })])),
      actions: ["startProcess v1 web[0/1] crash"],
      converged: false,
    },
    {
      name: "keeps restarting a process with no restart limit however often it crashed",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [crashed("worker", T - 500, { restarts: 50, restartTimes: Array.from({ length: 50 }, (_, i) => T - (i + 1) * SECOND) }), running("web")])),
      actions: ["startProcess v1 worker[0/1] crash"],
      converged: false,
    },
    {
      name: "leaves an instance that reached its restart limit down and asks for nothing more",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [running("worker"), crashed("web", T - MINUTE, { restarts: 3, failed: true })])),
      actions: [],
      requeueAfterMs: null,
    },
    {
      name: "stops a restarted proxied instance that failed its health check, so it is restarted as a crash",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [running("worker"), running("web", { health: "failed", restarts: 1, lastStartReason: "crash" })])),
      actions: ["stopProcess v1 web"],
      converged: false,
    },
    {
      name: "does not stop again an unhealthy restarted proxied instance that is already stopping",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [running("worker"), running("web", { phase: "stopping", health: "failed", restarts: 1, lastStartReason: "crash" })])),
      actions: [],
      converged: false,
    },
    {
      name: "waits for a restarted proxied instance to become ready",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [running("worker"), running("web", { phase: "starting", health: "pending", restarts: 1, lastStartReason: "crash" })])),
      actions: [],
      converged: false,
      requeueAfterMs: 1000,
    },
    {
      name: "restarts an instance whose respawn failed before it got a pid, once its backoff has passed",
      desired: desired("v1"),
      observed: observed(
        "v1",
        release("v1", "active", [running("worker"), running("web", { phase: "absent", pid: undefined, health: "none", spawnError: "no free port in 3000-3010", restarts: 1, restartTimes: [T - 30 * SECOND], startedAt: T - 30 * SECOND })]),
      ),
      actions: ["startProcess v1 web[0/1] crash"],
      converged: false,
    },
  ])("$name", (row) => {
    check(row);
  });

  it("asks for the restart-on-unhealthy as a restart, not a retirement", () => {
    const result = run({ desired: desired("v1"), observed: observed("v1", release("v1", "active", [running("worker"), running("web", { health: "failed" })])) });
    expect(result.actions).toEqual([{ type: "stopProcess", key: keyOf("v1"), instanceId: "web", kind: "restart", reason: "restart: health check failed" }]);
  });

  it("reports a process past its restart limit as Degraded", () => {
    const result = run({ desired: desired("v1"), observed: observed("v1", release("v1", "active", [running("worker"), crashed("web", T - MINUTE, { failed: true })])) });
    expect(result.conditions).toContainEqual(expect.objectContaining({ type: "Degraded", status: true, reason: "ProcessFailed" }));
  });
});

describe("restartDecision", () => {
  const proc = webProcess({ restartDelayMs: 1_000, restart: { maxRestarts: 3, windowMs: MINUTE, backoffFactor: 2, maxDelayMs: 3_000 } });
  const unlimited = workerProcess({ restartDelayMs: 250, restart: { windowMs: 0, backoffFactor: 1.5, maxDelayMs: 0 } });
  const none = workerProcess({ restart: { maxRestarts: 0, windowMs: 0, backoffFactor: 1, maxDelayMs: 0 } });

  it.each([
    { name: "first crash waits restartDelayMs", proc, times: [], expected: { giveUp: false, delayMs: 1_000 } },
    { name: "one recent restart doubles the delay", proc, times: [T - SECOND], expected: { giveUp: false, delayMs: 2_000 } },
    { name: "two recent restarts are capped at maxDelayMs", proc, times: [T - 2 * SECOND, T - SECOND], expected: { giveUp: false, delayMs: 3_000 } },
    { name: "maxRestarts recent restarts give up", proc, times: [T - 3 * SECOND, T - 2 * SECOND, T - SECOND], expected: { giveUp: true, delayMs: 0 } },
    { name: "restarts outside windowMs neither count nor back off", proc, times: [T - 3 * MINUTE, T - 2 * MINUTE, T - MINUTE], expected: { giveUp: false, delayMs: 1_000 } },
    { name: "windowMs 0 counts the whole lifetime, with no cap when maxDelayMs is 0", proc: unlimited, times: [T - HOUR, T - MINUTE, T - SECOND], expected: { giveUp: false, delayMs: 844 } },
    { name: "maxRestarts 0 gives up on the first crash", proc: none, times: [], expected: { giveUp: true, delayMs: 0 } },
  ])("$name", ({ proc: p, times, expected }) => {
    expect(restartDecision(p, crashed(p.id, T, { restartTimes: times }), T)).toEqual(expected);
  });
});

describe("plan: replica counts follow the desired file", () => {
  it.each<Row>([
    {
      name: "scales a companion up by starting the missing replica indices",
      desired: desired("v1", { replicas: { worker: 3 } }),
      observed: observed("v1", healthy("v1")),
      actions: ["startProcess v1 worker[1/3] scale", "startProcess v1 worker[2/3] scale"],
      converged: false,
    },
    {
      name: "scales a companion down by stopping the highest replica indices",
      desired: desired("v1", { replicas: { worker: 1 } }),
      observed: observed(
        "v1",
        release("v1", "active", [running("worker", { replicaIndex: 0, replicaCount: 3 }), running("worker", { replicaIndex: 1, replicaCount: 3 }), running("worker", { replicaIndex: 2, replicaCount: 3 }), running("web")]),
      ),
      actions: ["stopProcess v1 worker#1", "stopProcess v1 worker#2"],
      converged: false,
      requeueAfterMs: 100,
    },
    {
      name: "forgets a surplus replica that has already exited instead of stopping it",
      desired: desired("v1", { replicas: { worker: 1 } }),
      observed: observed("v1", release("v1", "active", [running("worker", { replicaIndex: 0, replicaCount: 2 }), crashed("worker", T - SECOND, { replicaIndex: 1, replicaCount: 2 }), running("web")])),
      actions: ["forgetProcess v1 worker#1"],
      converged: false,
    },
    {
      name: "forgets a scaled-down replica once it has stopped",
      desired: desired("v1", { replicas: { worker: 1 } }),
      observed: observed("v1", release("v1", "active", [running("worker", { replicaIndex: 0, replicaCount: 2 }), stopped("worker", { replicaIndex: 1, replicaCount: 2 }), running("web")])),
      actions: ["forgetProcess v1 worker#1"],
    },
    {
      name: "does not stop a scaled-down replica again while it is stopping",
      desired: desired("v1", { replicas: { worker: 1 } }),
      observed: observed("v1", release("v1", "active", [running("worker", { replicaIndex: 0, replicaCount: 2 }), stopping("worker", { replicaIndex: 1, replicaCount: 2 }), running("web")])),
      actions: [],
    },
    {
      name: "scales a companion to zero when the desired file says 0",
      desired: desired("v1", { replicas: { worker: 0 } }),
      observed: observed("v1", healthy("v1")),
      actions: ["stopProcess v1 worker"],
      converged: false,
    },
    {
      name: "adds a proxied replica when the desired file asks for more web workers",
      desired: desired("v1", { replicas: { web: 2 } }),
      observed: observed("v1", healthy("v1")),
      actions: ["startProcess v1 web[1/2] scale"],
      converged: false,
    },
    {
      name: "ignores a proxied replicas override below 1",
      desired: desired("v1", { replicas: { web: 0 } }),
      observed: observed("v1", healthy("v1")),
      actions: [],
      converged: true,
      requeueAfterMs: null,
    },
  ])("$name", (row) => {
    check(row);
  });

  it.each<{ name: string; proc: PlannerProcess; replicas: Record<string, number>; expected: number }>([
    { name: "config value without an override", proc: workerProcess({ replicas: 2 }), replicas: {}, expected: 2 },
    { name: "companion override", proc: workerProcess({ replicas: 2 }), replicas: { worker: 5 }, expected: 5 },
    { name: "companion override 0", proc: workerProcess({ replicas: 2 }), replicas: { worker: 0 }, expected: 0 },
    { name: "proxied override", proc: webProcess(), replicas: { web: 3 }, expected: 3 },
    { name: "proxied override 0 falls back to config", proc: webProcess(), replicas: { web: 0 }, expected: 1 },
    { name: "proxied override -1 falls back to config", proc: webProcess(), replicas: { web: -1 }, expected: 1 },
    { name: "singleton override ignored", proc: workerProcess({ id: "scheduler", policy: "singleton" }), replicas: { scheduler: 2 }, expected: 1 },
    { name: "service override ignored", proc: workerProcess({ id: "broker", policy: "service" }), replicas: { broker: 3 }, expected: 1 },
  ])("replicaCount: $name → $expected", ({ proc, replicas, expected }) => {
    expect(replicaCount(plannerConfig(), desired("v1", { replicas }), proc)).toBe(expected);
  });
});

describe("plan: draining the previous release", () => {
  const deadline = (at: number) => ({ drainDeadline: at });

  it.each<Row>([
    {
      name: "leaves a draining release running while it has open connections before the deadline",
      desired: desired("v2"),
      observed: observed("v2", healthy("v1", "draining", { connections: { inflight: 2, websockets: 1 } }), healthy("v2")),
      actions: [],
      converged: false,
      requeueAfterMs: 100,
    },
    {
      name: "polls no later than the drain deadline",
      desired: desired("v2"),
      observed: observed("v2", healthy("v1", "draining", { connections: { websockets: 1 }, record: deadline(T + 40) }), healthy("v2")),
      actions: [],
      converged: false,
      requeueAfterMs: 40,
    },
    {
      name: "stops every live instance once the connections reach zero",
      desired: desired("v2"),
      observed: observed("v2", healthy("v1", "draining"), healthy("v2")),
      actions: ["stopProcess v1 worker", "stopProcess v1 web"],
      converged: false,
      requeueAtMostMs: 100,
    },
    {
      name: "keeps draining with nothing in flight while pinned clients came back within AFFINITY_IDLE_MS",
      desired: desired("v2"),
      observed: observed("v2", healthy("v1", "draining", { connections: { lastPinnedAt: T - AFFINITY_IDLE_MS + 1 } }), healthy("v2")),
      actions: [],
      converged: false,
      requeueAfterMs: 100,
    },
    {
      name: "stops a drained release whose pinned clients stopped coming",
      desired: desired("v2"),
      observed: observed("v2", healthy("v1", "draining", { connections: { lastPinnedAt: T - AFFINITY_IDLE_MS } }), healthy("v2")),
      actions: ["stopProcess v1 worker", "stopProcess v1 web"],
      converged: false,
      requeueAtMostMs: 100,
    },
    {
      name: "with affinity, gives pinned clients AFFINITY_IDLE_MS after the drain starts to come back",
      desired: desired("v2"),
      config: plannerConfig({ affinity: true }),
      observed: observed("v2", healthy("v1", "draining", { record: { drainStartedAt: T - AFFINITY_IDLE_MS + 1 } }), healthy("v2")),
      actions: [],
      converged: false,
      requeueAfterMs: 100,
    },
    {
      name: "with affinity, ends an idle drain AFFINITY_IDLE_MS after it started",
      desired: desired("v2"),
      config: plannerConfig({ affinity: true }),
      observed: observed("v2", healthy("v1", "draining", { record: { drainStartedAt: T - AFFINITY_IDLE_MS } }), healthy("v2")),
      actions: ["stopProcess v1 worker", "stopProcess v1 web"],
      converged: false,
      requeueAtMostMs: 100,
    },
    {
      name: "ends the drain at the deadline even while pinned clients keep coming",
      desired: desired("v2"),
      observed: observed("v2", healthy("v1", "draining", { connections: { lastPinnedAt: T }, record: deadline(T - 1) }), healthy("v2")),
      actions: ["stopProcess v1 worker", "stopProcess v1 web"],
      converged: false,
    },
    {
      name: "closes the remaining connections first, then stops, once the drain deadline passes",
      desired: desired("v2"),
      observed: observed("v2", healthy("v1", "draining", { connections: { inflight: 1, websockets: 4 }, record: deadline(T - 1) }), healthy("v2")),
      actions: ["closeConnections v1", "stopProcess v1 worker", "stopProcess v1 web"],
      converged: false,
    },
    {
      name: "waits for the stopping instances of a drained release to exit",
      desired: desired("v2"),
      observed: observed("v2", release("v1", "draining", [stopped("worker"), stopping("web")]), healthy("v2")),
      actions: [],
      converged: false,
      requeueAfterMs: 100,
    },
    {
      name: "marks a drained release stopped once all its instances have exited",
      desired: desired("v2"),
      observed: observed("v2", allExited("v1", "draining"), healthy("v2")),
      actions: ["markStopped v1"],
      converged: false,
    },
    {
      name: "does not restart a crashed instance of a draining release",
      desired: desired("v2"),
      observed: observed("v2", release("v1", "draining", [running("worker"), crashed("web", T - MINUTE)], { connections: { inflight: 1 } }), healthy("v2")),
      actions: [],
      converged: false,
      requeueAfterMs: 100,
    },
    {
      name: "stops nonBlockingDrain companions as soon as the drain starts, even with open connections",
      config: withNonBlockingWorker,
      desired: desired("v2"),
      observed: observed("v2", healthy("v1", "draining", { connections: { inflight: 3 } }), healthy("v2")),
      actions: ["stopProcess v1 worker"],
      converged: false,
      requeueAfterMs: 100,
    },
    {
      name: "stops each instance exactly once when a drain with a nonBlockingDrain companion has no open connections",
      config: withNonBlockingWorker,
      desired: desired("v2"),
      observed: observed("v2", healthy("v1", "draining"), healthy("v2")),
      actions: ["stopProcess v1 worker", "stopProcess v1 web"],
      converged: false,
    },
    {
      name: "drains an active-state release that no longer receives traffic",
      desired: desired("v2"),
      observed: observed("v2", healthy("v1", "active"), healthy("v2")),
      actions: ["beginDrain v1"],
      converged: false,
    },
    {
      name: "stops a stopped release's instance that is somehow still running",
      desired: desired("v2"),
      observed: observed("v2", release("v1", "stopped", [running("worker"), stopped("web")]), healthy("v2")),
      actions: ["stopProcess v1 worker"],
      converged: false,
      requeueAfterMs: 100,
    },
  ])("$name", (row) => {
    check(row);
  });

  it("stops drained instances with reason 'release retired'", () => {
    const result = run({ desired: desired("v2"), observed: observed("v2", healthy("v1", "draining"), healthy("v2")) });
    for (const action of result.actions) expect(action).toMatchObject({ type: "stopProcess", key: keyOf("v1"), kind: "retire", reason: "release retired" });
  });
});

describe("plan: releases that should not run", () => {
  it.each<Row>([
    {
      name: "stops the processes of a starting release superseded by a newer desired release",
      desired: desired("v3"),
      observed: observed("v1", healthy("v1"), release("v2", "starting", [running("worker"), running("web", { phase: "starting", health: "pending" })])),
      actions: ["createRelease v3", "stopProcess v2 worker", "stopProcess v2 web"],
      converged: false,
    },
    {
      name: "stops a starting release when the desired state moves back to the active release",
      desired: desired("v1"),
      observed: observed("v1", healthy("v1"), release("v2", "starting", [running("worker")])),
      actions: ["stopProcess v2 worker"],
      converged: false,
      requeueAfterMs: 100,
    },
    {
      name: "marks a superseded starting release stopped once its processes have exited",
      desired: desired("v1"),
      observed: observed("v1", healthy("v1"), allExited("v2", "starting")),
      actions: ["markStopped v2"],
      converged: false,
    },
    {
      name: "waits for a superseded starting release's processes to exit before marking it stopped",
      desired: desired("v1"),
      observed: observed("v1", healthy("v1"), release("v2", "starting", [stopped("worker"), stopping("web")])),
      actions: [],
      converged: false,
      requeueAfterMs: 100,
    },
    {
      name: "stops a starting release when the desired state says stopped",
      desired: desired("v2", { stopped: true }),
      observed: observed(null, release("v2", "starting", [running("worker")])),
      actions: ["stopProcess v2 worker"],
      converged: false,
    },
  ])("$name", (row) => {
    check(row);
  });
});

describe("plan: singletons move only when the old one is gone", () => {
  it.each<Row>([
    {
      name: "stops the old singleton at drain start and does not start the new one while it runs",
      config: withSingleton,
      desired: desired("v2"),
      observed: observed("v2", release("v1", "draining", [running("worker"), running("web"), running("clock")], { connections: { inflight: 1 } }), release("v2", "active", [running("worker"), running("web")])),
      actions: ["stopProcess v1 clock"],
      converged: false,
      requeueAfterMs: 100,
    },
    {
      name: "waits while the old singleton is stopping",
      config: withSingleton,
      desired: desired("v2"),
      observed: observed("v2", release("v1", "draining", [running("worker"), running("web"), stopping("clock")], { connections: { inflight: 1 } }), release("v2", "active", [running("worker"), running("web")])),
      actions: [],
      converged: false,
      requeueAfterMs: 100,
    },
    {
      name: "starts the new singleton once the old one has exited",
      config: withSingleton,
      desired: desired("v2"),
      observed: observed("v2", release("v1", "draining", [running("worker"), running("web"), stopped("clock")], { connections: { inflight: 1 } }), release("v2", "active", [running("worker"), running("web")])),
      actions: ["startProcess v2 clock[0/1] deploy"],
      converged: false,
    },
  ])("$name", (row) => {
    check(row);
  });
});

describe("plan: release retention", () => {
  const retired = (id: string, stoppedAt: number) => allExited(id, "stopped", { record: { stoppedAt } });

  it.each<Row>([
    {
      name: "prunes the oldest stopped releases beyond keep",
      config: plannerConfig({ retention: { keep: 2, maxAgeMs: 0 } }),
      desired: desired("v5"),
      observed: observed("v5", retired("v1", T - 4 * MINUTE), retired("v3", T - 2 * MINUTE), retired("v2", T - 3 * MINUTE), retired("v4", T - MINUTE), healthy("v5")),
      actions: ["pruneRelease v1", "pruneRelease v2"],
    },
    {
      name: "prunes stopped releases older than maxAgeMs even within keep",
      config: plannerConfig({ retention: { keep: 10, maxAgeMs: HOUR } }),
      desired: desired("v3"),
      observed: observed("v3", retired("v1", T - 2 * HOUR), retired("v2", T - MINUTE), healthy("v3")),
      actions: ["pruneRelease v1"],
    },
    {
      name: "keeps every stopped release when maxAgeMs is 0 and keep is not reached",
      config: plannerConfig({ retention: { keep: 10, maxAgeMs: 0 } }),
      desired: desired("v3"),
      observed: observed("v3", retired("v1", T - 100 * HOUR), retired("v2", T - MINUTE), healthy("v3")),
      actions: [],
    },
    {
      name: "never prunes the desired release, even when it is the oldest stopped one (a rollback)",
      config: plannerConfig({ retention: { keep: 1, maxAgeMs: HOUR } }),
      desired: desired("v1"),
      observed: observed("v4", retired("v1", T - 5 * HOUR), retired("v2", T - 3 * MINUTE), retired("v3", T - 2 * MINUTE), healthy("v4")),
      actions: ["resumeRelease v1", "pruneRelease v2"],
    },
    {
      name: "never prunes a failed desired release waiting for its retry",
      config: plannerConfig({ retention: { keep: 0, maxAgeMs: 0 } }),
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), allExited("v2", "failed")),
      actions: [],
    },
    {
      name: "does not prune a stopped release whose processes are still stopping",
      config: plannerConfig({ retention: { keep: 0, maxAgeMs: 0 } }),
      desired: desired("v2"),
      observed: observed("v2", release("v1", "stopped", [stopped("worker"), stopping("web")]), healthy("v2")),
      actions: [],
    },
    {
      name: "never prunes the active or a draining release",
      config: plannerConfig({ retention: { keep: 0, maxAgeMs: 1 } }),
      desired: desired("v2"),
      observed: observed("v2", healthy("v1", "draining", { connections: { inflight: 1 } }), healthy("v2")),
      actions: [],
    },
  ])("$name", (row) => {
    const result = run(row);
    // Which releases go is the contract; the order of the prune actions is not.
    expect(result.actions.map(describeAction).sort()).toEqual([...row.actions].sort());
  });
});

describe("plan: the release traffic is leaving is not supervised in the same pass", () => {
  it.each<Row>([
    {
      name: "does not restart a crashed instance of the release it is switching traffic away from",
      desired: desired("v2"),
      observed: observed("v1", release("v1", "active", [crashed("worker", T - MINUTE), running("web")]), healthy("v2", "starting")),
      actions: ["switchTraffic v2 from v1", "beginDrain v1"],
      converged: false,
    },
    {
      name: "does not restart a crashed instance of the release that desired stopped drains",
      desired: desired("v1", { stopped: true }),
      observed: observed("v1", release("v1", "active", [crashed("worker", T - MINUTE), running("web")])),
      actions: ["switchTraffic none from v1", "beginDrain v1"],
      converged: false,
    },
  ])("$name", (row) => {
    check(row);
  });
});

describe("asked-for restarts and replacements", () => {
  const webs = (extra: Partial<Parameters<typeof running>[1]>[] = [{}, {}]) => extra.map((patch, i) => running("web", { replicaIndex: i, replicaCount: extra.length, ...patch }));
  const twoWebs = plannerConfig({ processes: [webProcess({ replicas: 2 }), workerProcess()] });

  it.each<Row>([
    {
      name: "restarts an ungated process by stopping it, keeping its slot",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [running("worker", { pendingRestart: "manual" }), running("web")])),
      actions: ["stopProcess v1 worker"],
      converged: false,
    },
    {
      name: "starts an ungated process again at once after its asked-for stop, with the asked reason",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [stopped("worker", { stopRequested: false, pendingRestart: "memory" }), running("web")])),
      actions: ["startProcess v1 worker[0/1] memory"],
      converged: false,
    },
    {
      name: "starts a successor for a proxied process before touching it",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [running("worker"), running("web", { pendingRestart: "manual" })])),
      actions: ["startSuccessor v1 web"],
      converged: false,
    },
    {
      name: "waits while the successor is not ready",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [running("worker"), running("web", { pendingRestart: "manual", successor: { phase: "starting", health: "pending" } })])),
      actions: [],
      converged: false,
      requeueAfterMs: 1000,
    },
    {
      name: "promotes a ready successor",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [running("worker"), running("web", { pendingRestart: "requested", successor: { phase: "running", health: "ready" } })])),
      actions: ["promoteSuccessor v1 web"],
      converged: false,
    },
    {
      name: "abandons a successor that failed its health check and keeps the running process",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [running("worker"), running("web", { pendingRestart: "manual", successor: { phase: "running", health: "failed", healthReason: "no 2xx" } })])),
      actions: ["abandonSuccessor v1 web"],
    },
    {
      name: "replaces proxied replicas one at a time",
      config: twoWebs,
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [running("worker"), ...webs([{ pendingRestart: "manual" }, { pendingRestart: "manual" }])])),
      actions: ["startSuccessor v1 web#0"],
      converged: false,
    },
    {
      name: "does not start a second replacement while one is under way",
      config: twoWebs,
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [running("worker"), ...webs([{ pendingRestart: "manual", successor: { phase: "starting", health: "pending" } }, { pendingRestart: "manual" }])])),
      actions: [],
      converged: false,
    },
    {
      name: "replaces the proxied process only once the ungated restarts asked with it have started (restart of everything)",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [running("worker", { pendingRestart: "manual" }), running("web", { pendingRestart: "manual" })])),
      actions: ["stopProcess v1 worker"],
      converged: false,
      requeueAtMostMs: 100,
    },
    {
      name: "waits for a restarting service too before replacing the proxied process",
      config: plannerConfig({ processes: [workerProcess({ id: "broker", policy: "service" }), webProcess(), workerProcess()] }),
      desired: desired("v1"),
      observed: {
        ...observed("v1", release("v1", "active", [running("worker"), running("web", { pendingRestart: "manual" })])),
        services: [stopped("broker", { stopRequested: false, pendingRestart: "manual", releaseKey: "@services" })],
      },
      actions: ["startProcess @services broker[0/1] manual"],
      converged: false,
    },
    {
      name: "starts the proxied replacement once the other restarted processes have been started again",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [running("worker", { lastStartReason: "manual", pid: 4100 }), running("web", { pendingRestart: "manual" })])),
      actions: ["startSuccessor v1 web"],
      converged: false,
    },
    {
      name: "lets a retiring process finish its requests before stopping it",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [running("worker"), running("web", { retiring: [{ pid: 77, phase: "running", outstanding: 3, since: T - SECOND, stopRequested: false }] })])),
      actions: [],
      converged: false,
      requeueAfterMs: 100,
    },
    {
      name: "stops a retiring process once idle, and forgets it once exited",
      desired: desired("v1"),
      observed: observed(
        "v1",
        release("v1", "active", [
          running("worker"),
          running("web", {
            retiring: [
              { pid: 77, phase: "running", outstanding: 0, since: T - SECOND, stopRequested: false },
              { pid: 78, phase: "exited", outstanding: 0, since: T - MINUTE, stopRequested: true },
            ],
          }),
        ]),
      ),
      actions: ["stopRetired v1 web 77", "forgetRetired v1 web 78"],
    },
    {
      name: "stops a retiring process that is still busy once drainTimeoutMs has passed",
      desired: desired("v1"),
      observed: observed("v1", release("v1", "active", [running("worker"), running("web", { retiring: [{ pid: 77, phase: "running", outstanding: 2, since: T - 2 * MINUTE, stopRequested: false }] })])),
      actions: ["stopRetired v1 web 77"],
    },
  ])("$name", (row) => {
    check(row);
  });
});

describe("services", () => {
  const broker: PlannerProcess = workerProcess({ id: "broker", policy: "service" });
  const withBroker = plannerConfig({ processes: [broker, webProcess(), workerProcess()] });
  const services = (...procs: ReturnType<typeof running>[]) => procs.map((p) => ({ ...p, releaseKey: "@services" }));

  it.each<Row>([
    {
      name: "starts a service for the release being rolled out, before its companions",
      config: withBroker,
      desired: desired("v1"),
      observed: { ...observed(null, release("v1", "starting")), services: [] },
      actions: ["startService broker for v1"],
      converged: false,
    },
    {
      name: "starts the release's companions once its services run",
      config: withBroker,
      desired: desired("v1"),
      observed: { ...observed(null, release("v1", "starting")), services: services(running("broker", { startedFor: keyOf("v1") })) },
      actions: ["startProcess v1 worker[0/1] deploy"],
      converged: false,
    },
    {
      name: "hands services to the new release when traffic switches",
      config: withBroker,
      desired: desired("v2"),
      observed: { ...observed("v1", healthy("v1"), healthy("v2", "starting")), services: services(running("broker")) },
      actions: ["switchTraffic v2 from v1", "adoptServices v2", "beginDrain v1"],
    },
    {
      name: "stops the services a failed rollout started",
      config: withBroker,
      desired: desired("v1"),
      observed: { ...observed(null, release("v1", "starting", [running("worker"), running("web", { health: "failed", healthReason: "no 2xx" })])), services: services(running("broker", { startedFor: keyOf("v1") })) },
      actions: ["markFailed v1 HEALTH_FAILED web", "stopProcess v1 worker", "stopProcess v1 web", "stopProcess @services broker"],
    },
    {
      name: "restarts a crashed service after its delay, whatever the releases do",
      config: withBroker,
      desired: desired("v1"),
      observed: { ...observed("v1", healthy("v1")), services: services(crashed("broker", T - 5 * SECOND)) },
      actions: ["startProcess @services broker[0/1] crash"],
    },
    {
      name: "keeps a service across deploys: nothing to do in steady state",
      config: withBroker,
      desired: desired("v1"),
      observed: { ...observed("v1", healthy("v1")), services: services(running("broker")) },
      actions: [],
      converged: true,
    },
  ])("$name", (row) => {
    check(row);
  });
});

describe("plan: serving (apply --wait is done) before the old release has drained", () => {
  const serving = (row: Pick<Row, "config" | "desired" | "observed" | "now">) => run(row).serving;

  it("serves once the new release is active and routed, while the old one still drains", () => {
    const row = { desired: desired("v2"), observed: observed("v2", healthy("v2"), healthy("v1", "draining", { connections: { websockets: 1 } })) };
    const result = run(row);
    expect(result.serving).toBe(keyOf("v2"));
    expect(result.converged).toBe(false);
  });

  it("serves and is converged in the steady state", () => {
    const result = run({ desired: desired("v1"), observed: observed("v1", healthy("v1")) });
    expect(result).toMatchObject({ serving: keyOf("v1"), converged: true });
  });

  it.each<{ name: string } & Pick<Row, "config" | "desired" | "observed" | "now">>([
    { name: "not while the new release is still starting", desired: desired("v2"), observed: observed("v1", healthy("v1"), release("v2", "starting", [running("worker"), running("web", { health: "pending" })])) },
    {
      name: "not in the pass that switches traffic (the executor has not routed it yet)",
      desired: desired("v2"),
      observed: observed("v1", healthy("v1"), healthy("v2", "starting")),
    },
    { name: "not while a process of the new release is crashed and waiting to restart", desired: desired("v2"), observed: observed("v2", release("v2", "active", [crashed("worker", T - 100), running("web")]), healthy("v1", "draining")) },
    {
      name: "not while its singleton waits for the old one to stop",
      config: plannerConfig({ processes: [webProcess(), workerProcess(), singletonProcess("clock")] }),
      desired: desired("v2"),
      observed: observed("v2", healthy("v2"), release("v1", "draining", [running("worker"), running("web"), stopping("clock")])),
    },
    { name: "not when the desired state is stopped", desired: desired("v1", { stopped: true }), observed: observed(null, healthy("v1", "draining")) },
    { name: "not for a failed desired release", desired: desired("v2"), observed: observed("v1", healthy("v1"), allExited("v2", "failed")) },
  ])("$name", (row) => {
    expect(serving(row)).toBeNull();
  });
});
