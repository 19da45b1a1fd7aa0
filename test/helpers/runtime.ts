// The reconcile runtime without the binary: a real config file, desired file, proxy (on
// 127.0.0.1), executor, loop and fixture-app processes in one temp dir, in this test process.
// Between the planner's table tests and the full daemon: the executor's actions are applied to
// real processes and sockets, and tests read the world through executor.observe().
import { promises as fs } from "node:fs";
import path from "node:path";
import { loadConfig } from "../../src/config/load.js";
import type { Config } from "../../src/config/schema.js";
import { DesiredStore } from "../../src/observe/desired-store.js";
import { createProxy } from "../../src/proxy/create-proxy.js";
import type { ProxyServer } from "../../src/proxy/types.js";
import { EventLog } from "../../src/reconcile/events.js";
import { Executor } from "../../src/reconcile/execute.js";
import { ReconcileLoop } from "../../src/reconcile/loop.js";
import { plannerConfig } from "../../src/reconcile/planner-config.js";
import { releaseDir, writeTestConfig } from "./test-config.js";

export interface TestRuntime {
  dir: string;
  config: Config;
  proxyPort: number;
  desiredPath: string;
  events: EventLog;
  store: DesiredStore;
  proxy: ProxyServer;
  executor: Executor;
  loop: ReconcileLoop;
  /** A release directory under the temp dir. */
  release(name: string): Promise<string>;
  /** Writes the desired file (atomically, by rename) and runs a pass. */
  desire(text: string): Promise<void>;
  stop(): Promise<void>;
}

export interface RuntimeSetup {
  /** YAML for the processes list (default: `webProcess()`), filled in as startDaemon does. */
  processes?: string;
  /** Wraps the real proxy (a test that needs one of its calls to fail wraps it here). */
  wrapProxy?: (proxy: ProxyServer) => ProxyServer;
  /** Starts the loop (timers, resync); without it, tests drive passes with loop.runOnce(). */
  startLoop?: boolean;
}

export async function startRuntime(setup: RuntimeSetup = {}): Promise<TestRuntime> {
  const { dir, configPath, proxyPort } = await writeTestConfig({
    dirPrefix: "rb-rt-",
    application: "rt",
    proxy: { drainTimeoutMs: 3000, healthTimeoutMs: 10000, forceStopTimeoutMs: 3000 },
    extra: ["statePath: false", "resyncIntervalMs: 1000"].join("\n"),
    processes: setup.processes,
  });
  const { config } = await loadConfig(configPath, dir);
  const events = new EventLog(5000, null);
  // eslint-disable-next-line prefer-const -- the loop and the executor refer to each other
  let loop: ReconcileLoop;
  // Without startLoop nothing but the test runs a pass: a process exit or health change does not.
  const trigger = (reason: string) => {
    if (setup.startLoop) loop.trigger(reason);
  };
  const store = new DesiredStore(config.desiredPath, { settleMs: 0, onWake: () => trigger("desired-settled") });
  const real = createProxy({ host: "127.0.0.1", port: proxyPort, tcp: true, holdTimeoutMs: config.proxy.holdTimeoutMs, onBreach: () => trigger("rollout-breach") });
  const proxy = setup.wrapProxy ? setup.wrapProxy(real) : real;
  const executor = new Executor({ config, proxy, events, trigger });
  loop = new ReconcileLoop({ store, executor, events, plannerConfig: () => plannerConfig(config), resyncIntervalMs: 1000 });
  await real.listen();
  if (setup.startLoop) loop.start();
  return {
    dir,
    config,
    proxyPort,
    desiredPath: config.desiredPath,
    events,
    store,
    proxy: real,
    executor,
    loop,
    release: (name) => releaseDir(dir, name),
    async desire(text) {
      const tmp = path.join(dir, `.desired-${process.pid}-${Math.random().toString(36).slice(2)}`);
      await fs.writeFile(tmp, text);
      await fs.rename(tmp, config.desiredPath);
      await loop.runOnce();
    },
    async stop() {
      await loop.stop();
      await executor.stopEverything();
      await real.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
