// proxy.affinity in the config schema: how a client of a draining release keeps reaching it.
// "cookie" (or {cookie: NAME}) pins browsers by the release cookie the proxy sets; {query: NAME}
// and {header: NAME} pin by a session id the client sends (Socket.IO's `sid`, an X-Session
// header), remembered in a bounded LRU.
import { z } from "zod";
import { DEFAULT_MAX_SESSIONS, DEFAULT_RELEASE_COOKIE } from "../proxy/affinity.js";
import type { AffinityInput } from "./affinity.js";

// RFC 9110 token: what a cookie name and a header name may contain.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const tokenName = (what: string) =>
  z.string().regex(TOKEN, {
    error: `${what} must be a token (letters, digits and !#$%&'*+.^_\`|~-, no spaces, "=" or ";")`,
  });

const maxSessionsSchema = z
  .number()
  .int()
  .min(1)
  .max(10_000_000)
  .meta({ description: `How many session ids query or header affinity remembers (least recently used forgotten first). Default ${DEFAULT_MAX_SESSIONS}.`, examples: [DEFAULT_MAX_SESSIONS] });

const affinityObjectSchema = z
  .strictObject({
    cookie: tokenName("the cookie name")
      .optional()
      .meta({ description: "Cookie affinity with this cookie name.", examples: [DEFAULT_RELEASE_COOKIE] }),
    query: z
      .string()
      .min(1)
      .max(128)
      .optional()
      .meta({ description: "Query parameter that carries the session id (Socket.IO: sid).", examples: ["sid"] }),
    header: tokenName("the header name")
      .optional()
      .meta({ description: "Request header that carries the session id.", examples: ["X-Session"] }),
    maxSessions: maxSessionsSchema.optional(),
  })
  .superRefine((value, ctx) => {
    const given = (["cookie", "query", "header"] as const).filter((key) => value[key] !== undefined);
    if (given.length !== 1) {
      ctx.addIssue({
        code: "custom",
        message: given.length === 0 ? "names no cookie, query parameter or header" : `names ${given.join(" and ")}: only one of them may be given`,
        params: { fix: "Write one of: affinity: cookie, affinity: {cookie: rb_release}, affinity: {query: sid} or affinity: {header: X-Session}." },
      });
    } else if (value.maxSessions !== undefined && value.cookie !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["maxSessions"],
        message: "only applies to query and header affinity (cookie affinity remembers nothing)",
        params: { fix: "Remove maxSessions, or use affinity: {query: NAME, maxSessions: N}." },
      });
    }
  });

export const affinitySchema = z
  .union([z.enum(["none", "cookie"]), affinityObjectSchema])
  .default("none")
  .meta({
    description:
      'Session affinity while an old release drains: "cookie" (or {cookie: NAME}) sets a cookie naming the release that served a client and keeps sending it there; {query: NAME} or {header: NAME} remembers which release first served a session id. "none": every new request goes to the active release.',
    examples: ["cookie", { query: "sid" }],
  });

// The schema's output is what resolveAffinity (affinity.ts, zod-free) takes.
const _sameShape: (input: z.output<typeof affinitySchema>) => AffinityInput = (input) => input;
void _sameShape;
