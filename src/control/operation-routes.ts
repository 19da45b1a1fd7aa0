// Control routes for day-to-day operations: rollback, restart, and the NDJSON follow streams
// behind `logs --follow` and `events --follow`.
import type http from "node:http";
import { RollbridgeError } from "../errors.js";
import type { Daemon } from "../main.js";
import type { Instance } from "../reconcile/instance.js";
import { SERVICES_KEY, type ReleaseRecord } from "../reconcile/types.js";
import { applyDesired } from "./apply-desired.js";
import { logQuery, retainedLines, wireLine } from "./logs.js";
import { ndjsonStream } from "./ndjson-stream.js";
import { documentFor, repointLink, type LinkFlip } from "./release-document.js";
import type { ApplyResponse } from "./protocol.js";
import type { Route } from "./server.js";

export const POLICIES = ["proxied", "companion", "singleton", "service"] as const;

/** `POST /rollback` answers this: the apply result plus which release it left. */
export interface RollbackResponse extends ApplyResponse {
  fromReleaseId: string | null;
  toReleaseId: string;
  toState: ReleaseRecord["state"];
  /** The symlink the desired file follows, re-pointed at the release (null: none). */
  link: LinkFlip | null;
}

/** One instance a `POST /restart` marked for a restart. */
export interface RestartTarget {
  instanceId: string;
  processId: string;
  policy: string;
  releaseId: string;
  pid: number | null;
  /** true: replaced new-before-old (the proxied process); false: stopped, then started. */
  zeroDowntime: boolean;
}

export function operationRoutes(daemon: Daemon): Route[] {
  return [
    { method: "POST", path: "/rollback", handler: (_req, _res, _url, body) => rollback(daemon, (body ?? {}) as { releaseId?: unknown }) },
    { method: "POST", path: "/restart", handler: (_req, _res, _url, body) => restart(daemon, (body ?? {}) as { process?: unknown; policy?: unknown }) },
    { method: "GET", path: "/logs/follow", handler: (_req, res, url) => followLogs(daemon, res, url) },
    { method: "GET", path: "/events/follow", handler: (_req, res, url) => followEvents(daemon, res, url) },
  ];
}

function lastRetiredAt(rec: ReleaseRecord): number {
  return Math.max(rec.stoppedAt ?? 0, rec.drainStartedAt ?? 0, rec.activatedAt ?? 0);
}

/**
 * Picks the release to go back to: the named one, or else — while the desired release is not
 * the one serving (a rollout failing or still starting) — the serving one, or else the most
 * recently retired one. Going back from a failed deploy means keeping what serves, not
 * skipping past it.
 */
export function rollbackTarget(daemon: Daemon, releaseId: string | undefined): ReleaseRecord {
  const activeKey = daemon.proxy.activeRelease();
  const records = [...daemon.executor.releases.values()];
  const desired = daemon.store.current().target;
  const desiredKey = desired && !desired.stopped ? (desired.release?.generation ?? null) : null;
  const active = activeKey ? daemon.executor.releases.get(activeKey) : undefined;
  const abandoning = active !== undefined && desiredKey !== null && desiredKey !== activeKey;
  const retained = (): string =>
    records
      .filter((r) => r.key !== activeKey)
      .map((r) => `${r.spec.id} (${r.state})`)
      .join(", ") || "none";
  if (releaseId !== undefined) {
    const matches = records.filter((r) => r.spec.id === releaseId).sort((a, b) => b.createdAt - a.createdAt);
    if (matches.length === 0) {
      throw new RollbridgeError("UNKNOWN_RELEASE", `no retained release "${releaseId}"`, { fix: `roll back to one of the retained releases: ${retained()} (rollbridge status lists them)` });
    }
    if (abandoning && matches.some((r) => r.key === activeKey)) return active;
    const target = matches.find((r) => r.key !== activeKey) ?? matches[0]!;
    if (target.key === activeKey) throw new RollbridgeError("RELEASE_ALREADY_ACTIVE", `release ${releaseId} is already active`, { fix: `nothing to do; other retained releases: ${retained()}` });
    return target;
  }
  if (abandoning) return active;
  const retired = records
    .filter((r) => r.key !== activeKey && (r.state === "stopped" || r.state === "draining"))
    .sort((a, b) => lastRetiredAt(b) - lastRetiredAt(a));
  const target = retired[0];
  if (!target) {
    throw new RollbridgeError("NO_PREVIOUS_RELEASE", "no previous release to roll back to", {
      fix: `deploy at least twice first, or name a release with --release-id (retained: ${retained()})`,
    });
  }
  return target;
}

async function rollback(daemon: Daemon, body: { releaseId?: unknown }): Promise<RollbackResponse> {
  if (body.releaseId !== undefined && (typeof body.releaseId !== "string" || body.releaseId === "")) throw new RollbridgeError("USAGE", "releaseId must be a non-empty string");
  const target = rollbackTarget(daemon, body.releaseId as string | undefined);
  const activeKey = daemon.proxy.activeRelease();
  const from = activeKey ? (daemon.executor.releases.get(activeKey)?.spec.id ?? null) : null;
  const spec = target.spec;
  // The same generation (path, id, revision, env), so the daemon resumes that record. With a
  // `current` symlink in the desired file, the link is re-pointed and the file keeps it.
  const { document, direct, link } = await documentFor(daemon, target);
  // Everything is checked (the directory still exists, replicas) before the link is touched.
  await applyDesired(daemon, direct, { dryRun: true });
  if (link) await repointLink(link);
  const applied = await applyDesired(daemon, document);
  daemon.events.emit({
    type: "rollback-requested",
    message: `rolling back to ${spec.id}${from ? ` from ${from}` : ""} (it was ${target.state})${link ? `; ${link.path} now points at ${link.target}` : ""}`,
    releaseKey: target.key,
    releaseId: spec.id,
    data: { fromReleaseId: from, toState: target.state, link: link ? { path: link.path, target: link.target } : null },
  });
  return { ...applied, fromReleaseId: from, toReleaseId: spec.id, toState: target.state, link };
}

/**
 * Selects instances of the active release and the daemon-wide services (a process id, a
 * replica id, or a policy) and asks the executor to restart them. With no selection: all of
 * them, as `pm2 reload all` does — the proxied process replaced with zero downtime (after the
 * others have been started again), the others stopped and started.
 */
function restart(daemon: Daemon, body: { process?: unknown; policy?: unknown }): { releaseId: string; instances: RestartTarget[] } {
  const processArg = typeof body.process === "string" && body.process !== "" ? body.process : undefined;
  const policyArg = typeof body.policy === "string" && body.policy !== "" ? body.policy : undefined;
  if (policyArg !== undefined && !(POLICIES as readonly string[]).includes(policyArg)) {
    throw new RollbridgeError("USAGE", `unknown policy "${policyArg}"`, { fix: `use one of: ${POLICIES.join(", ")}` });
  }
  const activeKey = daemon.proxy.activeRelease();
  const active = activeKey ? daemon.executor.releases.get(activeKey) : undefined;
  if (!activeKey || !active) throw new RollbridgeError("UNKNOWN_RELEASE", "no active release: nothing to restart", { fix: "deploy a release first (rollbridge deploy --release-path P)" });
  const policyOf = (processId: string) => daemon.config.processes.find((p) => p.id === processId)?.policy ?? "unknown";
  const live = (key: string) => [...(daemon.executor.instances.get(key)?.values() ?? [])].filter((i) => !i.stopRequested && !i.failed).map((inst) => ({ key, inst }));
  const candidates: { key: string; inst: Instance }[] = [...live(activeKey), ...live(SERVICES_KEY)];
  const slots = candidates.map((c) => c.inst);
  if (processArg !== undefined) {
    const known = new Set([...daemon.config.processes.map((p) => p.id), ...slots.map((s) => s.instanceId)]);
    if (!known.has(processArg)) throw new RollbridgeError("UNKNOWN_PROCESS", `unknown process "${processArg}"`, { fix: `use one of: ${[...known].join(", ")}` });
  }
  const selected = candidates.filter(({ inst: s }) => {
    if (processArg !== undefined && s.processId !== processArg && s.instanceId !== processArg) return false;
    if (policyArg !== undefined && policyOf(s.processId) !== policyArg) return false;
    return true;
  });
  if (selected.length === 0) {
    const what = processArg ? `process "${processArg}"` : policyArg ? `${policyArg} process` : "process";
    throw new RollbridgeError("UNKNOWN_PROCESS", `no running ${what} in release ${active.spec.id} to restart`, {
      fix: `running: ${slots.map((s) => `${s.instanceId} (${policyOf(s.processId)})`).join(", ") || "none"}; rollbridge restart with no flags restarts all of them`,
    });
  }
  const marked = daemon.executor.requestRestart(selected.map(({ key, inst }) => ({ key, instanceId: inst.instanceId })), "manual");
  const instances = marked.map((s) => ({
    instanceId: s.instanceId,
    processId: s.processId,
    policy: policyOf(s.processId),
    releaseId: daemon.executor.recordFor(s.releaseKey)?.spec.id ?? active.spec.id,
    pid: s.proc?.pid ?? null,
    zeroDowntime: policyOf(s.processId) === "proxied",
  }));
  daemon.events.emit({
    type: "restart-requested",
    message: `manual restart of ${instances.map((i) => i.instanceId).join(", ") || "nothing (already restarting)"}`,
    releaseKey: activeKey,
    releaseId: active.spec.id,
    data: { instances: instances.map((i) => i.instanceId), process: processArg ?? null, policy: policyArg ?? null },
  });
  return { releaseId: active.spec.id, instances };
}

/** The bounded NDJSON writer of a follow stream; `off` (set once subscribed) stops producing when it is cut. */
function startStream(res: http.ServerResponse, what: string, fix: string): { write: (value: unknown, backlog?: boolean) => void; onCut: (off: () => void) => void } {
  let off = () => {};
  const out = ndjsonStream(res, { what, fix, onCut: () => off() });
  return { write: (value, backlog) => void out.write(value, backlog), onCut: (fn) => (off = fn) };
}

/** Streams the retained lines the query selects, then every new one, until the client goes away. */
function followLogs(daemon: Daemon, res: http.ServerResponse, url: URL): Promise<void> {
  const query = logQuery(url);
  // Checks the process id (UNKNOWN_PROCESS) before the stream starts.
  const retained = retainedLines(daemon, query);
  const filter = query.process;
  const matches = (processId: string, instanceId: string) => !filter || processId === filter || instanceId === filter;
  const { write, onCut } = startStream(res, "logs --follow", "rollbridge logs shows the recent lines; follow again when the reader keeps up (e.g. not paused in a pager)");
  if (url.searchParams.get("retained") !== "false") for (const line of retained) write({ ...line, retained: true }, true);
  const off = daemon.executor.onOutput((line) => {
    if (matches(line.processId, line.instanceId)) write(wireLine(line));
  });
  onCut(off);
  return untilClosed(res, off);
}

/** Streams the last `limit` events, then every new one, until the client goes away. */
function followEvents(daemon: Daemon, res: http.ServerResponse, url: URL): Promise<void> {
  const raw = url.searchParams.get("limit");
  const limit = raw === null ? 100 : Number(raw);
  if (!Number.isInteger(limit) || limit < 0) throw new RollbridgeError("USAGE", `expected a non-negative integer limit, got "${raw}"`);
  const { write, onCut } = startStream(res, "events --follow", "rollbridge events shows the recent history; follow again when the reader keeps up (e.g. not paused in a pager)");
  if (limit > 0) for (const event of daemon.events.recent(limit)) write(event, true);
  const off = daemon.events.subscribe((event) => write(event));
  onCut(off);
  return untilClosed(res, off);
}

function untilClosed(res: http.ServerResponse, cleanup: () => void): Promise<void> {
  return new Promise((resolve) => {
    res.on("close", () => {
      cleanup();
      resolve();
    });
  });
}
