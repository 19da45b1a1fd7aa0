// Composition root of the daemon: config → desired store → executor → loop → proxy →
// control server, plus signals. `rollbridge daemon` calls runDaemon.
import { restoreDesiredAfterRollback } from "./daemon/rolled-back.js";
import { rolloutIntent, setPaused } from "./daemon/rollout-control.js";
import { promises as fs } from "node:fs";
import type http from "node:http";
import path from "node:path";
import { pruneConfigRecords, removeConfigRecord, writeConfigRecord } from "./config/config-record.js";
import type { LoadedConfig } from "./config/load.js";
import { loadConfig } from "./config/load.js";
import { proxyListenersText } from "./config/resolved-config.js";
import { defaultPidPath, ensurePrivateDir, runtimeDir } from "./config/runtime-dir.js";
import type { Config } from "./config/schema.js";
import { bindControlSocket, refuseIfRunning, resolveId } from "./control/socket.js";
import { createControlServer } from "./control/server.js";
import { controlRoutes } from "./control/routes.js";
import type { DaemonApi, LogQuery, RolloutQuery } from "./control/daemon-api.js";
import type {
  UpgradeResponse,
  ApplyResponse,
  DiffResponse,
  LogLine,
  PauseResponse,
  ReconcileResponse,
  RolloutIntentResponse,
  RestartRequest,
  RestartResponse,
  RollbackResponse,
  StatusDocument,
  StatusOptions,
  WaitOutcome,
} from "./control/protocol.js";
import type { DesiredDocument } from "./config/desired-schema.js";
import { applyDesired, diffDesired } from "./daemon/apply-desired.js";
import { documentFromInput } from "./daemon/desired-input.js";
import { followLines, retainedLines } from "./daemon/logs.js";
import { restart } from "./daemon/restart.js";
import { rollback } from "./daemon/rollback.js";
import { rolloutOutcome, rolloutProgress, rolloutTimedOut } from "./daemon/rollout-wait.js";
import { RollbridgeError, errorMessage } from "./errors.js";
import { DesiredStore } from "./observe/desired-store.js";
import { DesiredWatcher } from "./observe/desired-watcher.js";
import { Metrics } from "./observe/metrics.js";
import { startMetricsServer, type MetricsServer } from "./observe/metrics-server.js";
import { createProxy } from "./proxy/create-proxy.js";
import type { ProxyServer, ProxySocketOptions } from "./proxy/types.js";
import { EventLog } from "./reconcile/events.js";
import { Executor } from "./reconcile/execute.js";
import { ReconcileLoop } from "./reconcile/loop.js";
import { MemorySupervisor } from "./reconcile/memory-supervisor.js";
import { plannerConfig } from "./reconcile/planner-config.js";
import { StateKeeper } from "./reconcile/state-keeper.js";
import type { Plan } from "./reconcile/types.js";
import { buildStatus } from "./reconcile/status.js";
import { boundedLineSink } from "./reconcile/event-sink.js";
import { takeInheritedListeners, type InheritedListeners } from "./daemon-lifecycle/inherited-listeners.js";
import { notifyReady, savedNotifySocket, takeNotifySocket } from "./daemon-lifecycle/systemd-notify.js";
import { leavePredecessor, startSuccessor, takeHandover, tellPredecessor, type Handover } from "./daemon-lifecycle/handover.js";
import { lookupGid, readTrusted, writeAtomic } from "./safe-file.js";

export interface DaemonOptions {
  /** Where the config came from, for reloads (SIGHUP). */
  explicitConfigPath?: string;
  cwd?: string;
  /** Install SIGTERM/SIGINT/SIGHUP handlers (the CLI does; embedded tests may not). */
  handleSignals?: boolean;
  eventSink?: ((line: string) => void) | null;
  /** Listening sockets passed by systemd socket activation (runDaemon reads them from the environment). */
  inherited?: InheritedListeners;
  /**
   * The pid of a live daemon handing its processes over (`rollbridge upgrade`): its state file
   * is adopted although it still runs. Without it, a state file's processes are adopted only
   * once the daemon that wrote it is gone.
   */
  handoverFrom?: number;
  /**
   * This daemon is the successor a running one started (`rollbridge upgrade`): it serves on the
   * descriptors it was handed, adopts the predecessor's processes, and takes over the control
   * socket and the pid file only once all of that worked.
   */
  handover?: Handover;
  /** The pid file ensure-daemon records this daemon in (default: daemon.pid in the private runtime directory). */
  pidFile?: string;
}

/** How long a new daemon started by `upgrade` may take to adopt everything and serve. */
const UPGRADE_START_TIMEOUT_MS = 60_000;
/** Set by ensure-daemon: the pid file, so an upgrade's new daemon can take it over. */
const PID_FILE_ENV = "ROLLBRIDGE_DAEMON_PID_FILE";

/** The running daemon: its parts, wired; the control server reaches it only as a DaemonApi. */
export class Daemon implements DaemonApi {
  loaded: LoadedConfig;
  readonly events: EventLog;
  readonly store: DesiredStore;
  readonly proxy: ProxyServer;
  readonly executor: Executor;
  readonly loop: ReconcileLoop;
  readonly memory: MemorySupervisor;
  /** statePath: snapshots, orphans of a crashed daemon, release history across restarts. */
  readonly state: StateKeeper;
  readonly metrics: Metrics;
  private readonly watcher: DesiredWatcher;
  /** The config file, watched like the desired file: a saved change is a reload. */
  private readonly configWatcher: DesiredWatcher;
  private reloading: Promise<void> = Promise.resolve();
  /** The last reload failed: the next good read is reported even when it equals the running config. */
  private reloadFailed = false;
  /** The config record written at start (config-record.ts), removed at shutdown. */
  private recorded = false;
  private control: http.Server | null = null;
  /** The inode of the control socket this daemon bound at control.path (an upgrade's new daemon may rename its own over it). */
  private controlInode: SocketInode | null = null;
  private metricsServer: MetricsServer | null = null;
  private readonly passListeners = new Set<(plan: Plan) => void>();
  private shutdownPromise: Promise<void> | null = null;
  private readonly startedAt = Date.now();
  /** Filled in by start() (the group name is looked up then); the proxy reads it when it listens. */
  private readonly proxySocket: ProxySocketOptions = { path: "", mode: 0o660 };
  /** The private directory of the output FIFOs, once start() made it; undefined: pipes. */
  private outputDir: string | undefined = undefined;
  /** An upgrade in progress (one at a time). */
  private upgrading: Promise<UpgradeResponse> | null = null;
  /** Set once a new daemon took over: this one only finishes its connections and exits. */
  private retiring: Promise<void> | null = null;

  constructor(
    loaded: LoadedConfig,
    private readonly options: DaemonOptions = {},
  ) {
    this.loaded = loaded;
    const config = loaded.config;
    this.events = new EventLog(1000, options.eventSink === undefined ? boundedLineSink(process.stdout) : options.eventSink);
    // A settled change wakes the loop; the watcher follows whatever the file names (a `current` symlink).
    this.store = new DesiredStore(config.desiredPath, { onWake: () => this.loop.trigger("desired-settled"), onWatchPaths: (files) => this.watcher.setFiles(files) });
    this.metrics = new Metrics(this.events);
    const metrics = this.metrics;
    this.proxy = createProxy({
      host: config.proxy.host,
      port: config.proxy.port,
      tcp: config.proxy.tcp,
      trustedProxies: config.proxy.trustedProxies,
      holdTimeoutMs: config.proxy.holdTimeoutMs,
      drainCloseCode: config.proxy.drainCloseCode,
      affinity: config.proxy.affinity,
      timeouts: {
        headersTimeoutMs: config.proxy.headersTimeoutMs,
        requestTimeoutMs: config.proxy.requestTimeoutMs,
        keepAliveTimeoutMs: config.proxy.keepAliveTimeoutMs,
        bodyTimeoutMs: config.proxy.bodyTimeoutMs,
        upgradeTimeoutMs: config.proxy.upgradeTimeoutMs,
      },
      socket: config.proxy.socket === undefined ? undefined : this.proxySocket,
      onError: (message, data) => this.events.emit({ level: "warn", type: "proxy-error", message, data }),
      onResponse: config.metrics ? (key, status) => metrics.countResponse(key, status) : undefined,
      // A judged release over its error budget: the next pass rolls it back (within milliseconds).
      onBreach: () => this.loop.trigger("rollout-breach"),
    });
    this.executor = new Executor({
      config,
      proxy: this.proxy,
      events: this.events,
      trigger: (reason) => this.loop.trigger(reason),
      outputDir: () => this.outputDir,
      onRolledBack: (fromKey, toKey) => void restoreDesiredAfterRollback(this, fromKey, toKey),
    });
    this.loop = new ReconcileLoop({
      store: this.store,
      executor: this.executor,
      events: this.events,
      plannerConfig: () => plannerConfig(this.config),
      resyncIntervalMs: config.resyncIntervalMs,
      onPass: (plan) => {
        for (const listener of this.passListeners) listener(plan);
      },
    });
    this.memory = new MemorySupervisor(this.executor, this.events);
    this.state = new StateKeeper({
      config: () => this.config,
      executor: this.executor,
      events: this.events,
      activeKey: () => this.proxy.activeRelease(),
      outputDir: () => this.outputDir,
      handoverFrom: options.handoverFrom,
    });
    this.passListeners.add(() => this.state.afterPass());
    this.watcher = new DesiredWatcher({
      files: [config.desiredPath],
      debounceMs: 50,
      onChange: () => this.loop.trigger("desired-file"),
      onError: (error) => this.events.emit({ level: "warn", type: "watch-error", message: `watching ${config.desiredPath}: ${errorMessage(error)}` }),
    });
    this.configWatcher = new DesiredWatcher({
      files: [loaded.path],
      // Editors save in several steps; a half-saved config fails validation and is only reported.
      debounceMs: 300,
      onChange: () => void this.reload("config file changed"),
      onError: (error) => this.events.emit({ level: "warn", type: "watch-error", message: `watching ${loaded.path}: ${errorMessage(error)}` }),
    });
  }

  get config(): Config {
    return this.loaded.config;
  }

  async start(): Promise<void> {
    const config = this.config;
    // The default socket lives in the private runtime directory: created 0700 (0750 with control.group), refused if it is not ours.
    if (config.control.defaultPath) await ensurePrivateDir(path.dirname(config.control.path), { gid: controlGid(config) });
    else await fs.mkdir(path.dirname(config.control.path), { recursive: true });
    const handover = this.options.handover;
    // A handover: the predecessor answers on control.path until this daemon is ready to replace it.
    if (handover === undefined) await refuseIfRunning(config.control.path, async () => `pid ${await fetchDaemonPid(config.control.path)}`);
    const socket = config.proxy.socket;
    if (socket !== undefined) {
      // Resolved here: the proxy module reads no system files of its own.
      this.proxySocket.path = socket.path;
      this.proxySocket.mode = socket.mode;
      this.proxySocket.gid = socket.group === undefined ? undefined : await resolveId(socket.group, "/etc/group", "proxy.socket.group");
    }
    const inherited = this.options.inherited;
    if (inherited?.ignored) this.events.emit({ level: "warn", type: "socket-activation-ignored", message: inherited.ignored });
    if (inherited?.metrics != null && !config.metrics) {
      throw new RollbridgeError("CONFIG_INVALID", "a metrics socket was passed (socket activation) but the config has no metrics section", {
        fix: "add metrics: {host, port} to the config, or drop the metrics ListenStream= from the socket unit",
      });
    }
    if (handover !== undefined) return this.startAsSuccessor(handover);
    // The proxy accepts from here on (on a socket passed by socket activation: at once, the
    // connections that waited in its backlog while no daemon ran), but the release an earlier
    // daemon left active is known only once its snapshot is adopted below: until then requests
    // are held (up to proxy.holdTimeoutMs), not answered 503 for want of an active release.
    this.proxy.setStartHold(true);
    try {
      const listeners = await this.proxy.listen({ tcp: fdHandle(inherited?.proxy), socket: fdHandle(inherited?.proxySocket) });
      for (const warning of listeners.warnings) this.events.emit({ level: "warn", type: "proxy-socket-unreachable", message: warning });
    } catch (cause) {
      if (cause instanceof RollbridgeError) throw cause;
      const code = (cause as NodeJS.ErrnoException).code;
      throw new RollbridgeError("CONFIG_INVALID", `cannot listen on ${config.proxy.host}:${config.proxy.port}: ${code ?? errorMessage(cause)}`, {
        cause,
        fix: code === "EADDRINUSE" ? "another process holds the proxy port: stop it or change proxy.port (rollbridge doctor shows who)" : "check proxy.host and proxy.port",
      });
    }
    this.control = this.newControlServer();
    try {
      await bindControlSocket(this.control, config.control.path, config.control, async () => `pid ${await fetchDaemonPid(config.control.path)}`);
      this.controlInode = await socketInode(config.control.path);
    } catch (error) {
      await this.proxy.close();
      throw error;
    }
    if (config.metrics) {
      try {
        this.metricsServer = await startMetricsServer(config.metrics.host, config.metrics.port, () => this.renderMetrics(), fdHandle(inherited?.metrics));
      } catch (error) {
        this.control.close();
        await fs.unlink(config.control.path).catch(() => undefined);
        await this.proxy.close();
        throw error;
      }
    }
    await this.prepareOutputDir();
    // Only now, with the control socket ours, may the leftover snapshot be read and replaced. As
    // early as that: the proxy holds every request until then.
    await this.state.start();
    this.proxy.setStartHold(false);
    await this.recordConfig();
    await this.watcher.start();
    await this.configWatcher.start();
    const activated = inherited !== undefined && (inherited.proxy !== null || inherited.proxySocket !== null || inherited.metrics !== null);
    this.events.emit({
      type: "daemon-started",
      message: `daemon ${process.pid} serving ${proxyListenersText(config.proxy)}${activated ? " (sockets passed by socket activation)" : ""}, control ${config.control.path}`,
      data: { pid: process.pid, desiredPath: config.desiredPath, socketActivation: activated },
    });
    this.loop.start();
    this.memory.start();
    if (this.options.handleSignals) this.installSignals();
    if (this.options.handleSignals) void this.tellSystemdReady();
  }

  /**
   * start() of a successor (see DaemonOptions.handover). The order keeps the predecessor the one
   * that serves until this daemon can: the control socket is bound beside control.path; the
   * snapshot the predecessor just wrote is adopted (every process, same pids); only then does the
   * proxy accept on the handed descriptors (until then connections wait in their backlog, or
   * reach the predecessor, which still accepts); last, the control socket is renamed over
   * control.path and the pid file takes this pid. A failure before that rename leaves the
   * predecessor untouched: it adopted nothing, and nothing it owns was moved.
   */
  private async startAsSuccessor(handover: Handover): Promise<void> {
    const config = this.config;
    const inherited = handover.listeners;
    const staging = `${config.control.path}.${process.pid}`;
    this.control = this.newControlServer();
    try {
      await bindControlSocket(this.control, staging, config.control, async () => "another process");
      this.controlInode = await socketInode(staging);
      await this.prepareOutputDir();
      await this.state.start();
      const listeners = await this.proxy.listen({ tcp: fdHandle(inherited.proxy), socket: fdHandle(inherited.proxySocket) });
      for (const warning of listeners.warnings) this.events.emit({ level: "warn", type: "proxy-socket-unreachable", message: warning });
      if (config.metrics) this.metricsServer = await startMetricsServer(config.metrics.host, config.metrics.port, () => this.renderMetrics(), fdHandle(inherited.metrics));
      await this.recordConfig();
      await this.watcher.start();
      await this.configWatcher.start();
      await fs.rename(staging, config.control.path);
    } catch (error) {
      await fs.unlink(staging).catch(() => undefined);
      throw error;
    }
    await this.takeOverPidFile(handover.from);
    this.events.emit({
      type: "daemon-started",
      message: `daemon ${process.pid} took over from daemon ${handover.from}: serving ${proxyListenersText(config.proxy)} on the sockets it handed over, control ${config.control.path}`,
      data: { pid: process.pid, desiredPath: config.desiredPath, socketActivation: false },
    });
    this.loop.start();
    this.memory.start();
    if (this.options.handleSignals) this.installSignals();
    // Awaited here: systemd must know the new main pid before the old one exits.
    if (this.options.handleSignals) await this.tellSystemdReady();
  }

  private newControlServer(): http.Server {
    return createControlServer(controlRoutes(this), {
      onFailure: (f) => this.events.emit({ level: "warn", type: "command-failed", message: `control request ${f.method} ${f.path} failed (${f.status} ${f.code}): ${f.message}`, data: { ...f } }),
    });
  }

  /** The pid file named the predecessor: it names this daemon now (a file naming another pid is left alone). */
  private async takeOverPidFile(from: number): Promise<void> {
    try {
      if ((await this.pidFileNames()) === from) await this.writePidFile();
    } catch (error) {
      this.events.emit({ level: "warn", type: "config-record-failed", message: `could not write this daemon's pid to ${this.pidFilePath()}: ${errorMessage(error)}` });
    }
  }

  /**
   * `rollbridge upgrade` and SIGUSR2: starts a new daemon from the installed code and hands it
   * the listeners and every process (handover.ts). Runs between reconcile passes: the snapshot
   * is written and frozen, the new daemon adopts from it, and this daemon's loop never runs
   * again once the new one is ready. Then this daemon stops accepting, finishes what its
   * connections still carry (WebSockets until they close or proxy.drainTimeoutMs) and exits,
   * leaving every process running. When the new daemon fails to start, nothing changed here.
   */
  upgrade(origin: string): Promise<UpgradeResponse> {
    if (this.retiring !== null || this.shutdownPromise !== null) {
      return Promise.reject(
        new RollbridgeError("DAEMON_START_FAILED", `daemon ${process.pid} is ${this.retiring !== null ? "already handing over to a new daemon" : "shutting down"}`, {
          fix: "run rollbridge status: it answers from the daemon that serves now",
        }),
      );
    }
    this.upgrading ??= this.doUpgrade(origin).finally(() => {
      this.upgrading = null;
    });
    return this.upgrading;
  }

  private async doUpgrade(origin: string): Promise<UpgradeResponse> {
    const started = Date.now();
    const script = process.argv[1];
    this.events.emit({ type: "upgrade-started", message: `upgrade (${origin}): starting a new daemon from ${script ?? "?"}`, data: { pid: process.pid, origin } });
    let newPid: number;
    try {
      if (script === undefined) throw new RollbridgeError("DAEMON_START_FAILED", "cannot tell which script this daemon was started from");
      // The new daemon adopts from the state file: without one it would start every process afresh.
      if (!this.state.active()) {
        throw new RollbridgeError("DAEMON_START_FAILED", "upgrade needs the state file (statePath), which this daemon does not keep: the new daemon could not adopt the processes", {
          fix: "remove statePath: false from the config (the default keeps it in the private state directory), reload or restart the daemon, then upgrade",
        });
      }
      newPid = await this.loop.exclusive(async () => {
        await this.state.flush();
        this.state.suspend(true);
        const pidFileWasOurs = (await this.pidFileNames()) === process.pid;
        try {
          const fds = this.proxy.listenerFds();
          const successor = await startSuccessor({
            script,
            execArgv: process.execArgv,
            configPath: this.loaded.path,
            cwd: process.cwd(),
            env: this.successorEnv(),
            fds: { proxy: fds.tcp, proxySocket: fds.socket, metrics: this.metricsServer?.fd() ?? null },
            timeoutMs: UPGRADE_START_TIMEOUT_MS,
          });
          // Still between passes: none runs here again, the new daemon reconciles now.
          this.loop.halt();
          return successor.pid;
        } catch (error) {
          await this.takeBack(pidFileWasOurs);
          this.state.suspend(false);
          await this.state.flush();
          throw error;
        }
      });
    } catch (error) {
      const code = error instanceof RollbridgeError ? error.code : "DAEMON_START_FAILED";
      this.events.emit({ level: "error", type: "upgrade-failed", message: `upgrade failed, daemon ${process.pid} keeps serving: ${errorMessage(error)}`, data: { code } });
      throw error;
    }
    const durationMs = Date.now() - started;
    this.events.emit({
      type: "daemon-handed-over",
      message: `daemon ${newPid} took over the listeners and every process in ${durationMs} ms; daemon ${process.pid} finishes its connections and exits`,
      data: { oldPid: process.pid, newPid, durationMs },
    });
    this.retiring = this.retire();
    return { ok: true, oldPid: process.pid, newPid, durationMs };
  }

  /**
   * After a new daemon failed: what it may have taken before it died is this daemon's again. A
   * new daemon renames its control socket over control.path before it reports ready; one that
   * died after that rename left control.path to a dead socket (the CLI could not reach this
   * daemon, which still serves) and maybe the pid file and the config record naming itself.
   * The control socket is bound afresh beside control.path and renamed over it; the old server,
   * whose path is not its own any more, is closed first, as closing a unix server unlinks its
   * path (the dead socket's, at that moment). Connections still open on it (the `upgrade`
   * request waiting for this answer) are answered as usual.
   */
  private async takeBack(pidFileWasOurs: boolean): Promise<void> {
    const config = this.config;
    try {
      const now = await socketInode(config.control.path);
      if (this.control !== null && (now === null || this.controlInode === null || now.dev !== this.controlInode.dev || now.ino !== this.controlInode.ino)) {
        const staging = `${config.control.path}.${process.pid}`;
        const fresh = this.newControlServer();
        await bindControlSocket(fresh, staging, config.control, async () => "another process");
        const inode = await socketInode(staging);
        this.control.close();
        await fs.rename(staging, config.control.path);
        this.control = fresh;
        this.controlInode = inode;
        this.events.emit({ level: "warn", type: "control-socket-reclaimed", message: `the new daemon had taken ${config.control.path} before it failed: daemon ${process.pid} answers on it again` });
      }
      if (pidFileWasOurs && (await this.pidFileNames()) !== process.pid) await this.writePidFile();
      if (this.recorded) await this.recordConfig();
    } catch (error) {
      this.events.emit({ level: "error", type: "control-socket-reclaim-failed", message: `could not take ${config.control.path} back after the failed upgrade: ${errorMessage(error)}` });
    }
  }

  /** The pid the pid file names (null: no file, or one not to be trusted). */
  private async pidFileNames(): Promise<number | null> {
    const text = await readTrusted(this.pidFilePath(), { maxBytes: 64 }).catch(() => null);
    const pid = text === null ? NaN : Number(text.text.trim());
    return Number.isInteger(pid) ? pid : null;
  }

  private async writePidFile(): Promise<void> {
    await writeAtomic(this.pidFilePath(), `${process.pid}\n`, { mode: 0o644, purpose: "write the pid file" });
  }

  private pidFilePath(): string {
    return this.options.pidFile ?? defaultPidPath(this.config.application);
  }

  /** The new daemon's environment: this one's, plus what was taken out of it at start for the daemon alone. */
  private successorEnv(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env };
    const notify = savedNotifySocket();
    if (notify !== undefined) env.NOTIFY_SOCKET = notify;
    if (this.options.pidFile !== undefined) env[PID_FILE_ENV] = this.options.pidFile;
    return env;
  }

  /** After a handover: stop accepting, let the open connections finish (up to drainTimeoutMs), exit. Nothing managed is stopped. */
  private async retire(): Promise<void> {
    const started = Date.now();
    this.memory.stop();
    this.state.detach();
    this.executor.releaseAll();
    this.proxy.stopAccepting();
    // The control socket's path is the new daemon's now, but a keep-alive client (a tool's HTTP
    // agent) would go on asking this one: answer with Connection: close and drop idle connections,
    // so its next request opens control.path afresh and reaches the new daemon.
    this.control?.prependListener("request", (_req: http.IncomingMessage, res: http.ServerResponse) => res.setHeader("Connection", "close"));
    this.control?.closeIdleConnections();
    await this.metricsServer?.close().catch(() => undefined);
    await this.watcher.close().catch(() => undefined);
    await this.configWatcher.close().catch(() => undefined);
    this.store.close();
    const deadline = started + this.config.proxy.drainTimeoutMs;
    let open = await this.proxy.openConnections();
    while (open > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      open = await this.proxy.openConnections();
    }
    // What is still open at the deadline is closed as a drain closes it (close frames both ways,
    // last chunks, 504 for unanswered requests); only then is the rest torn down.
    await this.proxy.closeEveryRelease();
    await this.proxy.close();
    this.metrics.close();
    this.events.emit({
      type: "daemon-retired",
      message: `daemon ${process.pid} exits after the handover: its connections ${open > 0 ? `were closed at proxy.drainTimeoutMs (${open} still open)` : "all finished"} after ${Date.now() - started} ms`,
      data: { open, drainMs: Date.now() - started },
    });
    // The control socket is never closed here: closing it would unlink the path, which is the new daemon's.
    if (this.options.handleSignals) setImmediate(() => process.exit(0));
  }

  /** Type=notify: READY=1 and MAINPID once the listeners and the control socket are up. */
  private async tellSystemdReady(): Promise<void> {
    const outcome = await notifyReady(process.pid);
    if (outcome.sent) this.events.emit({ type: "systemd-notified", message: `told systemd that daemon ${process.pid} is ready (READY=1, MAINPID=${process.pid})` });
    else if (outcome.reason !== "NOTIFY_SOCKET is not set") this.events.emit({ level: "warn", type: "systemd-notify-failed", message: outcome.reason });
  }

  status(options: StatusOptions = {}): StatusDocument {
    return buildStatus(
      this.config,
      this.config.desiredPath,
      this.store.current(),
      this.executor,
      this.loop.latestPlan(),
      Date.now(),
      this.state.orphans(),
      options,
      this.loop.latestRollout(),
      this.proxy.paused(),
      this.loop.failingActions(),
      (inst) => this.memory.usageOf(inst),
    );
  }

  /** The Prometheus exposition: counters plus a status snapshot taken now. */
  renderMetrics(): string {
    const s = this.status();
    return this.metrics.render({
      releases: s.releases.map((r) => ({ key: r.key, id: r.id, state: r.state, connections: r.connections })),
      processes: s.processes.map((p) => ({ id: p.id, instanceId: p.instanceId, releaseId: p.releaseId, rssBytes: p.rssBytes ?? null })),
      activeReleaseId: s.activeRelease?.id ?? null,
      reconcile: { passes: this.loop.passes, errors: this.loop.errors },
    });
  }

  logs(query: LogQuery): LogLine[] {
    return retainedLines(this, query);
  }

  followLogs(query: LogQuery, listener: (line: LogLine) => void): () => void {
    return followLines(this, query, listener);
  }

  documentFromInput(input: unknown): Promise<unknown> {
    return documentFromInput(input, this.config.desiredPath);
  }

  apply(document: unknown, options: { dryRun: boolean }): Promise<ApplyResponse> {
    return applyDesired(this, document, options);
  }

  diff(document: DesiredDocument | undefined): Promise<DiffResponse> {
    return diffDesired(this, document);
  }

  rollback(releaseId: string | undefined): Promise<RollbackResponse> {
    return rollback(this, releaseId);
  }

  restart(request: RestartRequest): RestartResponse {
    return restart(this, request);
  }

  async reconcile(): Promise<ReconcileResponse> {
    const plan = await this.loop.runOnce();
    return { converged: plan?.converged ?? false };
  }

  rolloutOutcome(query: RolloutQuery, afterPass: boolean): WaitOutcome | null {
    return rolloutOutcome(this, query, afterPass);
  }

  rolloutIntent(kind: "promote" | "abort"): Promise<RolloutIntentResponse> {
    return rolloutIntent(this, kind);
  }

  setPaused(paused: boolean): PauseResponse {
    return setPaused(this, paused);
  }

  rolloutProgress(query: RolloutQuery): string[] {
    return rolloutProgress(this, query);
  }

  rolloutTimedOut(query: RolloutQuery, timeoutMs: number, abort: boolean): Promise<WaitOutcome> {
    return rolloutTimedOut(this, query, timeoutMs, abort);
  }

  trigger(reason: string): void {
    this.loop.trigger(reason);
  }

  uptimeMs(): number {
    return Date.now() - this.startedAt;
  }

  onPass(listener: (plan: Plan) => void): () => void {
    this.passListeners.add(listener);
    return () => this.passListeners.delete(listener);
  }

  /**
   * Re-reads the config (SIGHUP, or the file changed); process definitions apply to the next
   * start, listeners may not move. One reload at a time; an unchanged file is not an event.
   */
  reload(origin = "SIGHUP"): Promise<void> {
    this.reloading = this.reloading.then(() => this.doReload(origin));
    return this.reloading;
  }

  private async doReload(origin: string): Promise<void> {
    if (this.shutdownPromise) return;
    try {
      const next = await loadConfig(this.options.explicitConfigPath ?? this.loaded.path, this.options.cwd ?? process.cwd());
      // After a failed reload, a good file is news even when it equals the running config.
      if (origin !== "SIGHUP" && !this.reloadFailed && JSON.stringify(next.config) === JSON.stringify(this.config)) {
        // The same config in other text (a comment): the record follows the text, for the CLI's fast path.
        if (next.fingerprint !== this.loaded.fingerprint) {
          this.loaded = { ...this.loaded, fingerprint: next.fingerprint };
          await this.recordConfig();
        }
        return;
      }
      this.reloadFailed = false;
      const refused = listenerChanges(this.config, next.config);
      if (refused.length > 0) {
        this.events.emit({ level: "error", type: "config-reload-refused", message: `config reload refused: ${refused.join("; ")} cannot change while the daemon runs (restart the daemon for that)` });
        return;
      }
      // Between passes (the loop's exclusive section): a pass in flight ends on the config it
      // began with, and no pass ever plans with one config and acts with another.
      await this.loop.exclusive(() => {
        this.loaded = next;
        this.executor.config = next.config;
      });
      await this.recordConfig();
      this.events.emit({ type: "config-reloaded", message: `config reloaded from ${next.path} (${origin})` });
      this.loop.trigger("config-reload");
    } catch (error) {
      this.reloadFailed = true;
      this.events.emit({ level: "error", type: "config-reload-failed", message: `config reload failed, keeping the running config: ${errorMessage(error)}` });
    }
  }

  shutdown(reason = "shutdown"): Promise<void> {
    // Handed over: every process is the new daemon's; this one only finishes its connections.
    if (this.retiring !== null) return this.retiring;
    if (!this.shutdownPromise) this.shutdownPromise = this.doShutdown(reason);
    return this.shutdownPromise;
  }

  /** Shutdown asked for over the control socket: in CLI mode the process then exits. */
  requestShutdown(reason: string): void {
    void this.shutdown(reason).finally(() => {
      if (this.options.handleSignals) setImmediate(() => process.exit(0));
    });
  }

  private async doShutdown(reason: string): Promise<void> {
    this.events.emit({ type: "daemon-stopping", message: `daemon stopping (${reason}): stopping every managed process` });
    await this.loop.stop();
    this.memory.stop();
    await this.watcher.close();
    await this.configWatcher.close();
    this.store.close();
    await this.executor.stopEverything();
    await this.state.close();
    await this.proxy.close();
    await this.metricsServer?.close();
    this.metrics.close();
    if (this.control) {
      this.control.closeAllConnections();
      await new Promise<void>((resolve) => this.control?.close(() => resolve()));
    }
    await fs.unlink(this.config.control.path).catch(() => undefined);
    await this.forgetRuntimeFiles();
    // Everything stopped, so no FIFO is left: the output directory goes, and the private
    // directory too when nothing else is in it (rmdir refuses a directory that is not empty).
    if (this.outputDir !== undefined) {
      await fs.rmdir(this.outputDir).catch(() => undefined);
      await fs.rmdir(path.dirname(this.outputDir)).catch(() => undefined);
    }
    this.events.emit({ type: "daemon-stopped", message: "daemon stopped" });
  }

  /**
   * The output FIFOs' directory, `output/` in the private runtime directory (0700, ours): what
   * processes write survives the daemon there. When it cannot be made, output goes to pipes.
   */
  private async prepareOutputDir(): Promise<void> {
    const dir = path.join(runtimeDir(this.config.application), OUTPUT_DIR);
    try {
      await ensurePrivateDir(path.dirname(dir), { gid: controlGid(this.config) });
      await ensurePrivateDir(dir);
      this.outputDir = dir;
    } catch (error) {
      this.events.emit({ level: "warn", type: "output-fifo-failed", message: `process output goes to pipes, not FIFOs in ${dir} (it will not survive a daemon crash): ${errorMessage(error)}` });
    }
  }

  /**
   * Records which socket serves this config file, so a CLI finds it while the file is broken,
   * and (with the fingerprint of the text) without parsing the file when it is unchanged.
   */
  private async recordConfig(): Promise<void> {
    const config = this.config;
    try {
      await writeConfigRecord({
        configPath: this.loaded.path,
        socket: config.control.path,
        owner: config.control.owner,
        desiredPath: config.desiredPath,
        application: config.application,
        pid: process.pid,
        configHash: this.loaded.fingerprint,
        controlDefault: config.control.defaultPath,
      });
      this.recorded = true;
      await pruneConfigRecords();
    } catch (error) {
      this.events.emit({
        level: "warn",
        type: "config-record-failed",
        message: `could not record the control socket of ${this.loaded.path} in the runtime directory (a CLI cannot find this daemon while that file is broken): ${errorMessage(error)}`,
      });
    }
  }

  /** At shutdown: the config record, and the default pid file when it names this daemon. */
  private async forgetRuntimeFiles(): Promise<void> {
    if (this.recorded) await removeConfigRecord(this.loaded.path, process.pid).catch(() => undefined);
    if ((await this.pidFileNames()) === process.pid) await fs.unlink(this.pidFilePath()).catch(() => undefined);
  }

  private installSignals(): void {
    const stop = (signal: string) => {
      void this.shutdown(signal).finally(() => process.exit(0));
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
    process.on("SIGHUP", () => void this.reload());
    // nginx's convention: SIGUSR2 starts the new binary, which takes over the listeners.
    process.on("SIGUSR2", () => void this.upgrade("SIGUSR2").catch(() => undefined));
  }
}

/** Which socket file a path is, by device and inode (null when nothing is there). */
interface SocketInode {
  dev: number;
  ino: number;
}

async function socketInode(file: string): Promise<SocketInode | null> {
  const stat = await fs.lstat(file).catch(() => null);
  return stat === null ? null : { dev: stat.dev, ino: stat.ino };
}

function fdHandle(fd: number | null | undefined): { fd: number } | null {
  return fd === null || fd === undefined ? null : { fd };
}

/** The output FIFOs' directory inside the private runtime directory. */
const OUTPUT_DIR = "output";

function controlGid(config: Config): number | undefined {
  return config.control.group === undefined ? undefined : (lookupGid(config.control.group) ?? undefined);
}

function listenerChanges(a: Config, b: Config): string[] {
  const changes: string[] = [];
  if (a.proxy.host !== b.proxy.host || a.proxy.port !== b.proxy.port || a.proxy.tcp !== b.proxy.tcp) changes.push("proxy.host/proxy.port/proxy.tcp");
  if (JSON.stringify(a.proxy.socket) !== JSON.stringify(b.proxy.socket)) changes.push("proxy.socket");
  // Fixed when the proxy is created: refused rather than silently ignored.
  for (const key of ["trustedProxies", "bodyTimeoutMs", "upgradeTimeoutMs", "drainCloseCode", "affinity"] as const) {
    if (JSON.stringify(a.proxy[key]) !== JSON.stringify(b.proxy[key])) changes.push(`proxy.${key}`);
  }
  if (a.control.path !== b.control.path) changes.push("control.path");
  if (a.desiredPath !== b.desiredPath) changes.push("desiredPath");
  return changes;
}

async function fetchDaemonPid(socketPath: string): Promise<string> {
  const { request } = await import("./control/client.js");
  const status = await request<{ daemonPid: number }>(socketPath, "GET", "/status", undefined, 2000);
  return String(status.daemonPid);
}

/** `rollbridge daemon`: start in the foreground and stay until a signal or `shutdown`. */
export async function runDaemon(loaded: LoadedConfig, options: DaemonOptions = {}): Promise<Daemon> {
  // Before anything is spawned: managed processes never see LISTEN_*, NOTIFY_SOCKET or the handover's variables.
  const handover = takeHandover(process.env, typeof process.send === "function");
  const activated = takeInheritedListeners(process.env, process.pid);
  takeNotifySocket(process.env);
  const pidFile = process.env[PID_FILE_ENV];
  delete process.env[PID_FILE_ENV];
  const handed: DaemonOptions = handover === null ? { inherited: activated } : { inherited: handover.listeners, handover, handoverFrom: handover.from };
  const daemon = new Daemon(loaded, { handleSignals: true, ...handed, ...(pidFile !== undefined && path.isAbsolute(pidFile) ? { pidFile } : {}), ...options });
  try {
    await daemon.start();
  } catch (error) {
    if (handover !== null) await tellPredecessor({ type: "rollbridge-failed", pid: process.pid, message: errorMessage(error) });
    throw error;
  }
  if (handover !== null) {
    await tellPredecessor({ type: "rollbridge-ready", pid: process.pid });
    leavePredecessor();
  }
  return daemon;
}
