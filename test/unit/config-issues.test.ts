import { describe, expect, it } from "vitest";
import { closestMatch, levenshtein } from "../../src/config/closest-match.js";
import { formatIssues, validateConfig, type ConfigIssue } from "../../src/config/issues.js";

const web = { id: "web", policy: "proxied", command: "node server.js --port {{port}}", port: { from: 18000, to: 18010 } };
const worker = { id: "worker", policy: "companion", command: "node worker.js" };

function issuesOf(raw: unknown): ConfigIssue[] {
  const result = validateConfig(raw, { configPath: "/srv/app/rollbridge.yaml" });
  if (result.ok) throw new Error("expected the config to be rejected");
  return result.issues;
}

function withProcesses(...processes: unknown[]): unknown {
  return { processes };
}

interface Case {
  rule: string;
  raw: unknown;
  path: string;
  message: string;
  fix: string;
}

const cases: Case[] = [
  { rule: "the config is a mapping", raw: ["web"], path: "", message: "must be a mapping", fix: "processes" },
  { rule: "an empty config is reported", raw: null, path: "", message: "empty", fix: "processes" },
  { rule: "processes is required", raw: { proxy: {} }, path: "processes", message: "processes is required", fix: "Add processes" },
  { rule: "processes is not empty", raw: { processes: [] }, path: "processes", message: "at least 1", fix: "policy: proxied" },
  { rule: "unknown top-level keys suggest the closest key", raw: { procesess: [web], processes: [web] }, path: "procesess", message: "not a known setting", fix: 'Did you mean "processes"?' },
  { rule: "unknown nested keys suggest the closest key", raw: { proxy: { healthTimout: 5 }, processes: [web] }, path: "proxy.healthTimout", message: "not a known setting", fix: '"healthTimeoutMs"' },
  { rule: "unknown process keys use the process id in the path", raw: withProcesses({ ...web, stopSignl: "SIGINT" }), path: "processes[web].stopSignl", message: "not a known setting", fix: '"stopSignal"' },
  { rule: "unknown keys without a close match list the known ones", raw: withProcesses({ ...web, port: { from: 1, to: 5, size: 9 } }), path: "processes[web].port.size", message: "not a known setting", fix: "from, to" },
  { rule: "exactly one proxied process (none)", raw: withProcesses(worker), path: "processes", message: "exactly one proxied process; found 0", fix: "policy: proxied" },
  { rule: "exactly one proxied process (two)", raw: withProcesses(web, { ...web, id: "api" }), path: "processes", message: "found 2 (web, api)", fix: "one process" },
  { rule: "process ids are unique", raw: withProcesses(web, { ...worker, id: "web" }), path: "processes[1].id", message: 'duplicate process id "web"', fix: "unique id" },
  { rule: "process ids have no #", raw: withProcesses(web, { ...worker, id: "worker#1" }), path: "processes[1].id", message: '"#"', fix: "letters, digits" },
  { rule: "process ids use a narrow alphabet", raw: withProcesses(web, { ...worker, id: "my worker" }), path: "processes[1].id", message: "only letters", fix: "id: web" },
  { rule: "policy is one of four", raw: withProcesses(web, { ...worker, policy: "compainon" }), path: "processes[worker].policy", message: "must be one of", fix: 'Did you mean "companion"?' },
  { rule: "command is required", raw: withProcesses(web, { id: "worker", policy: "companion" }), path: "processes[worker].command", message: "is required", fix: "Add command" },
  { rule: "command is not blank", raw: withProcesses({ ...web, command: "  " }), path: "processes[web].command", message: "must not be empty", fix: "command:" },
  { rule: "the proxied process needs a port", raw: withProcesses({ ...web, port: undefined }), path: "processes[web].port", message: "needs a port", fix: "port: {from:" },
  { rule: "ports are at most 65535", raw: withProcesses({ ...web, port: 70000 }), path: "processes[web].port", message: "at most 65535", fix: "ascending range" },
  { rule: "ports are numbers or ranges", raw: withProcesses({ ...web, port: "8080" }), path: "processes[web].port", message: "must be a number or a mapping", fix: "port: 7331" },
  { rule: "port ranges ascend", raw: withProcesses({ ...web, port: { from: 9000, to: 8000 } }), path: "processes[web].port", message: "ascending", fix: "Swap" },
  { rule: "port ranges have both ends", raw: withProcesses({ ...web, port: { from: 9000 } }), path: "processes[web].port.to", message: "is required", fix: "Add to" },
  { rule: "health is an object or false", raw: withProcesses({ ...web, health: true }), path: "processes[web].health", message: "false or a mapping", fix: "health: false" },
  { rule: "health paths start with /", raw: withProcesses({ ...web, health: { path: "ping" } }), path: "processes[web].health.path", message: 'start with "/"', fix: "path: /ping" },
  { rule: "HTTP health needs a port", raw: withProcesses(web, { ...worker, health: { path: "/up" } }), path: "processes[worker].health", message: "no port", fix: "ipc: true" },
  { rule: "stopSignal is a signal name", raw: withProcesses({ ...web, stopSignal: "SIGTREM" }), path: "processes[web].stopSignal", message: "accepted values", fix: 'Did you mean "SIGTERM"?' },
  { rule: "stopSignal without SIG prefix is guessed", raw: withProcesses({ ...web, stopSignal: "QUIT" }), path: "processes[web].stopSignal", message: "accepted values", fix: 'Did you mean "SIGQUIT"?' },
  { rule: "nonBlockingDrain is for companions", raw: withProcesses({ ...web, nonBlockingDrain: true }), path: "processes[web].nonBlockingDrain", message: "only to companion", fix: "Remove nonBlockingDrain" },
  { rule: "nonBlockingDrain is a boolean", raw: withProcesses(web, { ...worker, nonBlockingDrain: "yes" }), path: "processes[worker].nonBlockingDrain", message: "true or false", fix: "nonBlockingDrain: true" },
  {
    rule: "drainCommand needs a positive drainTimeoutMs",
    raw: withProcesses(web, { ...worker, lifecycle: { drainCommand: "./wait" } }),
    path: "processes[worker].lifecycle.drainTimeoutMs",
    message: "drainCommand needs a positive",
    fix: "drainTimeoutMs: 60000",
  },
  {
    rule: "stopCommand and a custom stopSignal exclude each other",
    raw: withProcesses(web, { ...worker, stopSignal: "SIGINT", lifecycle: { stopCommand: "./stop" } }),
    path: "processes[worker].stopSignal",
    message: "would never be sent",
    fix: "Remove stopSignal",
  },
  { rule: "stopSignalTarget is group or process", raw: withProcesses({ ...web, stopSignalTarget: "master" }), path: "processes[web].stopSignalTarget", message: 'must be one of "group", "process"', fix: "process" },
  {
    rule: "stopSignalTarget: process never applies with a stopCommand",
    raw: withProcesses(web, { ...worker, stopSignalTarget: "process", lifecycle: { stopCommand: "./stop" } }),
    path: "processes[worker].stopSignalTarget",
    message: "would never apply",
    fix: "Remove stopSignalTarget",
  },
  {
    rule: "stopMessage and stopCommand exclude each other",
    raw: withProcesses(web, { ...worker, stopMessage: "shutdown", lifecycle: { stopCommand: "./stop" } }),
    path: "processes[worker].stopMessage",
    message: "both replace",
    fix: "Keep either",
  },
  {
    rule: "stopMessage and a custom stopSignal exclude each other",
    raw: withProcesses(web, { ...worker, stopMessage: "shutdown", stopSignal: "SIGINT" }),
    path: "processes[worker].stopSignal",
    message: "stopMessage is sent instead",
    fix: "Remove stopSignal",
  },
  { rule: "lifecycle drainTimeoutMs is non-negative", raw: withProcesses(web, { ...worker, lifecycle: { drainTimeoutMs: -1 } }), path: "processes[worker].lifecycle.drainTimeoutMs", message: "at least 0", fix: "drainTimeoutMs: 60000" },
  { rule: "gracefulStopMs is non-negative", raw: withProcesses({ ...web, gracefulStopMs: -5 }), path: "processes[web].gracefulStopMs", message: "at least 0", fix: "gracefulStopMs:" },
  { rule: "maxRestarts is a non-negative integer", raw: withProcesses({ ...web, restart: { maxRestarts: -1 } }), path: "processes[web].restart.maxRestarts", message: "at least 0", fix: "maxRestarts: 5" },
  { rule: "maxRestarts is whole", raw: withProcesses({ ...web, restart: { maxRestarts: 1.5 } }), path: "processes[web].restart.maxRestarts", message: "whole number", fix: "maxRestarts" },
  { rule: "backoffFactor is at least 1", raw: withProcesses({ ...web, restart: { backoffFactor: 0.5 } }), path: "processes[web].restart.backoffFactor", message: "at least 1", fix: "backoffFactor: 2" },
  { rule: "restart windowMs is non-negative", raw: withProcesses({ ...web, restart: { windowMs: -1 } }), path: "processes[web].restart.windowMs", message: "at least 0", fix: "windowMs" },
  { rule: "restart maxDelayMs is non-negative", raw: withProcesses({ ...web, restart: { maxDelayMs: -1 } }), path: "processes[web].restart.maxDelayMs", message: "at least 0", fix: "maxDelayMs" },
  { rule: "memory needs limitBytes", raw: withProcesses({ ...web, memory: { warnBytes: 5 } }), path: "processes[web].memory.limitBytes", message: "is required", fix: "limitBytes:" },
  { rule: "memory limitBytes is positive", raw: withProcesses({ ...web, memory: { limitBytes: 0 } }), path: "processes[web].memory.limitBytes", message: "greater than 0", fix: "limitBytes" },
  { rule: "memory warnBytes is below limitBytes", raw: withProcesses({ ...web, memory: { limitBytes: 1000, warnBytes: 2000 } }), path: "processes[web].memory.warnBytes", message: "must be below memory.limitBytes", fix: "750" },
  { rule: "memory checkIntervalMs is positive", raw: withProcesses({ ...web, memory: { limitBytes: 10, checkIntervalMs: 0 } }), path: "processes[web].memory.checkIntervalMs", message: "greater than 0", fix: "checkIntervalMs" },
  { rule: "replicas is a positive integer", raw: withProcesses({ ...web, replicas: 0 }), path: "processes[web].replicas", message: "greater than 0", fix: "replicas" },
  { rule: "replicas on a ported companion", raw: withProcesses(web, { ...worker, port: 7000, replicas: 2 }), path: "processes[worker].replicas", message: "without a port", fix: "Remove port" },
  { rule: "replicas on a service", raw: withProcesses(web, { ...worker, policy: "service", replicas: 2 }), path: "processes[worker].replicas", message: "must be 1 for a service", fix: "replicas: 1" },
  { rule: "replicas on a singleton", raw: withProcesses(web, { ...worker, policy: "singleton", replicas: 3 }), path: "processes[worker].replicas", message: "must be 1 for a singleton", fix: "replicas: 1" },
  { rule: "proxied replicas need enough ports", raw: withProcesses({ ...web, port: { from: 3000, to: 3001 }, replicas: 3 }), path: "processes[web].port", message: "fewer than replicas (3)", fix: "at least 3 ports" },
  { rule: "proxied replicas need a range, not one port", raw: withProcesses({ ...web, port: 3000, replicas: 2 }), path: "processes[web].port", message: "has 1 port(s)", fix: "Widen" },
  { rule: "outputLines is a positive integer", raw: withProcesses({ ...web, outputLines: 0 }), path: "processes[web].outputLines", message: "greater than 0", fix: "outputLines: 200" },
  { rule: "env values are scalars", raw: withProcesses({ ...web, env: { A: null } }), path: "processes[web].env.A", message: "a string, a number or a boolean", fix: "processes[web].env.A" },
  { rule: "env names have no =", raw: withProcesses({ ...web, env: { "A=B": "x" } }), path: 'processes[web].env["A=B"]', message: '"="', fix: "NODE_ENV" },
  { rule: "logFile needs a path", raw: withProcesses({ ...web, logFile: { keep: 2 } }), path: "processes[web].logFile.path", message: "is required", fix: "path:" },
  { rule: "logFile maxBytes is positive", raw: withProcesses({ ...web, logFile: { path: "x.log", maxBytes: 0 } }), path: "processes[web].logFile.maxBytes", message: "greater than 0", fix: "maxBytes" },
  { rule: "unknown template variables are caught", raw: withProcesses({ ...web, command: "node s.js --port {{prot}}" }), path: "processes[web].command", message: "unknown template variable {{prot}}", fix: "Did you mean {{port}}?" },
  { rule: "{{port}} needs a port", raw: withProcesses(web, { ...worker, command: "node w.js --port {{port}}" }), path: "processes[worker].command", message: "worker has no port", fix: "Add a port to worker" },
  { rule: "{{ports.id}} names a process", raw: withProcesses(web, { ...worker, env: { WEB: "{{ports.wbe}}" } }), path: "processes[worker].env.WEB", message: 'no process "wbe"', fix: "{{ports.web}}" },
  {
    rule: "{{ports.id}} names a process with a port",
    raw: withProcesses(web, { ...worker, id: "w2" }, { ...worker, command: "x {{ports.w2}}" }),
    path: "processes[worker].command",
    message: "process w2 has no port",
    fix: "Add a port to w2",
  },
  {
    rule: "templates in lifecycle hooks are checked",
    raw: withProcesses({ ...web, lifecycle: { stopCommand: "kill -TERM {{pid}}" } }),
    path: "processes[web].lifecycle.stopCommand",
    message: "unknown template variable {{pid}}",
    fix: "Known variables",
  },
  { rule: "replica counts are bounded", raw: withProcesses(web, { ...worker, replicas: 5000 }), path: "processes[worker].replicas", message: "at most 1024", fix: "replicas" },
  { rule: "env values have no NUL", raw: withProcesses({ ...web, env: { A: "x\0y" } }), path: "processes[web].env.A", message: "NUL", fix: "Remove the NUL" },
  { rule: "templates in logFile.path are checked", raw: withProcesses({ ...web, logFile: { path: "/var/log/{{proccessId}}.log" } }), path: "processes[web].logFile.path", message: "{{proccessId}}", fix: "{{processId}}" },
  { rule: "control.mode as an unquoted YAML number", raw: { control: { mode: 660 }, processes: [web] }, path: "control.mode", message: "at most 511", fix: 'mode: "660"' },
  { rule: "control.mode as a non-octal string", raw: { control: { mode: "rw-rw----" }, processes: [web] }, path: "control.mode", message: "octal", fix: 'mode: "660"' },
  { rule: "control.owner is not negative", raw: { control: { owner: -1 }, processes: [web] }, path: "control.owner", message: "at least 0", fix: "user name" },
  { rule: "control.group is not empty", raw: { control: { group: "" }, processes: [web] }, path: "control.group", message: "must not be empty", fix: "group name" },
  { rule: "the socket path fits in sun_path", raw: { application: "a".repeat(120), processes: [web] }, path: "control", message: "unix sockets allow at most", fix: "shorter control.path" },
  { rule: "application has no slash", raw: { application: "a/b", processes: [web] }, path: "application", message: '"/"', fix: "ticket-server" },
  { rule: "proxy.port is a port", raw: { proxy: { port: 0 }, processes: [web] }, path: "proxy.port", message: "at least 1", fix: "port: 8182" },
  { rule: "proxy timeouts are non-negative", raw: { proxy: { drainTimeoutMs: -1 }, processes: [web] }, path: "proxy.drainTimeoutMs", message: "at least 0", fix: "drainTimeoutMs: 60000" },
  { rule: "headers timeout fits in the request timeout", raw: { proxy: { requestTimeoutMs: 1000 }, processes: [web] }, path: "proxy.headersTimeoutMs", message: "must not exceed proxy.requestTimeoutMs", fix: "requestTimeoutMs: 0" },
  { rule: "proxy.bodyTimeoutMs fits a Node timer", raw: { proxy: { bodyTimeoutMs: 2 ** 31 }, processes: [web] }, path: "proxy.bodyTimeoutMs", message: "at most 2147483647", fix: "bodyTimeoutMs: 60000" },
  { rule: "proxy.holdTimeoutMs fits a Node timer", raw: { proxy: { holdTimeoutMs: 2 ** 31 }, processes: [web] }, path: "proxy.holdTimeoutMs", message: "at most 2147483647", fix: "holdTimeoutMs: 10000" },
  { rule: "health.intervalMs fits a Node timer", raw: withProcesses({ ...web, health: { intervalMs: 2 ** 31 } }), path: "processes[web].health.intervalMs", message: "at most 2147483647", fix: "intervalMs" },
  { rule: "gracefulStopMs fits a Node timer", raw: withProcesses({ ...web, gracefulStopMs: 2 ** 32 }), path: "processes[web].gracefulStopMs", message: "at most 2147483647", fix: "gracefulStopMs" },
  { rule: "proxy.drainCloseCode is 1001 or 1012", raw: { proxy: { drainCloseCode: 1000 }, processes: [web] }, path: "proxy.drainCloseCode", message: "must be 1001 or 1012, not 1000", fix: "drainCloseCode: 1012" },
  { rule: "proxy.affinity is none, cookie or a mapping", raw: { proxy: { affinity: "sticky" }, processes: [web] }, path: "proxy.affinity", message: 'must be "none" or "cookie" or a mapping, not "sticky"', fix: "affinity: {query: sid}" },
  {
    rule: "proxy.affinity names one way",
    raw: { proxy: { affinity: { query: "sid", header: "X-Session" } }, processes: [web] },
    path: "proxy.affinity",
    message: "names query and header: only one of them may be given",
    fix: "affinity: {header: X-Session}",
  },
  { rule: "proxy.affinity keys are checked for typos", raw: { proxy: { affinity: { querry: "sid" } }, processes: [web] }, path: "proxy.affinity.querry", message: "is not a known setting", fix: 'Did you mean "query"?' },
  { rule: "proxy.affinity cookie names are tokens", raw: { proxy: { affinity: { cookie: "rb release" } }, processes: [web] }, path: "proxy.affinity.cookie", message: "must be a token", fix: "cookie: rb_release" },
  { rule: "proxy.affinity.maxSessions is positive", raw: { proxy: { affinity: { query: "sid", maxSessions: 0 } }, processes: [web] }, path: "proxy.affinity.maxSessions", message: "at least 1", fix: "maxSessions: 10000" },
  {
    rule: "proxy.affinity.maxSessions is not for cookies",
    raw: { proxy: { affinity: { cookie: "rb", maxSessions: 5 } }, processes: [web] },
    path: "proxy.affinity.maxSessions",
    message: "only applies to query and header affinity",
    fix: "Remove maxSessions",
  },
  { rule: "proxy.upgradeTimeoutMs is non-negative", raw: { proxy: { upgradeTimeoutMs: -1 }, processes: [web] }, path: "proxy.upgradeTimeoutMs", message: "at least 0", fix: "upgradeTimeoutMs: 30000" },
  {
    rule: "trustedProxies entries are addresses or CIDR blocks",
    raw: { proxy: { trustedProxies: ["10.0.0.0/8", "proxy.internal"] }, processes: [web] },
    path: "proxy.trustedProxies[1]",
    message: '"proxy.internal" is neither an IP address nor a CIDR block',
    fix: '"10.0.0.0/8"',
  },
  {
    rule: "trustedProxies prefix lengths fit the family",
    raw: { proxy: { trustedProxies: ["10.0.0.0/33", "::1/129"] }, processes: [web] },
    path: "proxy.trustedProxies[0]",
    message: "prefix length of an IPv4 block is 0 to 32",
    fix: "2001:db8::/32",
  },
  { rule: "trustedProxies IPv6 prefix lengths fit", raw: { proxy: { trustedProxies: ["::1/129"] }, processes: [web] }, path: "proxy.trustedProxies[0]", message: "IPv6 block is 0 to 128", fix: "e.g." },
  { rule: "trustedProxies is a list", raw: { proxy: { trustedProxies: "127.0.0.1" }, processes: [web] }, path: "proxy.trustedProxies", message: "must be a list", fix: "trustedProxies:" },
  { rule: "proxy.socket needs a path", raw: { proxy: { socket: { mode: "660" } }, processes: [web] }, path: "proxy.socket.path", message: "is required", fix: "path:" },
  { rule: "proxy.socket.mode as an unquoted YAML number", raw: { proxy: { socket: { path: "/run/p.sock", mode: 660 } }, processes: [web] }, path: "proxy.socket.mode", message: "at most 511", fix: 'mode: "660"' },
  { rule: "proxy.socket.path fits in sun_path", raw: { proxy: { socket: { path: `/run/${"s".repeat(120)}.sock` } }, processes: [web] }, path: "proxy.socket.path", message: "unix sockets allow at most", fix: "shorter proxy.socket.path" },
  {
    rule: "proxy.socket is not the control socket",
    raw: { control: { path: "/run/rb/c.sock" }, proxy: { socket: { path: "/run/rb/c.sock" } }, processes: [web] },
    path: "proxy.socket.path",
    message: "is also control.path",
    fix: "path of its own",
  },
  { rule: "proxy.tcp false needs a socket", raw: { proxy: { tcp: false }, processes: [web] }, path: "proxy.tcp", message: "would not listen anywhere", fix: "proxy.socket" },
  { rule: "a process may not take the proxy's port", raw: withProcesses(web, { ...worker, policy: "service", port: 8182 }), path: "processes[worker].port", message: "used by proxy.port", fix: "port of its own" },
  { rule: "metrics needs a port", raw: { metrics: { host: "0.0.0.0" }, processes: [web] }, path: "metrics.port", message: "is required", fix: "port: 9464" },
  { rule: "metrics may not take the proxy's port", raw: { metrics: { port: 8182 }, processes: [web] }, path: "metrics.port", message: "proxy's port", fix: "9464" },
  { rule: "releaseRetention.keep is a non-negative integer", raw: { releaseRetention: { keep: -1 }, processes: [web] }, path: "releaseRetention.keep", message: "at least 0", fix: "keep: 10" },
  { rule: "releaseRetention.maxAgeMs is non-negative", raw: { releaseRetention: { maxAgeMs: -1 }, processes: [web] }, path: "releaseRetention.maxAgeMs", message: "at least 0", fix: "maxAgeMs" },
  { rule: "statePath is a string or true", raw: { statePath: 5, processes: [web] }, path: "statePath", message: "", fix: "statePath" },
  { rule: "control.mode may not let every user connect", raw: { control: { mode: "666" }, processes: [web] }, path: "control.mode", message: "every local user", fix: "660" },
  { rule: "a legacy process's user is a name or uid", raw: { legacyTakeover: { processes: [{ name: "old", includes: ["x"], user: "" }] }, processes: [web] }, path: "legacyTakeover.processes[0].user", message: "", fix: "user" },
  { rule: "legacy processes list substrings", raw: { legacyTakeover: { processes: [{ name: "old", includes: [] }] }, processes: [web] }, path: "legacyTakeover.processes[0].includes", message: "at least 1", fix: "includes:" },
  { rule: "legacy screens is a list", raw: { legacyTakeover: { screens: "old" }, processes: [web] }, path: "legacyTakeover.screens", message: "must be a list", fix: "screens:" },
  { rule: "rollout.maxP99Ms is a whole number of ms", raw: { rollout: { maxP99Ms: 1.5 }, processes: [web] }, path: "rollout.maxP99Ms", message: "must be a whole number", fix: "maxP99Ms" },
  { rule: "rollout.maxP99Ms is non-negative", raw: { rollout: { maxP99Ms: -1 }, processes: [web] }, path: "rollout.maxP99Ms", message: "at least 0", fix: "maxP99Ms" },
  { rule: "resyncIntervalMs is at least 100", raw: { resyncIntervalMs: 10, processes: [web] }, path: "resyncIntervalMs", message: "at least 100", fix: "resyncIntervalMs: 5000" },
];

describe("validateConfig", () => {
  it.each(cases)("reports: $rule", ({ raw, path, message, fix }) => {
    const issues = issuesOf(raw);
    const match = issues.find((issue) => issue.path === path && issue.message.includes(message));
    expect(match, `issues were:\n${issues.map((issue) => `${issue.path}: ${issue.message}`).join("\n")}`).toBeDefined();
    expect(match?.fix).toContain(fix);
    expect(match?.fix).toMatch(/\.$/);
  });

  it("reports three distinct problems in one file as three issues", () => {
    const issues = issuesOf({
      proxy: { prot: 9000 },
      processes: [{ id: "worker", policy: "companion", command: "node worker.js", outputLines: -1 }],
    });
    expect(issues.map((issue) => issue.path)).toEqual(["proxy.prot", "processes[worker].outputLines", "processes"]);
  });

  it("reports a misspelt required key once, as a rename", () => {
    const issues = issuesOf({ procesess: [web] });
    expect(issues).toEqual([expect.objectContaining({ path: "procesess", fix: 'Did you mean "processes"? Rename "procesess" to "processes".' })]);
  });

  it("does not count an invalid policy as a missing proxied process", () => {
    const issues = issuesOf(withProcesses({ ...web, policy: "proxy" }));
    expect(issues.map((issue) => issue.path)).toEqual(["processes[web].policy"]);
  });

  it("names processes by index when their ids are duplicated or invalid", () => {
    const issues = issuesOf(withProcesses(web, { ...worker, id: "web", outputLines: 0 }, { ...worker, id: "a b", outputLines: 0 }));
    expect(issues.map((issue) => issue.path)).toEqual(expect.arrayContaining(["processes[1].outputLines", "processes[2].outputLines", "processes[2].id", "processes[1].id"]));
  });

  it("accepts stopCommand with the default stopSignal and shell braces that are not variables", () => {
    const result = validateConfig(withProcesses(web, { ...worker, stopSignal: "SIGTERM", command: "docker ps --format '{{.Names}}' {{ json . }}", lifecycle: { stopCommand: "./stop" } }), { configPath: "/srv/app/rollbridge.yaml" });
    expect(result.ok).toBe(true);
  });
});

describe("an unquoted placeholder (read by YAML as a mapping)", () => {
  // What `env: {PORT: {{port}}}` and `command: {{releasePath}}` load as.
  const placeholder = (name: string) => ({ [`{ ${name} }`]: null });

  it("says to quote the value, instead of 'must be a string, not a mapping'", () => {
    const issues = issuesOf(withProcesses({ ...web, env: { PORT: placeholder("port") } }));
    expect(issues).toEqual([
      {
        path: "processes[web].env.PORT",
        message: 'processes[web].env.PORT is an unquoted {{port}}: YAML reads a value that starts with "{" as a mapping, not as text',
        fix: 'Quote the value: PORT: "{{port}}".',
      },
    ]);
  });

  it("reports each such value once and keeps the other problems", () => {
    const issues = issuesOf(withProcesses({ ...web, command: placeholder("releasePath"), cwd: placeholder("releasePath"), stopSignl: "SIGINT" }));
    expect(issues.map((i) => i.path)).toEqual(["processes[web].command", "processes[web].cwd", "processes[web].stopSignl"]);
    expect(issues[0]?.fix).toBe('Quote the value: command: "{{releasePath}}".');
  });

  it("does not mistake a real mapping for one", () => {
    const issues = issuesOf(withProcesses({ ...web, env: { PORT: { port: null } } }));
    expect(issues[0]?.message).toContain("must be a string, a number or a boolean, not a mapping");
  });
});

describe("a missing colon that YAML reads as text", () => {
  it("says where the colon goes", () => {
    const issues = issuesOf({ proxy: "port 8182", processes: [web] });
    expect(issues).toEqual([{ path: "proxy", message: 'proxy must be a mapping, not the text "port 8182"', fix: "Put a colon after the key: port: 8182 (indented under proxy:)." }]);
  });
});

describe("formatIssues", () => {
  it("numbers issues with their fixes", () => {
    const text = formatIssues("rollbridge.yaml", [
      { path: "processes", message: "the config must define exactly one proxied process; found 0", fix: "Set policy: proxied." },
      { path: "processes[1].id", message: 'duplicate process id "web"', fix: "Rename one." },
    ]);
    expect(text).toBe("Found 2 configuration issues in rollbridge.yaml:\n\n" + "1. the config must define exactly one proxied process; found 0\n   Fix: Set policy: proxied.\n\n" + '2. duplicate process id "web"\n   Fix: Rename one.');
  });

  it("uses the singular for one issue", () => {
    expect(formatIssues("app.json", [{ path: "x", message: "m", fix: "f" }])).toMatch(/^Found 1 configuration issue in app\.json:/);
  });
});

describe("closestMatch", () => {
  it("finds typos, swapped letters and case slips, and gives up on unrelated words", () => {
    expect(closestMatch("stopSignl", ["stopSignal", "stopMessage"])).toBe("stopSignal");
    expect(closestMatch("SIGTREM", ["SIGTRAP", "SIGTERM"])).toBe("SIGTERM");
    expect(closestMatch("Replicas", ["replicas", "restart"])).toBe("replicas");
    expect(closestMatch("banana", ["replicas", "restart"])).toBeUndefined();
    expect(levenshtein("ab", "ba")).toBe(1);
    expect(levenshtein("kitten", "sitting")).toBe(3);
  });
});
