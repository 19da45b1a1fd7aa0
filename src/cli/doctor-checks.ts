// The probes behind `rollbridge doctor`: can a fresh daemon start with this config on this
// machine right now? Each check says what it found and, when it fails, what to do.
import { constants, promises as fs } from "node:fs";
import path from "node:path";
import { parseDesiredText } from "../config/desired-schema.js";
import type { Config } from "../config/resolved-config.js";
import { probe, request, verifyControlSocket, type ControlEndpoint } from "../control/client.js";
import { errorMessage, isRollbridgeError } from "../errors.js";
import { resolveDesired } from "../observe/desired-read.js";
import { ephemeralOverlap, isPortFree } from "../process/ports.js";
import { findOrphans } from "../reconcile/orphans.js";
import type { StatusDocument } from "../control/protocol.js";
import { endpointFor } from "./context.js";

export interface DoctorCheck {
  name: string;
  ok: boolean;
  message: string;
  fix?: string;
  /** Set on checks that only make sense without a daemon, when one runs (they count as passed). */
  skipped?: true;
  /** A passing check's hazard worth fixing, with what to do (it does not fail the check). */
  warning?: string;
}

export const MIN_NODE = [20, 19] as const;

/** Node >= 20.19 (22 and 24 too). */
export function checkNode(version = process.versions.node): DoctorCheck {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  const ok = major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1]);
  return ok ? { name: "node", ok, message: `Node.js ${version} (>= ${MIN_NODE.join(".")})` } : { name: "node", ok, message: `Node.js ${version} is too old`, fix: `install Node.js ${MIN_NODE.join(".")} or newer (22 and 24 work too)` };
}

/** The daemon answering on the control socket, if any: its pid, proxy and health (null fields when it did not say). */
export interface RunningDaemon {
  pid: number;
  proxy: { host: string; port: number } | null;
  status: Pick<StatusDocument, "converged" | "activeRelease" | "desired" | "conditions"> | null;
}

export async function runningDaemon(socket: ControlEndpoint): Promise<RunningDaemon | null> {
  if (!(await probe(socket, 1000))) return null;
  try {
    const s = await request<StatusDocument>(socket, "GET", "/status", undefined, 5000);
    return { pid: s.daemonPid, proxy: s.proxy ? { host: s.proxy.host, port: s.proxy.port } : null, status: s };
  } catch {
    return { pid: 0, proxy: null, status: null };
  }
}

/**
 * Every environment check for a valid config, in the order they are printed. Beside a daemon
 * that answers, the checks for a fresh start (socket and ports free, socket directory
 * writable) are skipped, and the running daemon is checked instead.
 */
export async function environmentChecks(config: Config): Promise<DoctorCheck[]> {
  const endpoint = await endpointFor(config);
  const checks: DoctorCheck[] = [];
  // A socket that is not the daemon's is reported, never connected to.
  const untrusted = await verifyControlSocket(endpoint).then(
    () => null,
    (error: unknown) => (isRollbridgeError(error, "UNTRUSTED_SOCKET") ? error : null),
  );
  const daemon = untrusted === null ? await runningDaemon(endpoint) : null;
  if (untrusted !== null) {
    checks.push({ name: "control socket", ok: false, message: untrusted.message, ...(untrusted.fix ? { fix: untrusted.fix } : {}) });
    checks.push(await checkWritableDir("control socket directory", path.dirname(endpoint.path)));
    checks.push(await checkListenPort("proxy port", config.proxy.host, config.proxy.port, null, "proxy.port"));
    if (config.metrics) checks.push(await checkListenPort("metrics port", config.metrics.host, config.metrics.port, null, "metrics.port"));
  } else if (daemon?.status) {
    const running = { ...daemon, status: daemon.status };
    checks.push(checkDaemon(endpoint.path, running));
    checks.push(skipped("control socket directory", `it holds ${endpoint.path}`));
    if (config.proxy.tcp) checks.push(await checkServedPort("proxy port", config.proxy.host, config.proxy.port, running));
    if (config.metrics) checks.push(await checkServedPort("metrics port", config.metrics.host, config.metrics.port, running));
  } else {
    checks.push(await checkSocket(endpoint.path, daemon));
    checks.push(await checkWritableDir("control socket directory", path.dirname(endpoint.path)));
    if (config.proxy.tcp) checks.push(await checkListenPort("proxy port", config.proxy.host, config.proxy.port, daemon, "proxy.port"));
    if (config.metrics) checks.push(await checkListenPort("metrics port", config.metrics.host, config.metrics.port, daemon, "metrics.port"));
  }
  for (const proc of config.processes) {
    if (proc.port) checks.push(await checkPortRange(proc.id, config.proxy.upstreamHost, proc.port, proc.replicas));
  }
  checks.push(config.statePath ? await checkWritableDir("state file directory", path.dirname(config.statePath)) : { name: "state file", ok: true, message: "statePath: false: no state file, no adoption or orphan detection after a crash" });
  checks.push(await checkDesired(config.desiredPath));
  checks.push(await checkOrphans(config));
  return checks;
}

function skipped(name: string, why: string): DoctorCheck {
  return { name, ok: true, skipped: true, message: `skipped: daemon running (${why})` };
}

/** The running daemon itself: it answers, and what it runs is healthy. */
function checkDaemon(socket: string, daemon: RunningDaemon & { status: NonNullable<RunningDaemon["status"]> }): DoctorCheck {
  const name = "daemon";
  const s = daemon.status;
  const serving = s.activeRelease ? `release ${s.activeRelease.id} active` : s.desired.stopped ? "stopped (no active release)" : "nothing deployed yet";
  const where = `pid ${daemon.pid} answers on ${socket}: ${serving}`;
  if (s.desired.error)
    return {
      name,
      ok: false,
      message: `${where}, but it cannot apply the desired file: ${s.desired.error}`,
      fix: "fix the desired file (the desired file check below says what is wrong); the daemon keeps running the last good state meanwhile",
    };
  const degraded = s.conditions.find((c) => c.type === "Degraded" && c.status);
  if (degraded) return { name, ok: false, message: `${where}, degraded (${degraded.reason}): ${degraded.message}`, fix: "rollbridge status and rollbridge events show what happened; rollbridge logs shows the process output" };
  return { name, ok: true, message: `${where}, ${s.converged ? "converged" : "converging"}` };
}

/** Beside a running daemon: the port is the one it serves (a config reload cannot move it). */
async function checkServedPort(name: string, host: string, port: number, daemon: RunningDaemon): Promise<DoctorCheck> {
  const field = name === "proxy port" ? "proxy.port" : "metrics.port";
  if (name === "proxy port" && daemon.proxy && (daemon.proxy.port !== port || daemon.proxy.host !== host)) {
    return {
      name,
      ok: false,
      message: `the running daemon (pid ${daemon.pid}) serves ${daemon.proxy.host}:${daemon.proxy.port}, the config says ${host}:${port}`,
      fix: `a reload cannot move the proxy listener: restart the daemon (rollbridge shutdown, then start it) to serve ${host}:${port}, or set ${field} back`,
    };
  }
  if (!(await isPortFree(host, port))) return skipped(name, `pid ${daemon.pid} serves ${host}:${port}`);
  return { name, ok: true, message: `${host}:${port} is free: the running daemon does not listen there yet (it binds ${field} when it starts)` };
}

async function checkSocket(socket: string, daemon: RunningDaemon | null): Promise<DoctorCheck> {
  const name = "control socket";
  let stat;
  try {
    stat = await fs.lstat(socket);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { name, ok: true, message: `no daemon running; ${socket} is free to bind` };
    return { name, ok: false, message: `cannot inspect ${socket}: ${errorMessage(error)}`, fix: "check the permissions of its directory" };
  }
  if (!stat.isSocket()) return { name, ok: false, message: `${socket} exists and is not a socket`, fix: "remove that file or point control.path elsewhere" };
  if (daemon) {
    return {
      name,
      ok: false,
      message: `a daemon${daemon.pid ? ` (pid ${daemon.pid})` : ""} is already running on ${socket}`,
      fix: "that daemon is serving: use it (rollbridge status), or stop it (rollbridge shutdown) before starting another",
    };
  }
  return { name, ok: true, message: `${socket} is a stale socket from a daemon that is gone; a new daemon replaces it` };
}

/** The directory (or, when it does not exist yet, its nearest existing parent) is writable. */
async function checkWritableDir(name: string, dir: string): Promise<DoctorCheck> {
  let probe = dir;
  while (true) {
    try {
      await fs.access(probe, constants.W_OK);
      return { name, ok: true, message: probe === dir ? `${dir} is writable` : `${dir} does not exist yet; ${probe} is writable, so the daemon can create it` };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const parent = path.dirname(probe);
      if (code === "ENOENT" && parent !== probe) {
        probe = parent;
        continue;
      }
      return { name, ok: false, message: `${probe} is not writable (${code ?? errorMessage(error)})`, fix: `make ${probe} writable for the daemon's user, or choose another path` };
    }
  }
}

async function checkListenPort(name: string, host: string, port: number, daemon: RunningDaemon | null, field: string): Promise<DoctorCheck> {
  if (await isPortFree(host, port)) return { name, ok: true, message: `${host}:${port} is available` };
  const ours = daemon !== null && (field !== "proxy.port" || daemon.proxy?.port === port);
  return ours
    ? { name, ok: false, message: `${host}:${port} is held by the running rollbridge daemon${daemon.pid ? ` (pid ${daemon.pid})` : ""}`, fix: "a second daemon could not bind it: use the running one, or rollbridge shutdown first" }
    : { name, ok: false, message: `${host}:${port} is taken by another process`, fix: `find it with \`ss -ltnp 'sport = :${port}'\`, stop it, or change ${field}` };
}

/** Counts the free ports of a process's range: a deploy needs `needed` of them next to the running ones. */
async function checkPortRange(processId: string, host: string, range: { from: number; to: number }, needed: number): Promise<DoctorCheck> {
  const name = `ports of ${processId}`;
  const size = range.to - range.from + 1;
  const scan = Math.min(size, 2048);
  let free = 0;
  for (let start = 0; start < scan; start += 64) {
    const batch = Array.from({ length: Math.min(64, scan - start) }, (_, i) => isPortFree(host, range.from + start + i));
    free += (await Promise.all(batch)).filter(Boolean).length;
  }
  const scanned = scan < size ? ` (first ${scan} scanned)` : "";
  const message = `${free} of ${size} ports free in ${range.from}-${range.to} on ${host}${scanned}`;
  if (free < needed) return { name, ok: false, message: `${message}; ${needed} needed`, fix: `widen processes[${processId}].port or stop what holds those ports (ss -ltnp)` };
  const overlap = ephemeralOverlap(range);
  if (overlap === null) return { name, ok: true, message };
  const ports = overlap.first === overlap.last ? `port ${overlap.first} is` : `${overlap.exposed} ports (${overlap.first}-${overlap.last}) are`;
  return {
    name,
    ok: true,
    message,
    warning: `${ports} in the kernel's ephemeral range ${overlap.ephemeral.from}-${overlap.ephemeral.to}: any outgoing connection on this host may take one as its local port after the daemon chose it for a process and before the process listens, and the start then fails with EADDRINUSE; move processes[${processId}].port below ${overlap.ephemeral.from}, or reserve it: sysctl -w net.ipv4.ip_local_reserved_ports=${overlap.reserved ? `${overlap.reserved},` : ""}${range.from}-${range.to}`,
  };
}

async function checkDesired(file: string): Promise<DoctorCheck> {
  const name = "desired file";
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { name, ok: true, message: `none yet at ${file}; the first deploy writes it` };
    return { name, ok: false, message: `cannot read ${file}: ${errorMessage(error)}`, fix: "make it readable by the daemon's user" };
  }
  try {
    const target = await resolveDesired(parseDesiredText(text, file), path.dirname(file));
    if (target.stopped) return { name, ok: true, message: `${file} is valid: stopped` };
    return { name, ok: true, message: `${file} is valid: release ${target.release?.id} at ${target.release?.path}` };
  } catch (error) {
    return { name, ok: false, message: `${file}: ${errorMessage(error)}`, fix: (isRollbridgeError(error) && error.fix) || "fix the file (rollbridge diff -f FILE checks one), or write a new one with rollbridge apply" };
  }
}

async function checkOrphans(config: Config): Promise<DoctorCheck> {
  const name = "orphans";
  if (!config.statePath) return { name, ok: true, message: "statePath: false: orphan detection is off" };
  try {
    const orphans = await findOrphans(config);
    if (orphans.length === 0) return { name, ok: true, message: "no processes left behind by a previous daemon" };
    const list = orphans.map((o) => `${o.instanceId} (release ${o.releaseId}, pid ${o.pid})`).join(", ");
    return { name, ok: false, message: `${orphans.length} process${orphans.length === 1 ? "" : "es"} left by a daemon that died: ${list}`, fix: "rollbridge recover lists them; rollbridge recover --force stops them" };
  } catch (error) {
    return { name, ok: false, message: `cannot read the state file ${config.statePath}: ${errorMessage(error)}`, fix: "inspect or remove the state file" };
  }
}
