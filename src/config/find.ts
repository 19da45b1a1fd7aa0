// Finding the config file and fingerprinting its text: no parser, no schema, so the CLI's
// commands that only need the daemon's socket can find it before loading either (load.ts).
import { createHash } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { RollbridgeError } from "../errors.js";

// Looked up in the working directory, in this order, when --config is not given.
export const CONFIG_FILE_NAMES: readonly string[] = ["rollbridge.yaml", "rollbridge.yml", "rollbridge.json", "rollbridge.js", "rollbridge.mjs", "rollbridge.cjs"];

// The config file to use: `explicit` (a file, or a directory to search) or the first known name in `cwd`.
export function findConfigPath(explicit: string | undefined, cwd: string): string {
  if (explicit !== undefined) {
    const path = resolve(cwd, explicit);
    if (!existsSync(path)) {
      throw new RollbridgeError("CONFIG_NOT_FOUND", `config file not found: ${path}`, {
        fix: "Check the path given to --config.",
      });
    }
    if (!statSync(path).isDirectory()) return path;
    return searchDirectory(path, "Pass --config with the config file's path, or create rollbridge.yaml in that directory.");
  }
  return searchDirectory(resolve(cwd), "Create rollbridge.yaml in this directory, or pass --config PATH.");
}

/**
 * The fingerprint of a YAML or JSON config file's text (sha256, hex). The daemon records the
 * fingerprint of the text it validated; a CLI reading the same text can trust what the daemon
 * derived from it (the socket, the desired file) without parsing it again.
 */
export function configFingerprint(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function searchDirectory(dir: string, fix: string): string {
  for (const name of CONFIG_FILE_NAMES) {
    const candidate = join(dir, name);
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  throw new RollbridgeError("CONFIG_NOT_FOUND", `no config file in ${dir} (looked for ${CONFIG_FILE_NAMES.join(", ")})`, { fix });
}
