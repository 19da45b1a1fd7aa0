// Readiness for systemd's Type=notify without a native addon: the `systemd-notify` binary, run
// with the daemon's pid. NOTIFY_SOCKET is taken out of the environment at start (managed
// processes must not speak for the unit), and kept here for the daemon's own messages.
import { execFile } from "node:child_process";
import { accessSync, constants } from "node:fs";
import path from "node:path";

let notifySocket: string | undefined;

/** Removes NOTIFY_SOCKET from `env`, remembering it for notifyReady(). Call once, before anything is spawned. */
export function takeNotifySocket(env: NodeJS.ProcessEnv): string | undefined {
  if (env.NOTIFY_SOCKET !== undefined) notifySocket = env.NOTIFY_SOCKET;
  delete env.NOTIFY_SOCKET;
  return notifySocket;
}

/** The NOTIFY_SOCKET this daemon was started with (a successor started by `upgrade` gets it too). */
export function savedNotifySocket(): string | undefined {
  return notifySocket;
}

export type NotifyOutcome = { sent: true } | { sent: false; reason: string };

/**
 * Tells systemd this pid is the unit's main process and ready (READY=1, MAINPID=pid). Resolves
 * to what happened; never throws. Without NOTIFY_SOCKET there is nobody to tell.
 */
export async function notifyReady(pid: number, envPath = process.env.PATH ?? ""): Promise<NotifyOutcome> {
  if (notifySocket === undefined) return { sent: false, reason: "NOTIFY_SOCKET is not set" };
  const binary = findExecutable("systemd-notify", envPath);
  if (binary === null) return { sent: false, reason: "NOTIFY_SOCKET is set but systemd-notify is not in PATH: use Type=simple or Type=exec (docs/systemd.md)" };
  const socket = notifySocket;
  return new Promise((resolve) => {
    execFile(binary, ["--ready", `--pid=${pid}`], { env: { NOTIFY_SOCKET: socket, PATH: envPath }, timeout: 5000 }, (error, _stdout, stderr) => {
      if (error) resolve({ sent: false, reason: `systemd-notify failed: ${(stderr || error.message).trim().slice(0, 300)}` });
      else resolve({ sent: true });
    });
  });
}

function findExecutable(name: string, envPath: string): string | null {
  for (const dir of envPath.split(":")) {
    if (dir === "" || !path.isAbsolute(dir)) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}
