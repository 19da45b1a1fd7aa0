// Fixed values of the config format (process policies, stop signals, the process-id alphabet and
// the static defaults), shared by the zod schema, the resolver, the validators and desired.yaml.

// The four ways a process relates to releases; the schema, the validators and the planner all switch on them.
export const PROCESS_POLICIES = ["proxied", "companion", "singleton", "service"] as const;

// A process's policy as a string-literal union, so switches over it can be exhaustive.
export type ProcessPolicy = (typeof PROCESS_POLICIES)[number];

// Signals common to Linux and macOS, fixed here so the generated JSON Schema does not depend on the build host.
// Signals a drain notice may use: any but those that cannot be caught.
export const DRAIN_SIGNALS = ["SIGUSR1", "SIGUSR2", "SIGHUP", "SIGWINCH", "SIGURG", "SIGTERM", "SIGINT", "SIGQUIT"] as const;

export const STOP_SIGNALS = [
  "SIGHUP",
  "SIGINT",
  "SIGQUIT",
  "SIGILL",
  "SIGTRAP",
  "SIGABRT",
  "SIGBUS",
  "SIGFPE",
  "SIGKILL",
  "SIGUSR1",
  "SIGSEGV",
  "SIGUSR2",
  "SIGPIPE",
  "SIGALRM",
  "SIGTERM",
  "SIGCHLD",
  "SIGCONT",
  "SIGSTOP",
  "SIGTSTP",
  "SIGTTIN",
  "SIGTTOU",
  "SIGURG",
  "SIGXCPU",
  "SIGXFSZ",
  "SIGVTALRM",
  "SIGPROF",
  "SIGWINCH",
  "SIGIO",
  "SIGSYS",
] as const satisfies readonly NodeJS.Signals[];

// Replica counts above this are refused (config, desired file, --replicas): each replica is an OS
// process with its own port, pipes and health checks, so a typo such as 40000 must not fork-bomb the host.
export const MAX_REPLICAS = 1024;

// Control characters (C0, DEL, C1) and NUL: refused in release ids and revisions, which are
// printed in terminals, logs and metrics, and rendered into shell commands.
export const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;

// Who gets a process's stop signal: its whole process group, or only the main process (a pre-fork
// server such as gunicorn, which stops its own workers gracefully).
export const STOP_SIGNAL_TARGETS = ["group", "process"] as const;

// A process's stop-signal target as a string-literal union.
export type StopSignalTarget = (typeof STOP_SIGNAL_TARGETS)[number];

// Process ids appear in instance ids (`worker#0`) and template names (`{{ports.web}}`), hence the narrow alphabet.
export const PROCESS_ID_PATTERN = /^[A-Za-z0-9_.-]+$/;

// Node's timers fire at once for delays above 2^31-1 ms (about 24.8 days), so no timeout may exceed it.
export const MAX_TIMER_MS = 2_147_483_647;

// Static defaults, shared by the schema (so they show in the JSON Schema) and by resolveConfig.
export const DEFAULTS = {
  proxy: {
    host: "127.0.0.1",
    port: 8182,
    upstreamHost: "127.0.0.1",
    healthPath: "/ping",
    healthTimeoutMs: 30_000,
    drainTimeoutMs: 60_000,
    forceStopTimeoutMs: 10_000,
    holdTimeoutMs: 10_000,
    headersTimeoutMs: 60_000,
    requestTimeoutMs: 0,
    keepAliveTimeoutMs: 5_000,
    bodyTimeoutMs: 60_000,
    upgradeTimeoutMs: 30_000,
    // 1001 Going Away: what browsers and ws clients treat as "reconnect"; 1012 Service Restart on request.
    drainCloseCode: 1001,
    // Loopback only: nginx on the same host is trusted, a client on the network is not.
    trustedProxies: ["127.0.0.0/8", "::1/128"],
    tcp: true,
    socketMode: "660",
  },
  releaseRetention: { keep: 10, maxAgeMs: 0 },
  desiredPath: "desired.yaml",
  resyncIntervalMs: 5_000,
  metricsHost: "127.0.0.1",
  process: {
    cwd: "{{releasePath}}",
    stopSignal: "SIGTERM",
    stopSignalTarget: "group",
    restartDelayMs: 1_000,
    replicas: 1,
    outputLines: 50,
  },
  health: { intervalMs: 200, startDelayMs: 0, ipc: false },
  lifecycle: { drainTimeoutMs: 0 },
  restart: { windowMs: 0, backoffFactor: 1, maxDelayMs: 0 },
  memory: { warnBytes: 0, checkIntervalMs: 5_000 },
  logFile: { maxBytes: 10_485_760, keep: 5, gzip: false },
} as const;
