// Control routes for a rollout by hand: `POST /promote`, `POST /abort` (a canary step or bake
// window), `POST /pause`, `POST /resume` (new requests at the proxy).
import type { DaemonApi } from "./daemon-api.js";
import type { Route } from "./server.js";

export function rolloutRoutes(daemon: DaemonApi): Route[] {
  return [
    { method: "POST", path: "/promote", handler: () => daemon.rolloutIntent("promote") },
    { method: "POST", path: "/abort", handler: () => daemon.rolloutIntent("abort") },
    { method: "POST", path: "/pause", handler: () => daemon.setPaused(true) },
    { method: "POST", path: "/resume", handler: () => daemon.setPaused(false) },
  ];
}
