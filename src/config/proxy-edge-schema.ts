// The proxy's edge settings in the config schema: which peers may speak for clients
// (trustedProxies) and the optional unix-socket listener nginx connects to (proxy.socket).
import { isIP } from "node:net";
import { z } from "zod";
import { DEFAULTS } from "./constants.js";

/** What is wrong with `value` as an address or CIDR block, or undefined when it is one. */
export function cidrProblem(value: string): string | undefined {
  const slash = value.indexOf("/");
  const address = slash === -1 ? value : value.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return slash === -1 ? `"${value}" is neither an IP address nor a CIDR block` : `"${value}" is not a CIDR block: "${address}" is not an IP address`;
  if (slash === -1) return undefined;
  const prefix = value.slice(slash + 1);
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max) return `"${value}" is not a CIDR block: the prefix length of an IPv${family} block is 0 to ${max}`;
  return undefined;
}

const cidrSchema = z.string().superRefine((value, ctx) => {
  const problem = cidrProblem(value);
  if (problem !== undefined) {
    ctx.addIssue({
      code: "custom",
      message: problem,
      params: { fix: 'Write an address or a block, e.g. "10.0.0.0/8", "192.0.2.7" or "2001:db8::/32".' },
    });
  }
});

export const trustedProxiesSchema = z
  .array(cidrSchema)
  .default(() => [...DEFAULTS.proxy.trustedProxies])
  .meta({
    description: "Peers (IPv4/IPv6 CIDR blocks or addresses) whose X-Forwarded-For/-Proto/-Host are kept and appended to; from any other peer they are replaced by what the proxy sees. Peers on proxy.socket are always trusted.",
    examples: [["127.0.0.0/8", "::1/128", "10.0.0.0/8"]],
  });

const fileModeSchema = (field: string) => z.union([z.string().regex(/^(?:0o?)?[0-7]{1,3}$/, { error: `${field} must be an octal mode such as "660"` }), z.number().int().min(0).max(0o777)]);

export const proxySocketSchema = z
  .strictObject({
    path: z
      .string()
      .min(1)
      .meta({ description: "Path of the unix socket, relative to the config file or absolute.", examples: ["/run/rollbridge-proxy/shop.sock"] }),
    mode: fileModeSchema("proxy.socket.mode")
      .default(DEFAULTS.proxy.socketMode)
      .meta({ description: 'Permissions of the socket: who may connect (an octal string such as "660", or a number).', examples: ["660"] }),
    group: z
      .union([z.number().int().nonnegative(), z.string().min(1)])
      .optional()
      .meta({ description: "Group of the socket (name or gid): with mode 660, the group nginx runs as.", examples: ["www-data"] }),
  })
  .meta({
    description: "A unix socket the proxy also listens on (nginx: proxy_pass http://unix:PATH:). Its peers are trusted; who may connect is decided by its mode and group.",
  });
