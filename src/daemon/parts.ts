// The running daemon's parts, as the operations behind the control API (this directory) see
// them. main.ts's Daemon has this shape; the operations never import main.ts.
import type { Config } from "../config/schema.js";
import type { DesiredStore } from "../observe/desired-store.js";
import type { ProxyServer } from "../proxy/types.js";
import type { EventLog } from "../reconcile/events.js";
import type { Executor } from "../reconcile/execute.js";
import type { ReconcileLoop } from "../reconcile/loop.js";

export interface DaemonParts {
  /** The config in force (a reload replaces it). */
  readonly config: Config;
  readonly store: DesiredStore;
  readonly events: EventLog;
  readonly executor: Executor;
  readonly loop: ReconcileLoop;
  readonly proxy: ProxyServer;
}
