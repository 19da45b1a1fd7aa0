// systemd socket activation (sd_listen_fds semantics, without libsystemd): the listening sockets
// a socket unit (or anything that behaves like one) passes as fd 3, 4, … with LISTEN_FDS,
// LISTEN_PID and LISTEN_FDNAMES. The variables are removed from this process's environment
// whatever they say, so no managed process ever inherits them.
import { fstatSync } from "node:fs";
import { RollbridgeError } from "../errors.js";

/** The first passed descriptor (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;

/** The names a socket unit may give its sockets (FileDescriptorName=). */
export const LISTENER_NAMES = ["proxy", "proxy-socket", "metrics"] as const;
export type ListenerName = (typeof LISTENER_NAMES)[number];

export interface InheritedListeners {
  /** The proxy's TCP listener (name `proxy`, or the only socket when it has no known name). */
  proxy: number | null;
  /** The proxy's unix-socket listener (name `proxy-socket`). */
  proxySocket: number | null;
  /** The metrics listener (name `metrics`). */
  metrics: number | null;
  /** Why variables that were set were not used (LISTEN_PID names another process), or null. */
  ignored: string | null;
}

const NONE: InheritedListeners = { proxy: null, proxySocket: null, metrics: null, ignored: null };

/**
 * Reads and removes LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES from `env`. Variables meant for
 * another pid are ignored (systemd semantics: they were inherited, not passed). Throws
 * CONFIG_INVALID for a count or name that cannot be served.
 */
export function takeInheritedListeners(env: NodeJS.ProcessEnv, pid: number, isSocket: (fd: number) => boolean = fdIsSocket): InheritedListeners {
  const count = env.LISTEN_FDS;
  const listenPid = env.LISTEN_PID;
  const names = env.LISTEN_FDNAMES;
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  if (count === undefined) return NONE;
  if (listenPid === undefined || !/^[1-9][0-9]*$/.test(listenPid) || Number(listenPid) !== pid) {
    return { ...NONE, ignored: `LISTEN_FDS is set but LISTEN_PID (${listenPid ?? "unset"}) is not this daemon's pid ${pid}: the sockets were meant for another process` };
  }
  if (!/^[0-9]+$/.test(count) || Number(count) > 16) {
    throw new RollbridgeError("CONFIG_INVALID", `LISTEN_FDS must be a small number of passed sockets, got ${JSON.stringify(count)}`, { fix: "start the daemon from a socket unit with ListenStream= lines (docs/systemd.md)" });
  }
  const n = Number(count);
  if (n === 0) return NONE;
  const given = names === undefined ? [] : names.split(":");
  const found: InheritedListeners = { ...NONE };
  for (let i = 0; i < n; i++) {
    const fd = LISTEN_FDS_START + i;
    const name = nameOf(given[i], n);
    if (!isSocket(fd)) throw new RollbridgeError("CONFIG_INVALID", `socket activation: fd ${fd} (${name}) is not a socket`, { fix: "pass listening sockets only (ListenStream= in the socket unit)" });
    const key = name === "proxy" ? "proxy" : name === "proxy-socket" ? "proxySocket" : "metrics";
    if (found[key] !== null) throw new RollbridgeError("CONFIG_INVALID", `socket activation: two sockets are named ${name}`, { fix: "give each ListenStream= its own FileDescriptorName= (proxy, proxy-socket, metrics)" });
    found[key] = fd;
  }
  return found;
}

// A single socket without a name we know is the proxy (systemd names it after its unit by default).
function nameOf(given: string | undefined, count: number): ListenerName {
  if (given !== undefined && (LISTENER_NAMES as readonly string[]).includes(given)) return given as ListenerName;
  if (count === 1) return "proxy";
  throw new RollbridgeError("CONFIG_INVALID", `socket activation: ${count} sockets passed, one named ${JSON.stringify(given ?? "")}; each needs one of the names ${LISTENER_NAMES.join(", ")}`, {
    fix: "set FileDescriptorName=proxy (and =metrics, =proxy-socket) in the socket unit (docs/systemd.md)",
  });
}

function fdIsSocket(fd: number): boolean {
  try {
    return fstatSync(fd).isSocket();
  } catch {
    return false;
  }
}
