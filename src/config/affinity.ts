// proxy.affinity, resolved: the proxy's options for what the config schema (affinity-schema.ts)
// accepted. No zod here: the CLI's fast path builds a resolved config without loading it.
import type { AffinityOptions } from "../proxy/affinity.js";
import { DEFAULT_MAX_SESSIONS, DEFAULT_RELEASE_COOKIE } from "../proxy/affinity.js";

/** proxy.affinity as the schema outputs it. */
export type AffinityInput = "none" | "cookie" | { cookie?: string; query?: string; header?: string; maxSessions?: number };

/** The proxy's options for the parsed proxy.affinity. */
export function resolveAffinity(input: AffinityInput): AffinityOptions {
  if (input === "none") return { mode: "none" };
  if (input === "cookie") return { mode: "cookie", cookie: DEFAULT_RELEASE_COOKIE };
  const maxSessions = input.maxSessions ?? DEFAULT_MAX_SESSIONS;
  if (input.cookie !== undefined) return { mode: "cookie", cookie: input.cookie };
  if (input.query !== undefined) return { mode: "query", name: input.query, maxSessions };
  return { mode: "header", name: input.header ?? "", maxSessions };
}

/** The release cookie's name for this affinity setting (sticky canaries use it whatever the mode). */
export function releaseCookieName(affinity: AffinityOptions): string {
  return affinity.mode === "cookie" ? affinity.cookie : DEFAULT_RELEASE_COOKIE;
}
