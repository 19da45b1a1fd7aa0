// Keeping secrets out of the state file: messages persisted there (event texts, failure
// reasons) may quote a command line or an `env` value (an execa spawn error quotes the whole
// command), so every configured env value, release env value and command line the daemon has
// used is cut out before writing. What was learned is remembered: an event can outlive the
// process whose command it quotes.
import type { Config } from "../config/schema.js";
import type { ManagedProcess } from "../process/managed-process.js";
import type { Runtime } from "./runtime.js";
import type { Instance } from "./instance.js";
import { processById } from "../config/process-by-id.js";

/** Values shorter than this are not treated as secrets (they would shred ordinary words). */
const MIN_SECRET_LENGTH = 4;
/** Remembered values, oldest forgotten first. */
const MAX_SECRETS = 2000;

export const REDACTED = "[redacted]";

/** Learns the env values and command lines in use, and cuts them out of texts. */
export class SecretScrubber {
  private readonly secrets = new Set<string>();
  private ordered: string[] | null = null;

  /** Adds the config's and every current process's env values and command lines. */
  learn(config: Config, runtime: Runtime): void {
    for (const proc of config.processes) {
      this.add(proc.command);
      for (const value of Object.values(proc.env)) this.add(value);
    }
    for (const rec of runtime.releases.values()) for (const value of Object.values(rec.spec.env)) this.add(value);
    for (const slots of runtime.instances.values()) {
      for (const inst of slots.values()) {
        const declared = processById(config, inst.processId)?.env ?? {};
        const release = runtime.recordFor(inst.releaseKey)?.spec.env ?? {};
        for (const { proc } of processesOf(inst)) {
          this.add(proc.spec.command);
          // Rendered values of the variables the config and the desired file set (not the daemon's own).
          for (const name of [...Object.keys(declared), ...Object.keys(release)]) this.add(proc.spec.env[name]);
        }
      }
    }
  }

  scrub(text: string): string {
    this.ordered ??= [...this.secrets].sort((a, b) => b.length - a.length);
    let out = text;
    for (const secret of this.ordered) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
    return out;
  }

  private add(value: string | undefined): void {
    if (value === undefined || value.length < MIN_SECRET_LENGTH || this.secrets.has(value)) return;
    this.secrets.add(value);
    if (this.secrets.size > MAX_SECRETS) this.secrets.delete(this.secrets.values().next().value as string);
    this.ordered = null;
  }
}

/** Every OS process a slot holds, with its port: the current one, a starting replacement, replaced ones still draining. */
export function processesOf(inst: Instance): { proc: ManagedProcess; port: number | undefined }[] {
  const procs: { proc: ManagedProcess; port: number | undefined }[] = [];
  if (inst.proc) procs.push({ proc: inst.proc, port: inst.port });
  if (inst.successor?.proc) procs.push({ proc: inst.successor.proc, port: inst.successor.port });
  for (const retiring of inst.retiring ?? []) procs.push({ proc: retiring.proc, port: retiring.port });
  return procs;
}
