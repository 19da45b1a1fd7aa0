// Binding the control socket safely: refuse when a live daemon holds it, replace a stale file
// left by a dead one, then apply control.mode / owner / group.
import { promises as fs } from "node:fs";
import net from "node:net";
import type { Server } from "node:http";
import { RollbridgeError } from "../errors.js";

export interface SocketPermissions {
  mode?: number | undefined;
  owner?: number | string | undefined;
  group?: number | string | undefined;
}

/** Is something answering on this unix socket? */
export function socketAnswers(socketPath: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(socketPath);
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/**
 * Fails with DAEMON_ALREADY_RUNNING (naming the running daemon) when something answers on the
 * socket. The daemon checks this before binding anything else, so a second `rollbridge daemon`
 * with the same config names the first one instead of complaining about the proxy port.
 */
export async function refuseIfRunning(socketPath: string, describeRunning: () => Promise<string>): Promise<void> {
  if (!(await socketAnswers(socketPath))) return;
  const who = await describeRunning().catch(() => "another process");
  throw new RollbridgeError("DAEMON_ALREADY_RUNNING", `a daemon is already running on ${socketPath} (${who})`, { fix: "use that daemon (rollbridge status), or stop it first (rollbridge shutdown)" });
}

export async function bindControlSocket(server: Server, socketPath: string, perms: SocketPermissions, describeRunning: () => Promise<string>): Promise<void> {
  try {
    const stat = await fs.lstat(socketPath);
    if (!stat.isSocket()) {
      throw new RollbridgeError("DAEMON_ALREADY_RUNNING", `control.path ${socketPath} exists and is not a socket`, { fix: "point control.path at a free path, or remove that file" });
    }
    if (await socketAnswers(socketPath)) {
      const who = await describeRunning().catch(() => "another process");
      throw new RollbridgeError("DAEMON_ALREADY_RUNNING", `a daemon is already running on ${socketPath} (${who})`, { fix: "use that daemon (rollbridge status), or stop it first (rollbridge shutdown)" });
    }
    await fs.unlink(socketPath); // stale: its daemon is gone
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once("error", onError);
    server.listen(socketPath, () => {
      server.off("error", onError);
      resolve();
    });
  });
  await applyPermissions(socketPath, perms);
}

export async function applyPermissions(socketPath: string, perms: SocketPermissions): Promise<void> {
  if (perms.owner !== undefined || perms.group !== undefined) {
    const uid = perms.owner === undefined ? -1 : await resolveId(perms.owner, "/etc/passwd", "control.owner");
    const gid = perms.group === undefined ? -1 : await resolveId(perms.group, "/etc/group", "control.group");
    try {
      await fs.chown(socketPath, uid, gid);
    } catch (cause) {
      throw new RollbridgeError("CONFIG_INVALID", `cannot chown control socket ${socketPath} to ${perms.owner ?? "-"}:${perms.group ?? "-"}: ${(cause as Error).message}`, {
        cause,
        fix: "run the daemon as root or as a member of the target group, or drop control.owner/control.group",
      });
    }
  }
  if (perms.mode !== undefined) await fs.chmod(socketPath, perms.mode);
}

/** Numeric ids pass through; names are looked up in /etc/passwd or /etc/group. */
export async function resolveId(value: number | string, file: string, field: string): Promise<number> {
  if (typeof value === "number") return value;
  if (/^\d+$/.test(value)) return Number(value);
  const text = await fs.readFile(file, "utf8").catch(() => "");
  for (const line of text.split("\n")) {
    const parts = line.split(":");
    if (parts[0] === value && parts[2] !== undefined) return Number(parts[2]);
  }
  throw new RollbridgeError("CONFIG_INVALID", `${field}: no entry named "${value}" in ${file}`, { fix: `use a numeric id, or create the ${field === "control.owner" ? "user" : "group"} first` });
}
