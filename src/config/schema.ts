// The config file's one zod schema: what users write, with the static defaults shown in the JSON Schema.
// Defaults that depend on other fields (health path, grace period, socket path, absolute paths)
// are filled by resolveConfig (resolved-config.ts), so the schema stays a faithful description of the input.
import { z } from "zod";
import { DEFAULTS, DRAIN_SIGNALS, MAX_REPLICAS, MAX_TIMER_MS, PROCESS_ID_PATTERN, PROCESS_POLICIES, STOP_SIGNAL_TARGETS, STOP_SIGNALS } from "./constants.js";
import { affinitySchema } from "./affinity-schema.js";
import { proxySocketSchema, trustedProxiesSchema } from "./proxy-edge-schema.js";
import { rolloutConfigSchema } from "./rollout-schema.js";

const text = () => z.string().min(1);
const durationMs = () => z.number().nonnegative();
const positiveInt = () => z.number().int().positive();
const nonNegativeInt = () => z.number().int().nonnegative();
const tcpPort = () => z.number().int().min(1).max(65535);
// A delay handed to a Node timer: past MAX_TIMER_MS it would fire at once.
const timerMs = () =>
  z
    .number()
    .nonnegative()
    .max(MAX_TIMER_MS, { error: `must be at most ${MAX_TIMER_MS} ms (about 24.8 days)` });

const portRangeSchema = z
  .strictObject({
    from: tcpPort().meta({ description: "First port of the range.", examples: [18182] }),
    to: tcpPort().meta({ description: "Last port of the range (inclusive).", examples: [18299] }),
  })
  .refine((range) => range.from <= range.to, {
    message: "port range must be ascending (from <= to)",
    params: { fix: "Swap the bounds so that from is the lower port, e.g. port: {from: 18182, to: 18299}." },
  });

const portSchema = z.union([tcpPort(), portRangeSchema]).meta({
  description: "A fixed port, or a {from, to} range a free port is picked from for each instance.",
  examples: [{ from: 18182, to: 18299 }, 7331],
});

const principalSchema = z.union([nonNegativeInt(), text()]);

const controlSchema = z.strictObject({
  path: text()
    .optional()
    .meta({
      description:
        "Unix socket of the control API. Default: control.sock in the private runtime directory (/run/rollbridge/<application>/ as root, else $XDG_RUNTIME_DIR/rollbridge/<application>/ or ~/.local/state/rollbridge/<application>/).",
      examples: ["/run/rollbridge/app/control.sock"],
    }),
  mode: z
    .union([z.string().regex(/^(?:0o?)?[0-7]{1,3}$/, { error: 'control.mode must be an octal mode such as "660"' }), z.number().int().min(0).max(0o777)])
    .refine((mode) => ((typeof mode === "number" ? mode : Number.parseInt(mode.replace(/^0o/, ""), 8)) & 0o002) === 0, {
      message: "gives every local user write (connect) permission, and whoever can connect runs code as the daemon's user",
      params: { fix: "Use 660 and put the users who deploy into control.group." },
    })
    .optional()
    .meta({ description: 'chmod applied to the socket once bound: an octal string ("660") or a number (0o660); others may not have write (connect) permission.', examples: ["660"] }),
  owner: principalSchema.optional().meta({ description: "chown owner of the socket: uid or user name. The CLI also trusts a socket (and its directory) owned by this user.", examples: ["deploy"] }),
  group: principalSchema.optional().meta({ description: "chown group of the socket: gid or group name.", examples: ["deploy"] }),
});

const proxySchema = z.strictObject({
  host: text()
    .default(DEFAULTS.proxy.host)
    .meta({ description: "Address the proxy listens on.", examples: ["127.0.0.1"] }),
  port: tcpPort()
    .default(DEFAULTS.proxy.port)
    .meta({ description: "Port the proxy listens on (point nginx here).", examples: [8182] }),
  upstreamHost: text()
    .default(DEFAULTS.proxy.upstreamHost)
    .meta({ description: "Host used to reach managed processes.", examples: ["127.0.0.1"] }),
  healthPath: z
    .string()
    .regex(/^\//, { error: 'health paths must start with "/"' })
    .default(DEFAULTS.proxy.healthPath)
    .meta({ description: "Default HTTP health-check path.", examples: ["/ping"] }),
  healthTimeoutMs: timerMs()
    .positive()
    .default(DEFAULTS.proxy.healthTimeoutMs)
    .meta({ description: "Default time a new process has to become healthy.", examples: [30000] }),
  drainTimeoutMs: timerMs()
    .default(DEFAULTS.proxy.drainTimeoutMs)
    .meta({ description: "How long in-flight requests and WebSockets of an old release may continue.", examples: [60000] }),
  forceStopTimeoutMs: timerMs()
    .default(DEFAULTS.proxy.forceStopTimeoutMs)
    .meta({ description: "Default grace period between the stop signal and SIGKILL.", examples: [10000] }),
  holdTimeoutMs: timerMs()
    .default(DEFAULTS.proxy.holdTimeoutMs)
    .meta({ description: "How long a request may wait for a ready backend before 502.", examples: [10000] }),
  headersTimeoutMs: timerMs()
    .positive()
    .default(DEFAULTS.proxy.headersTimeoutMs)
    .meta({ description: "Time allowed to receive a request's headers.", examples: [60000] }),
  requestTimeoutMs: timerMs()
    .default(DEFAULTS.proxy.requestTimeoutMs)
    .meta({ description: "Time allowed to receive a whole request; 0 means no limit.", examples: [0] }),
  keepAliveTimeoutMs: timerMs()
    .default(DEFAULTS.proxy.keepAliveTimeoutMs)
    .meta({ description: "Idle time before a client keep-alive connection is closed.", examples: [5000] }),
  bodyTimeoutMs: timerMs()
    .default(DEFAULTS.proxy.bodyTimeoutMs)
    .meta({
      description: "Longest pause while a client sends a request body; then it gets 408 and the request is aborted at the app. 0 means no limit.",
      examples: [60000],
    }),
  upgradeTimeoutMs: timerMs()
    .default(DEFAULTS.proxy.upgradeTimeoutMs)
    .meta({
      description: "Time the app has to answer a WebSocket handshake; then the client gets 502 and the handshake stops counting toward its release's drain. 0 means no limit.",
      examples: [30000],
    }),
  drainCloseCode: z
    .union([z.literal(1001), z.literal(1012)])
    .default(DEFAULTS.proxy.drainCloseCode)
    .meta({
      description: "The WebSocket close code that WebSockets still open at drainTimeoutMs get, in a close frame to the client and to the app: 1001 (Going Away) or 1012 (Service Restart).",
      examples: [1012],
    }),
  affinity: affinitySchema,
  trustedProxies: trustedProxiesSchema,
  socket: proxySocketSchema.optional(),
  tcp: z
    .boolean()
    .default(DEFAULTS.proxy.tcp)
    .meta({ description: "Listen on proxy.host:proxy.port. false (needs proxy.socket): the unix socket is the only way in.", examples: [false] }),
});

const healthSchema = z.strictObject({
  path: z
    .string()
    .regex(/^\//, { error: 'health paths must start with "/"' })
    .optional()
    .meta({ description: "HTTP path probed on the process's port. Default: proxy.healthPath (none when ipc is true).", examples: ["/ping"] }),
  timeoutMs: timerMs()
    .positive()
    .optional()
    .meta({ description: "Time the process has to become healthy. Default: proxy.healthTimeoutMs.", examples: [30000] }),
  intervalMs: timerMs()
    .positive()
    .default(DEFAULTS.health.intervalMs)
    .meta({ description: "Probe period.", examples: [200] }),
  startDelayMs: timerMs()
    .default(DEFAULTS.health.startDelayMs)
    .meta({ description: "Wait before the first probe (before the timeout starts).", examples: [0] }),
  ipc: z
    .boolean()
    .default(DEFAULTS.health.ipc)
    .meta({ description: 'Ready when the process sends "online" or "ready" over Node IPC.', examples: [true] }),
});

const lifecycleSchema = z.strictObject({
  quietCommand: text()
    .optional()
    .meta({ description: "Shell command run first: stop taking new work (templated; values are shell-quoted).", examples: ["kill -TSTP -$ROLLBRIDGE_PID"] }),
  drainCommand: text()
    .optional()
    .meta({ description: "Shell command that blocks until in-flight work is done (templated; values are shell-quoted).", examples: ["./bin/wait-idle"] }),
  drainTimeoutMs: timerMs()
    .default(DEFAULTS.lifecycle.drainTimeoutMs)
    .meta({ description: "Bound of the drain step; 0 skips it.", examples: [60000] }),
  stopCommand: text()
    .optional()
    .meta({ description: "Shell command run instead of sending stopSignal (templated; values are shell-quoted).", examples: ["./bin/stop"] }),
});

const restartSchema = z.strictObject({
  maxRestarts: nonNegativeInt()
    .optional()
    .meta({ description: "Restarts allowed within windowMs; unset means unlimited, 0 none.", examples: [5] }),
  windowMs: durationMs()
    .default(DEFAULTS.restart.windowMs)
    .meta({ description: "Rolling window for maxRestarts and the backoff; 0 means the process lifetime.", examples: [60000] }),
  backoffFactor: z
    .number()
    .min(1)
    .default(DEFAULTS.restart.backoffFactor)
    .meta({ description: "Multiplier applied to restartDelayMs per successive restart.", examples: [2] }),
  maxDelayMs: timerMs()
    .default(DEFAULTS.restart.maxDelayMs)
    .meta({ description: "Cap on the backed-off delay; 0 means no cap.", examples: [30000] }),
});

const memorySchema = z.strictObject({
  limitBytes: positiveInt().meta({ description: "RSS of the process group above which it is restarted.", examples: [536870912] }),
  warnBytes: nonNegativeInt()
    .default(DEFAULTS.memory.warnBytes)
    .meta({ description: "RSS at which a warning is logged once; 0 disables it.", examples: [402653184] }),
  checkIntervalMs: timerMs()
    .positive()
    .default(DEFAULTS.memory.checkIntervalMs)
    .meta({ description: "How often RSS is sampled.", examples: [5000] }),
});

const logFileSchema = z.strictObject({
  path: text().meta({ description: "File the process's stdout and stderr are appended to (templated).", examples: ["/var/log/app/{{processId}}.log"] }),
  maxBytes: positiveInt()
    .default(DEFAULTS.logFile.maxBytes)
    .meta({ description: "Size past which the file is rotated.", examples: [10485760] }),
  keep: nonNegativeInt()
    .default(DEFAULTS.logFile.keep)
    .meta({ description: "Rotated files kept.", examples: [5] }),
  gzip: z
    .boolean()
    .default(DEFAULTS.logFile.gzip)
    .meta({ description: "Compress rotated files.", examples: [true] }),
});

const envSchema = z.record(
  z.string().regex(/^[^=\0]+$/, { error: 'environment variable names must be non-empty and contain no "="' }),
  z
    .union([z.string(), z.number(), z.boolean()])
    .transform((value) => String(value))
    .pipe(z.string().refine((value) => !value.includes("\0"), { error: "environment values must not contain NUL characters (the OS cannot pass them)", params: { fix: "Remove the NUL character from the value." } })),
);

const processSchema = z.strictObject({
  id: z
    .string()
    .regex(PROCESS_ID_PATTERN, {
      error: (issue) => (typeof issue.input === "string" && issue.input.includes("#") ? 'process ids must not contain "#" (it marks replica instances such as worker#0)' : 'process ids may contain only letters, digits, ".", "_" and "-"'),
    })
    .meta({ description: "Unique name of the process.", examples: ["web"] }),
  policy: z.enum(PROCESS_POLICIES).meta({
    description: "proxied: receives the traffic; companion: per-release helper; singleton: never two at once; service: outlives releases.",
    examples: ["companion"],
  }),
  cwd: text()
    .default(DEFAULTS.process.cwd)
    .meta({ description: "Working directory (templated).", examples: ["{{releasePath}}"] }),
  command: z
    .string()
    .regex(/\S/, { error: "command must not be empty" })
    .meta({ description: "Shell command line (templated; each value is shell-quoted for where it sits).", examples: ["node server.js --port {{port}}"] }),
  env: envSchema.default({}).meta({ description: "Extra environment variables (values templated); numbers and booleans become strings.", examples: [{ NODE_ENV: "production" }] }),
  port: portSchema.optional(),
  health: z
    .union([z.literal(false), healthSchema])
    .optional()
    .meta({ description: "Readiness check; false disables it. Default: enabled for the proxied process only.", examples: [{ path: "/ping" }, false] }),
  stopSignal: z
    .enum(STOP_SIGNALS)
    .default(DEFAULTS.process.stopSignal)
    .meta({ description: "Signal sent to the process group to stop it gracefully.", examples: ["SIGINT"] }),
  stopSignalTarget: z
    .enum(STOP_SIGNAL_TARGETS)
    .default(DEFAULTS.process.stopSignalTarget)
    .meta({
      description: "Who gets stopSignal: the whole process group, or only the main process (a pre-fork server such as gunicorn that stops its workers itself). SIGKILL after gracefulStopMs always goes to the group.",
      examples: ["process"],
    }),
  stopMessage: text()
    .optional()
    .meta({ description: "IPC message sent instead of stopSignal.", examples: ["shutdown"] }),
  drainSignal: z
    .enum(DRAIN_SIGNALS)
    .optional()
    .meta({
      description:
        'Signal sent (like stopSignal: to the group, or the main process with stopSignalTarget: process) the moment the process\'s release starts draining, before any stop. Node processes with IPC also get {event: "draining"} over IPC.',
      examples: ["SIGUSR1"],
    }),
  nonBlockingDrain: z
    .boolean()
    .default(false)
    .meta({ description: "Companions only: stop as soon as the release is retired, without waiting for the connection drain.", examples: [true] }),
  lifecycle: lifecycleSchema.optional().meta({ description: "Commands run during a graceful stop." }),
  gracefulStopMs: timerMs()
    .optional()
    .meta({ description: "Time between the stop signal (or stopCommand) and SIGKILL. Default: proxy.forceStopTimeoutMs.", examples: [60000] }),
  restartDelayMs: timerMs()
    .default(DEFAULTS.process.restartDelayMs)
    .meta({ description: "Base delay before restarting after a crash.", examples: [1000] }),
  restart: restartSchema.optional().meta({ description: "Restart cap, window and backoff after crashes." }),
  memory: memorySchema.optional().meta({ description: "Restart the process when its RSS passes a limit." }),
  replicas: positiveInt()
    .max(MAX_REPLICAS)
    .default(DEFAULTS.process.replicas)
    .meta({ description: `Number of instances (port-less companions, or the proxied process with a port range); at most ${MAX_REPLICAS}.`, examples: [4] }),
  outputLines: positiveInt()
    .default(DEFAULTS.process.outputLines)
    .meta({ description: "Recent output lines kept for status and logs.", examples: [200] }),
  logFile: logFileSchema.optional().meta({ description: "Append the process's output to a rotated file." }),
});

const legacyProcessSchema = z.strictObject({
  name: text().meta({ description: "Label used in messages.", examples: ["legacy web"] }),
  includes: z
    .array(text())
    .min(1)
    .meta({ description: "Substrings that must all appear in a process's command line.", examples: [["/srv/app/", "node server.js"]] }),
  user: principalSchema.optional().meta({ description: "Only processes running as this user (name or uid) match. Default: any user.", examples: ["app"] }),
});

// One schema for the whole config file, as written (YAML, JSON or a JS module's export).
export const configSchema = z
  .strictObject({
    $schema: z.string().optional().meta({ description: "JSON Schema reference for editors; ignored." }),
    application: z
      .string()
      .regex(/^[^/\0]+$/, { error: 'application must be a non-empty name without "/"' })
      .optional()
      .meta({ description: "Name of the application. Default: the config directory's name.", examples: ["ticket-server"] }),
    control: controlSchema.prefault({}).meta({ description: "Control socket of the daemon." }),
    proxy: proxySchema.prefault({}).meta({ description: "The traffic proxy and shared defaults." }),
    processes: z
      .array(processSchema)
      .min(1)
      .meta({
        description: "Managed processes; exactly one is proxied.",
        examples: [[{ id: "web", policy: "proxied", command: "node server.js --port {{port}}", port: { from: 18182, to: 18299 } }]],
      }),
    releaseRetention: z
      .strictObject({
        keep: nonNegativeInt()
          .default(DEFAULTS.releaseRetention.keep)
          .meta({ description: "Stopped releases kept (active and draining ones are always kept).", examples: [10] }),
        maxAgeMs: durationMs()
          .default(DEFAULTS.releaseRetention.maxAgeMs)
          .meta({ description: "Also forget stopped releases older than this; 0 disables.", examples: [86400000] }),
      })
      .prefault({})
      .meta({ description: "How many stopped releases are remembered." }),
    statePath: z
      .union([z.boolean(), text()])
      .optional()
      .meta({
        description:
          "File the daemon persists its state to, so that a daemon starting after a crash adopts the processes still running; unset or true: state.json in the private state directory (/var/lib/rollbridge/<application>/ as root, else ~/.local/state/rollbridge/<application>/); false: no state file (a restarted daemon then cannot adopt anything). A relative path is resolved against the config file's directory.",
        examples: [true, "/var/lib/rollbridge/app/state.json", false],
      }),
    legacyTakeover: z
      .strictObject({
        screens: z
          .array(text())
          .default([])
          .meta({ description: "GNU screen session names to stop.", examples: [["ticket-server"]] }),
        processes: z.array(legacyProcessSchema).default([]).meta({ description: "Legacy processes to stop, matched by command line." }),
      })
      .prefault({})
      .meta({ description: "What predeploy-cleanup stops when migrating from another supervisor." }),
    desiredPath: text()
      .default(DEFAULTS.desiredPath)
      .meta({ description: "Desired-state file the daemon watches, relative to the config file.", examples: ["desired.yaml"] }),
    metrics: z
      .strictObject({
        host: text()
          .default(DEFAULTS.metricsHost)
          .meta({ description: "Address of the metrics listener.", examples: ["127.0.0.1"] }),
        port: tcpPort().meta({ description: "Port of the metrics listener.", examples: [9464] }),
      })
      .optional()
      .meta({ description: "Prometheus metrics at /metrics." }),
    rollout: rolloutConfigSchema.prefault({}),
    resyncIntervalMs: timerMs()
      .min(100)
      .default(DEFAULTS.resyncIntervalMs)
      .meta({ description: "Period of the daemon's full reconcile pass.", examples: [5000] }),
  })
  .meta({ title: "Rollbridge config", description: "Configuration of a Rollbridge daemon (rollbridge.yaml)." });

// The config as users write it (for typed JS configs).
export type ConfigInput = z.input<typeof configSchema>;

// The config after zod parsing, before dependent defaults and path resolution.
export type ParsedConfig = z.output<typeof configSchema>;

// src/reconcile/ and src/main.ts still import the resolved types from here; re-exported (types only, no runtime cycle) until they move.
export type { Config, ProcessConfig } from "./resolved-config.js";
