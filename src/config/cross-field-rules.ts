// Cross-field rules of the config: checks that need more than one field, run on the raw input and
// tolerant of values zod already reported, so a broken file still gets every problem at once.
import { dirname, resolve } from "node:path";
import { closestMatch } from "./closest-match.js";
import { PROCESS_POLICIES } from "./constants.js";
import { formatPath, isRecord, type Raw } from "./issue-paths.js";
import type { ConfigIssue } from "./issues.js";
import { defaultApplication, defaultControlPath } from "./resolved-config.js";
import { TEMPLATE_VARIABLES, templateNames } from "./template.js";

// Issues no single field can show (one proxied process, unique ids, replicas vs ports, templates, port clashes).
export function crossFieldIssues(root: Raw, configPath: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const processes = Array.isArray(root["processes"]) ? root["processes"].map((entry) => (isRecord(entry) ? entry : {})) : undefined;
  const proxy = isRecord(root["proxy"]) ? root["proxy"] : {};
  if (processes !== undefined) {
    issues.push(...proxiedCountIssues(processes), ...duplicateIdIssues(processes, root));
    processes.forEach((process, index) => issues.push(...processIssues(process, index, root, processes)));
  }
  issues.push(...proxyIssues(proxy), ...portConflictIssues(root, proxy, processes ?? []), ...controlPathIssues(root, configPath));
  issues.push(...proxyListenerIssues(root, proxy, configPath));
  return issues;
}

function proxiedCountIssues(processes: Raw[]): ConfigIssue[] {
  const proxied = processes.filter((process) => process["policy"] === "proxied");
  const allPoliciesValid = processes.every((process) => (PROCESS_POLICIES as readonly unknown[]).includes(process["policy"]));
  if (proxied.length === 1 || (proxied.length === 0 && !allPoliciesValid) || processes.length === 0) return [];
  const names = proxied.map((process) => (typeof process["id"] === "string" ? process["id"] : "?"));
  return [
    {
      path: "processes",
      message: `the config must define exactly one proxied process; found ${proxied.length}${names.length > 0 ? ` (${names.join(", ")})` : ""}`,
      fix:
        proxied.length === 0
          ? "Set policy: proxied on the process that serves HTTP, so Rollbridge knows where to forward traffic."
          : "Keep policy: proxied on the one process that receives the traffic; make the others companion, singleton or service.",
    },
  ];
}

function duplicateIdIssues(processes: Raw[], root: Raw): ConfigIssue[] {
  const seen = new Map<string, number>();
  const issues: ConfigIssue[] = [];
  processes.forEach((process, index) => {
    const id = process["id"];
    if (typeof id !== "string") return;
    const first = seen.get(id);
    if (first === undefined) {
      seen.set(id, index);
      return;
    }
    issues.push({
      path: formatPath(["processes", index, "id"], root),
      message: `duplicate process id "${id}" (processes[${first}] and processes[${index}])`,
      fix: `Give each process a unique id; rename one of the "${id}" entries.`,
    });
  });
  return issues;
}

function processIssues(entry: Raw, index: number, root: Raw, processes: Raw[]): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const at = (...rest: PropertyKey[]) => formatPath(["processes", index, ...rest], root);
  const name = typeof entry["id"] === "string" ? entry["id"] : `processes[${index}]`;
  const policy = entry["policy"];
  const port = portRangeOf(entry["port"]);
  const replicas = entry["replicas"];
  const stopSignal = entry["stopSignal"];
  const customSignal = typeof stopSignal === "string" && stopSignal !== "SIGTERM";
  const lifecycle = isRecord(entry["lifecycle"]) ? entry["lifecycle"] : {};
  const stopMessage = entry["stopMessage"];

  if (policy === "proxied" && entry["port"] === undefined) {
    issues.push({
      path: at("port"),
      message: `${at("port")} is required: the proxied process needs a port to receive traffic on`,
      fix: `Give ${name} a port range, e.g. port: {from: 18182, to: 18299} (each instance of each release takes one port).`,
    });
  }
  if (typeof replicas === "number" && Number.isInteger(replicas) && replicas > 1) {
    if (policy === "companion" && entry["port"] !== undefined) {
      issues.push({
        path: at("replicas"),
        message: `${at("replicas")} is ${replicas}, but only a companion without a port can run several replicas`,
        fix: `Remove port from ${name}, or set replicas: 1.`,
      });
    } else if (policy === "proxied" && port !== undefined && port.to - port.from + 1 < replicas) {
      issues.push({
        path: at("port"),
        message: `${at("port")} has ${port.to - port.from + 1} port(s), fewer than replicas (${replicas})`,
        fix: `Widen the range to at least ${replicas} ports (twice that lets the next release start beside this one), e.g. port: {from: ${port.from}, to: ${port.from + replicas * 2 - 1}}.`,
      });
    } else if (policy === "singleton" || policy === "service") {
      issues.push({
        path: at("replicas"),
        message: `${at("replicas")} must be 1 for a ${policy} process (got ${replicas})`,
        fix: "Set replicas: 1; only port-less companions and the proxied process run several instances.",
      });
    }
  }
  if (entry["nonBlockingDrain"] === true && typeof policy === "string" && policy !== "companion" && (PROCESS_POLICIES as readonly string[]).includes(policy)) {
    issues.push({
      path: at("nonBlockingDrain"),
      message: `${at("nonBlockingDrain")} applies only to companion processes (${name} is ${policy})`,
      fix: `Remove nonBlockingDrain from ${name}, or make it a companion.`,
    });
  }
  const drainTimeout = lifecycle["drainTimeoutMs"];
  if (typeof lifecycle["drainCommand"] === "string" && !(typeof drainTimeout === "number" && drainTimeout > 0)) {
    issues.push({
      path: at("lifecycle", "drainTimeoutMs"),
      message: `${at("lifecycle", "drainCommand")} needs a positive lifecycle.drainTimeoutMs to bound it`,
      fix: "Add drainTimeoutMs to lifecycle, e.g. drainTimeoutMs: 60000.",
    });
  }
  if (typeof lifecycle["stopCommand"] === "string" && customSignal) {
    issues.push({
      path: at("stopSignal"),
      message: `${at("stopSignal")} ${stopSignal} would never be sent: lifecycle.stopCommand runs instead of the signal`,
      fix: "Remove stopSignal, or remove lifecycle.stopCommand and let the signal stop the process.",
    });
  }
  if (typeof lifecycle["stopCommand"] === "string" && entry["stopSignalTarget"] === "process") {
    issues.push({
      path: at("stopSignalTarget"),
      message: `${at("stopSignalTarget")} would never apply: lifecycle.stopCommand runs instead of the stop signal`,
      fix: "Remove stopSignalTarget, or have the stop command signal the main process itself (kill -TERM $ROLLBRIDGE_PID).",
    });
  }
  if (typeof stopMessage === "string" && typeof lifecycle["stopCommand"] === "string") {
    issues.push({
      path: at("stopMessage"),
      message: `${at("stopMessage")} and lifecycle.stopCommand both replace the stop signal; only one can be used`,
      fix: "Keep either stopMessage (an IPC message) or lifecycle.stopCommand (a shell command).",
    });
  } else if (typeof stopMessage === "string" && customSignal) {
    issues.push({
      path: at("stopSignal"),
      message: `${at("stopSignal")} ${stopSignal} would never be sent: stopMessage is sent instead of the signal`,
      fix: "Remove stopSignal, or remove stopMessage and let the signal stop the process.",
    });
  }
  const memory = isRecord(entry["memory"]) ? entry["memory"] : {};
  const limit = memory["limitBytes"];
  const warn = memory["warnBytes"];
  if (typeof limit === "number" && typeof warn === "number" && limit > 0 && warn > 0 && warn >= limit) {
    issues.push({
      path: at("memory", "warnBytes"),
      message: `${at("memory", "warnBytes")} (${warn}) must be below memory.limitBytes (${limit})`,
      fix: `Lower warnBytes below limitBytes (e.g. ${Math.floor(limit * 0.75)}), or set it to 0 to turn the warning off.`,
    });
  }
  const health = entry["health"];
  if (isRecord(health) && policy !== "proxied" && entry["port"] === undefined && (health["ipc"] !== true || health["path"] !== undefined)) {
    issues.push({
      path: at("health"),
      message: `${at("health")} is an HTTP check, but ${name} has no port to probe`,
      fix: `Give ${name} a port, use health: {ipc: true} for a Node IPC readiness message, or set health: false.`,
    });
  }
  issues.push(...templateIssues(entry, index, root, processes));
  return issues;
}

function templateIssues(entry: Raw, index: number, root: Raw, processes: Raw[]): ConfigIssue[] {
  const fields: [PropertyKey[], unknown][] = [
    [["command"], entry["command"]],
    [["cwd"], entry["cwd"]],
    ...Object.entries(isRecord(entry["env"]) ? entry["env"] : {}).map(([key, value]): [PropertyKey[], unknown] => [["env", key], value]),
    [["logFile", "path"], isRecord(entry["logFile"]) ? entry["logFile"]["path"] : undefined],
    ...(["quietCommand", "drainCommand", "stopCommand"] as const).map((hook): [PropertyKey[], unknown] => [["lifecycle", hook], isRecord(entry["lifecycle"]) ? entry["lifecycle"][hook] : undefined]),
  ];
  const portIds = processes.filter((other) => other["port"] !== undefined && typeof other["id"] === "string").map((other) => other["id"] as string);
  const allIds = processes.filter((other) => typeof other["id"] === "string").map((other) => other["id"] as string);
  const known = [...TEMPLATE_VARIABLES, ...portIds.map((id) => `ports.${id}`)];
  const name = typeof entry["id"] === "string" ? entry["id"] : `processes[${index}]`;
  const issues: ConfigIssue[] = [];
  for (const [rest, value] of fields) {
    if (typeof value !== "string") continue;
    const where = formatPath(["processes", index, ...rest], root);
    for (const variable of templateNames(value)) {
      if (variable.startsWith("env.")) continue;
      if (variable === "port") {
        if (entry["port"] === undefined) {
          issues.push({ path: where, message: `${where} uses {{port}}, but ${name} has no port`, fix: `Add a port to ${name}, or remove {{port}}.` });
        }
        continue;
      }
      if ((TEMPLATE_VARIABLES as readonly string[]).includes(variable)) continue;
      if (variable.startsWith("ports.")) {
        const id = variable.slice("ports.".length);
        if (portIds.includes(id)) continue;
        if (allIds.includes(id)) {
          issues.push({ path: where, message: `${where} uses {{${variable}}}, but process ${id} has no port`, fix: `Add a port to ${id}, or remove {{${variable}}}.` });
        } else {
          const guess = closestMatch(id, portIds);
          issues.push({
            path: where,
            message: `${where} uses {{${variable}}}, but there is no process "${id}"`,
            fix: `${guess === undefined ? "" : `Did you mean {{ports.${guess}}}? `}Processes with a port: ${portIds.length > 0 ? portIds.join(", ") : "none"}.`,
          });
        }
        continue;
      }
      const guess = closestMatch(variable, known);
      issues.push({
        path: where,
        message: `${where} uses unknown template variable {{${variable}}}`,
        fix: `${guess === undefined ? "" : `Did you mean {{${guess}}}? `}Known variables: ${[...known, "env.<NAME>"].map((item) => `{{${item}}}`).join(", ")}.`,
      });
    }
  }
  return issues;
}

function proxyIssues(proxy: Raw): ConfigIssue[] {
  const headers = typeof proxy["headersTimeoutMs"] === "number" ? proxy["headersTimeoutMs"] : 60_000;
  const request = proxy["requestTimeoutMs"];
  if (typeof request !== "number" || request <= 0 || headers <= request) return [];
  return [
    {
      path: "proxy.headersTimeoutMs",
      message: `proxy.headersTimeoutMs (${headers}) must not exceed proxy.requestTimeoutMs (${request})`,
      fix: "Lower headersTimeoutMs to at most requestTimeoutMs, or set requestTimeoutMs: 0 for no request limit.",
    },
  ];
}

function portConflictIssues(root: Raw, proxy: Raw, processes: Raw[]): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const proxyPort = typeof proxy["port"] === "number" ? proxy["port"] : 8182;
  const metrics = isRecord(root["metrics"]) ? root["metrics"] : undefined;
  const metricsPort = typeof metrics?.["port"] === "number" ? metrics["port"] : undefined;
  if (metricsPort === proxyPort) {
    issues.push({
      path: "metrics.port",
      message: `metrics.port ${metricsPort} is also the proxy's port`,
      fix: "Pick another port for metrics, e.g. port: 9464.",
    });
  }
  processes.forEach((process, index) => {
    const range = portRangeOf(process["port"]);
    if (range === undefined || range.from !== range.to) return;
    const clash = range.from === proxyPort ? "proxy.port" : range.from === metricsPort ? "metrics.port" : undefined;
    if (clash === undefined) return;
    const where = formatPath(["processes", index, "port"], root);
    issues.push({
      path: where,
      message: `${where} ${range.from} is already used by ${clash}`,
      fix: `Give the process a port of its own (the daemon binds ${clash} itself).`,
    });
  });
  return issues;
}

function controlPathIssues(root: Raw, configPath: string): ConfigIssue[] {
  const control = isRecord(root["control"]) ? root["control"] : {};
  const explicit = typeof control["path"] === "string" && control["path"] !== "" ? control["path"] : undefined;
  const application = typeof root["application"] === "string" && root["application"] !== "" ? root["application"] : defaultApplication(configPath);
  const socketPath = resolve(dirname(resolve(configPath)), explicit ?? defaultControlPath(application));
  // sun_path is 108 bytes on Linux and 104 on macOS, both including the terminating NUL.
  const limit = process.platform === "linux" ? 107 : 103;
  const length = Buffer.byteLength(socketPath);
  if (length <= limit) return [];
  return [
    {
      path: explicit === undefined ? "control" : "control.path",
      message: `control socket path ${socketPath} is ${length} bytes long; unix sockets allow at most ${limit}`,
      fix: `${explicit === undefined ? "Set" : "Choose"} a shorter control.path, e.g. path: /run/rollbridge/app.sock.`,
    },
  ];
}

// The proxy must listen somewhere, and its unix socket must fit sun_path and be its own file.
function proxyListenerIssues(root: Raw, proxy: Raw, configPath: string): ConfigIssue[] {
  const socket = isRecord(proxy["socket"]) ? proxy["socket"] : undefined;
  const socketPath = typeof socket?.["path"] === "string" && socket["path"] !== "" ? resolve(dirname(resolve(configPath)), socket["path"]) : undefined;
  if (proxy["tcp"] === false && socket === undefined) {
    return [
      {
        path: "proxy.tcp",
        message: "proxy.tcp is false but there is no proxy.socket: the proxy would not listen anywhere",
        fix: "Add proxy.socket: {path: /run/rollbridge-proxy/app.sock, group: www-data}, or remove tcp: false.",
      },
    ];
  }
  if (socketPath === undefined) return [];
  const issues: ConfigIssue[] = [];
  const limit = process.platform === "linux" ? 107 : 103;
  const length = Buffer.byteLength(socketPath);
  if (length > limit) {
    issues.push({
      path: "proxy.socket.path",
      message: `proxy socket path ${socketPath} is ${length} bytes long; unix sockets allow at most ${limit}`,
      fix: "Choose a shorter proxy.socket.path, e.g. path: /run/rollbridge-proxy/app.sock.",
    });
  }
  const control = isRecord(root["control"]) ? root["control"] : {};
  if (typeof control["path"] === "string" && resolve(dirname(resolve(configPath)), control["path"]) === socketPath) {
    issues.push({
      path: "proxy.socket.path",
      message: `proxy.socket.path ${socketPath} is also control.path`,
      fix: "Give the proxy socket a path of its own (nginx must never reach the control API).",
    });
  }
  return issues;
}

function portRangeOf(port: unknown): { from: number; to: number } | undefined {
  if (typeof port === "number" && Number.isInteger(port)) return { from: port, to: port };
  if (isRecord(port) && typeof port["from"] === "number" && typeof port["to"] === "number" && port["from"] <= port["to"]) {
    return { from: port["from"], to: port["to"] };
  }
  return undefined;
}
