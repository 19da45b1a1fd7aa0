// The desired-state size cap, apart from the schema (zod, yaml) so the CLI can check a file it
// only reads and sends on, without loading the parser.
import { RollbridgeError } from "../errors.js";

/**
 * The largest desired file (and desired document over the control socket) accepted: a desired
 * state is a release, a few replica counts and some environment, never megabytes.
 */
export const MAX_DESIRED_BYTES = 1024 * 1024;

/** Refuses a desired file or document (`what`, e.g. "desired file /srv/app/desired.yaml") over MAX_DESIRED_BYTES, naming its size and the cap. */
export function checkDesiredSize(bytes: number, what: string): void {
  if (bytes <= MAX_DESIRED_BYTES) return;
  throw new RollbridgeError("DESIRED_INVALID", `${what} is ${bytes} bytes; the cap is ${MAX_DESIRED_BYTES} bytes (1 MiB)`, {
    fix: "A desired state names a release, replica counts and a little environment: move large data into the release directory or the config's env.",
  });
}
