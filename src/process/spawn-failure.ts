// Why a process cannot be started, in words that say what to fix: `cwd /srv/x does not exist
// (ENOENT)`, `command gunicorn not found in PATH (ENOENT)`, `command ./bin/web is not executable
// (EACCES)`. Checked before spawning (the shell would only say "exited with code 127"), and used
// again to explain a spawn that failed anyway. Messages name the directory and the program,
// never the command line or an environment value (either may hold a secret).
import { accessSync, constants, statSync } from "node:fs";
import path from "node:path";
import { RollbridgeError } from "../errors.js";
import { programOf } from "./shell-command.js";
import type { SpawnSpec } from "./types.js";

/** What is known to stop `spec` from starting, or null when nothing is (the spawn may still fail). */
export function spawnPreflight(spec: SpawnSpec): RollbridgeError | null {
  return cwdProblem(spec.cwd) ?? programProblem(spec);
}

/** A spawn that failed (execa's error or result): its cause, without the command line execa's message quotes. */
export function spawnFailure(spec: SpawnSpec, error: unknown): RollbridgeError {
  const known = spawnPreflight(spec);
  if (known) return known;
  const code = errnoCode(error);
  return new RollbridgeError("SPAWN_FAILED", `could not spawn /bin/sh in ${spec.cwd} (${code ?? "unknown error"})`, {
    fix: "check that /bin/sh exists and that the daemon may run processes in that directory",
  });
}

function cwdProblem(cwd: string): RollbridgeError | null {
  const fix = "create the directory, or point processes[].cwd at one that exists (default: {{releasePath}}, the release directory)";
  try {
    if (!statSync(cwd).isDirectory()) return failure(`cwd ${cwd} is not a directory (ENOTDIR)`, fix);
  } catch (error) {
    const code = errnoCode(error) ?? "EIO";
    switch (code) {
      case "ENOENT":
        return failure(`cwd ${cwd} does not exist (ENOENT)`, fix);
      case "ENOTDIR":
        return failure(`cwd ${cwd} is not a directory (ENOTDIR)`, fix);
      case "EACCES":
        return failure(`cwd ${cwd} cannot be reached by the daemon's user: permission denied (EACCES)`, "give the daemon's user search (x) permission on every directory of that path");
      default:
        return failure(`cwd ${cwd} cannot be used (${code})`, fix);
    }
  }
  try {
    accessSync(cwd, constants.X_OK);
  } catch {
    return failure(`cwd ${cwd} cannot be entered by the daemon's user: permission denied (EACCES)`, "give the daemon's user search (x) permission on that directory");
  }
  return null;
}

function programProblem(spec: SpawnSpec): RollbridgeError | null {
  const program = programOf(spec.command);
  if (program === null) return null;
  if (program.includes("/")) {
    const file = path.resolve(spec.cwd, program);
    const found = executable(file);
    if (found === "ok") return null;
    if (found === "missing") return failure(`command ${program} not found (ENOENT)`, `check the path in processes[].command; a relative path is resolved in the process's cwd (${spec.cwd})`);
    return failure(`command ${program} is not executable: permission denied (EACCES)`, `make it executable (chmod +x ${program}), or run it through its interpreter (e.g. node ${program})`);
  }
  const searchPath = spec.env["PATH"];
  // Without PATH the shell uses its built-in default; do not guess at it.
  if (searchPath === undefined) return null;
  let denied = false;
  for (const dir of searchPath.split(":")) {
    const found = executable(path.resolve(spec.cwd, dir || ".", program));
    if (found === "ok") return null;
    if (found === "denied") denied = true;
  }
  if (denied) return failure(`command ${program} is not executable: permission denied (EACCES)`, `make it executable (chmod +x), or run it through its interpreter`);
  return failure(`command ${program} not found in PATH (ENOENT)`, "install it, give its absolute path in processes[].command, or start the daemon with a PATH that contains it");
}

/** "ok" for an executable regular file, "denied" for one that is not executable, "missing" otherwise. */
function executable(file: string): "ok" | "denied" | "missing" {
  try {
    if (!statSync(file).isFile()) return "missing";
  } catch {
    return "missing";
  }
  try {
    accessSync(file, constants.X_OK);
    return "ok";
  } catch {
    return "denied";
  }
}

function failure(message: string, fix: string): RollbridgeError {
  return new RollbridgeError("SPAWN_FAILED", message, { fix });
}

function errnoCode(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}
