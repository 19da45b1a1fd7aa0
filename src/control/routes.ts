// The control API's endpoints, bound to a running daemon.
import type http from "node:http";
import type { DesiredDocument } from "../config/desired-schema.js";
import { RollbridgeError } from "../errors.js";
import type { Daemon } from "../main.js";
import { resolveDesired } from "../observe/desired-store.js";
import { applyDesired, checkReplicaIds, parseDocument } from "./apply-desired.js";
import { operationRoutes } from "./operation-routes.js";
import { describeChanges } from "../reconcile/diff.js";
import { plannerConfig } from "../reconcile/planner-config.js";
import { logQuery, retainedLines } from "./logs.js";
import { namedTarget } from "../reconcile/release-identity.js";
import { MAX_TIMEOUT_MS, type ApplyRequest, type ApplyResponse, type LogsResponse, type WaitOutcome, type WaitProgress } from "./protocol.js";
import { describeDrain, drainingReleases, progressLines } from "../reconcile/rollout-progress.js";
import type { Route } from "./server.js";
import { abortRollout } from "./abort-rollout.js";
import { ndjsonStream } from "./ndjson-stream.js";
import { SERVICES_KEY } from "../reconcile/types.js";
import path from "node:path";

/** How long the wait stream may stay silent while a rollout waits (the issue asks for ≤ 2 s). */
const PROGRESS_EVERY_MS = 1500;

export function controlRoutes(daemon: Daemon): Route[] {
  return [
    { method: "GET", path: "/status", handler: (_req, _res, url) => daemon.status({ all: url.searchParams.get("all") === "true" }) },
    {
      method: "GET",
      path: "/events",
      handler: (_req, _res, url) => ({ events: daemon.events.recent(positiveInt(url.searchParams.get("limit"), 1000)) }),
    },
    { method: "GET", path: "/logs", handler: (_req, _res, url): LogsResponse => ({ lines: retainedLines(daemon, logQuery(url)) }) },
    { method: "PUT", path: "/desired", handler: (_req, _res, _url, body) => apply(daemon, body as ApplyRequest) },
    { method: "POST", path: "/diff", handler: (_req, _res, _url, body) => diff(daemon, body as { document?: DesiredDocument } | undefined) },
    { method: "GET", path: "/wait", handler: (req, res, url) => wait(daemon, req, res, url) },
    {
      method: "POST",
      path: "/reconcile",
      handler: async () => {
        const plan = await daemon.loop.runOnce();
        return { converged: plan?.converged ?? false };
      },
    },
    ...operationRoutes(daemon),
    {
      method: "POST",
      path: "/shutdown",
      handler: (_req, res) => {
        res.on("finish", () => daemon.requestShutdown("shutdown command"));
        return { ok: true, pid: process.pid };
      },
    },
  ];
}

function positiveInt(value: string | null, fallback: number): number {
  if (value === null) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new RollbridgeError("USAGE", `expected a positive integer, got "${value}"`);
  return n;
}

async function apply(daemon: Daemon, body: ApplyRequest | undefined): Promise<ApplyResponse> {
  if (!body || typeof body !== "object" || !("document" in body)) throw new RollbridgeError("USAGE", "expected {document}");
  return applyDesired(daemon, body.document, { dryRun: body.dryRun === true });
}

async function diff(daemon: Daemon, body: { document?: DesiredDocument } | undefined) {
  const file = daemon.config.desiredPath;
  let target;
  if (body?.document !== undefined) {
    target = await resolveDesired(parseDocument(body.document), path.dirname(file));
  } else {
    // The file as it is now (even if the daemon has not adopted it yet); its problem if it has one.
    target = await daemon.store.peek();
  }
  checkReplicaIds(daemon, target.replicas);
  return { changes: describeChanges(plannerConfig(daemon.config), namedTarget(target, daemon.executor.releases.values()), daemon.executor.observe()) };
}

/** No process of the release (or a service its rollout started) is still running. */
function releaseSettled(daemon: Daemon, key: string): boolean {
  const gone = (phase: string | undefined) => phase === undefined || phase === "exited";
  const slots = [...(daemon.executor.instances.get(key)?.values() ?? [])];
  const services = [...(daemon.executor.instances.get(SERVICES_KEY)?.values() ?? [])].filter((i) => i.startedFor === key);
  return [...slots, ...services].every((i) => gone(i.proc?.phase) && gone(i.successor?.proc?.phase) && i.retiring.every((r) => gone(r.proc.phase)));
}

/** Streams events (NDJSON) until the asked-for rollout converges, fails or times out. */
function wait(daemon: Daemon, req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
  const generation = url.searchParams.get("generation");
  const wantStopped = url.searchParams.get("stopped") === "true";
  // --wait-drained: done only once every older release has drained and stopped too.
  const wantDrained = url.searchParams.get("drained") === "true";
  const since = Number(url.searchParams.get("since") ?? daemon.events.lastSeq());
  const timeoutMs = waitTimeout(url.searchParams.get("timeoutMs"));
  const startedAt = Date.now();
  // Cut when the CLI falls 1 MiB behind: the wait ends here, the rollout does not.
  let stop = () => {};
  const out = ndjsonStream(res, { what: "apply --wait", fix: "the rollout goes on without this wait: rollbridge status (or rollbridge events) shows how it ends", onCut: () => stop() });
  const write = (value: unknown) => void out.write(value);
  for (const event of daemon.events.recent()) if (event.seq > since) out.write({ event }, true);

  return new Promise<void>((resolve) => {
    let done = false;
    // Outcomes that read the plan wait for a pass after this request (the write is adopted by then).
    let fresh = false;
    let lastLineAt = Date.now();
    const finish = (outcome: WaitOutcome) => {
      if (done) return;
      done = true;
      unsubscribe();
      offPass();
      clearInterval(ticker);
      if (timer) clearTimeout(timer);
      out.end({ outcome });
      resolve();
    };
    const check = () => {
      const plan = daemon.loop.latestPlan();
      const desired = daemon.store.current();
      // Superseded only once the daemon has adopted something else since the write (another
      // writer's different release, stopped, or an invalid file): until then the adopted state
      // may simply predate our write. A replicas-only change keeps the generation: not superseded.
      const replaced = replacedSince(daemon, since);
      if (wantStopped) {
        if (!desired.target?.stopped) {
          if (replaced) finish({ outcome: "superseded", message: `the desired state changed while waiting: ${replaced}`, releaseId: desired.target?.release?.id ?? null });
          return;
        }
        if (plan?.converged && daemon.proxy.activeRelease() === null) finish({ outcome: "converged", message: "stopped: no active release", releaseId: null });
        return;
      }
      const rec = generation ? daemon.executor.releases.get(generation) : undefined;
      const currentGen = desired.target?.stopped ? null : (desired.target?.release?.generation ?? null);
      if (currentGen !== generation) {
        if (replaced) finish({ outcome: "superseded", message: `the desired state changed while waiting: ${replaced}`, releaseId: rec?.spec.id ?? null });
        return;
      }
      // Failed: reported once what the rollout started has stopped, so the caller sees the end state.
      if (rec?.state === "failed" && rec.failure && rec.failure.at >= startedAt - 10 && releaseSettled(daemon, rec.key)) {
        const f = rec.failure;
        return finish({ outcome: "failed", message: f.reason, releaseId: rec.spec.id, failure: { reason: f.reason, code: f.code, instanceId: f.instanceId ?? null, output: f.output ?? [] } });
      }
      // Another writer's broken file after ours does not undo our rollout: report it, converged.
      const note = desired.error ? ` (but the desired file now has a problem: ${desired.error.message})` : "";
      // Done once the release serves all new traffic; the old one drains in the background
      // (reported), unless --wait-drained asked to see it stopped as well.
      if (fresh && rec?.state === "active" && (wantDrained ? plan?.converged : plan?.serving === rec.key)) {
        const draining = plan?.converged ? null : (drainingReleases(daemon.executor.observe()).find((d) => d.key !== rec.key) ?? null);
        const message = plan?.converged ? `${rec.spec.id} is active and converged${note}` : `${rec.spec.id} serves all new traffic${note}`;
        finish({ outcome: "converged", message, releaseId: rec.spec.id, draining: draining && { releaseId: draining.releaseId, inflight: draining.inflight, websockets: draining.websockets, deadline: draining.deadline, message: `draining ${describeDrain(draining, Date.now())}` } });
      }
    };
    // Between events, at least every 2 s: what the rollout waits for (a pending health check, a drain).
    const progress = () => {
      if (done || Date.now() - lastLineAt < PROGRESS_EVERY_MS) return;
      const lines = progressLines(daemon.config, daemon.executor, daemon.loop.latestPlan(), wantStopped ? null : generation, Date.now());
      if (lines.length === 0) return;
      lastLineAt = Date.now();
      for (const message of lines) write({ progress: { message } satisfies WaitProgress });
    };
    const unsubscribe = daemon.events.subscribe((event) => {
      lastLineAt = Date.now();
      write({ event });
    });
    const offPass = daemon.onPass(() => {
      fresh = true;
      check();
    });
    const ticker = setInterval(() => {
      check();
      progress();
    }, 250);
    const onTimeout = async () => {
      // apply --wait --timeout abandons a rollout that is still starting (naught's deploy-abort).
      const aborted = generation && url.searchParams.get("abort") === "true" ? await abortRollout(daemon, generation, `not ready within ${timeoutMs} ms (--timeout)`).catch(() => null) : null;
      const rec = daemon.executor.releases.get(generation ?? "");
      const draining = rec?.state === "active" ? drainingReleases(daemon.executor.observe()).find((d) => d.key !== rec.key) : undefined;
      const message = aborted ?? (draining ? `${rec?.spec.id} serves, but ${draining.releaseId} was still draining after ${timeoutMs} ms` : `not converged within ${timeoutMs} ms`);
      finish({ outcome: "timeout", message, releaseId: rec?.spec.id ?? null });
    };
    const timer = timeoutMs > 0 ? setTimeout(() => void onTimeout(), timeoutMs) : null;
    stop = () => {
      if (!done) {
        done = true;
        unsubscribe();
        offPass();
        clearInterval(ticker);
        if (timer) clearTimeout(timer);
        resolve();
      }
    };
    req.on("close", stop);
    daemon.loop.trigger("wait");
  });
}

/** `timeoutMs` of a wait: 0 (none) up to MAX_TIMEOUT_MS; anything else is refused before the stream starts. */
function waitTimeout(raw: string | null): number {
  if (raw === null) return 0;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new RollbridgeError("USAGE", `timeoutMs "${raw}" is not a non-negative whole number of milliseconds`);
  if (n > MAX_TIMEOUT_MS) throw new RollbridgeError("USAGE", `timeoutMs ${raw} is over ${MAX_TIMEOUT_MS} ms (about 24.8 days), the longest a timer can wait`, { fix: "pass a shorter timeout, or none" });
  return n;
}

/** What the daemon adopted from the desired file after event `since`, if anything (the latest). */
function replacedSince(daemon: Daemon, since: number): string | null {
  const adopted = daemon.events.recent().filter((e) => e.seq > since && (e.type === "desired-changed" || e.type === "desired-invalid"));
  return adopted.at(-1)?.message ?? null;
}
