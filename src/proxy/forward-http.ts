// HTTP forwarding over undici: the `request` handler. Each request becomes one HttpExchange
// (http-exchange.ts), which is both the undici dispatch handler and the route-table entry, so a
// request costs one object, one header list and one options object.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Pool } from "undici";
import type { Affinity } from "./affinity.js";
import { HttpExchange } from "./http-exchange.js";
import { sendStatus } from "./responses.js";
import type { RouteTable } from "./route-table.js";
import type { TrustedPeers } from "./trusted-peers.js";

export interface HttpForwarderOptions {
  table: RouteTable<Pool>;
  /** Chooses each request's release (the active one, or a draining one its client is pinned to). */
  affinity: Affinity<Pool>;
  trust: TrustedPeers;
  holdTimeoutMs: number;
  /** Longest silence while the body is being read before 408 (0: none). */
  bodyTimeoutMs: number;
  onError: (message: string, data: Record<string, unknown>) => void;
  onResponse?: ((releaseKey: string | null, status: number) => void) | undefined;
}

/** Creates the `request` handler: checks the request, routes it at arrival and forwards it. */
export function createHttpForwarder(options: HttpForwarderOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { table, trust } = options;
  return function forwardHttp(req, res) {
    const exchange = new HttpExchange(req, res, options, trust.trusts(req.socket));
    const reject = exchange.reject;
    if (reject !== 0) {
      options.onResponse?.(table.active?.key ?? null, reject);
      sendStatus(res, reject);
      return;
    }
    if (table.paused) {
      exchange.hold();
      return;
    }
    const release = table.canary?.choose(req) ?? options.affinity.choose(req);
    if (release === null) {
      options.onResponse?.(null, 503);
      sendStatus(res, 503);
      return;
    }
    const backend = table.pick(release, null);
    if (backend !== null) exchange.dispatch(release, backend);
    else exchange.hold();
  };
}
