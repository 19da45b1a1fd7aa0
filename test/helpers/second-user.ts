// A second local user for security tests: created with a unique name (other test files create
// users too), commands run as it through setpriv, deleted afterwards. Only as root: callers
// skip, saying why, when `canCreateUsers` is false.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Why second-user tests cannot run here, or null when they can. */
export const secondUserUnavailable: string | null =
  process.getuid?.() !== 0
    ? "needs root to create a second local user (useradd) and to run commands as it (setpriv)"
    : !existsSync("/usr/sbin/useradd") || !existsSync("/usr/bin/setpriv")
      ? "needs useradd and setpriv (util-linux) to act as a second local user"
      : null;

export interface SecondUser {
  name: string;
  uid: number;
  gid: number;
  /** Runs `command args` as this user (no supplementary groups); never throws on a non-zero exit. */
  run(command: string, args: string[], options?: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number }): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Deletes the user (its processes must be gone). */
  remove(): Promise<void>;
}

/** Creates a user named `prefix` + random characters, without a home directory or a login shell. */
export async function createSecondUser(prefix: string): Promise<SecondUser> {
  const name = `${prefix}${randomBytes(3).toString("hex")}`;
  await run("useradd", ["-M", "-s", "/usr/sbin/nologin", name]);
  const uid = Number((await run("id", ["-u", name])).stdout.trim());
  const gid = Number((await run("id", ["-g", name])).stdout.trim());
  return {
    name,
    uid,
    gid,
    run: (command, args, options = {}) =>
      new Promise((resolve) => {
        execFile(
          "setpriv",
          [`--reuid=${name}`, `--regid=${name}`, "--clear-groups", "--", command, ...args],
          { env: options.env ?? { PATH: process.env.PATH ?? "/usr/bin:/bin" }, cwd: options.cwd, timeout: options.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 },
          (error, stdout, stderr) => {
            const code = error ? (typeof (error as { code?: unknown }).code === "number" ? (error as unknown as { code: number }).code : 1) : 0;
            resolve({ code, stdout: String(stdout), stderr: String(stderr) });
          },
        );
      }),
    async remove() {
      await run("userdel", [name]).catch(() => undefined);
    },
  };
}
