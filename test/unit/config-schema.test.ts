import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { validateConfig } from "../../src/config/issues.js";
import type { Config } from "../../src/config/resolved-config.js";
import { defaultControlPath, defaultStatePath } from "../../src/config/runtime-dir.js";
import { configSchema } from "../../src/config/schema.js";

const configPath = "/srv/ticket-server/rollbridge.yaml";

function valid(raw: unknown, path = configPath): Config {
  const result = validateConfig(raw, { configPath: path });
  if (!result.ok) throw new Error(`expected a valid config, got:\n${result.issues.map((issue) => `${issue.message} | ${issue.fix}`).join("\n")}`);
  return result.config;
}

// The reference README's example config, written as YAML.
const readmeExample = `
application: ticket-server
control:
  path: /tmp/rollbridge-ticket-server.sock
proxy:
  host: 127.0.0.1
  port: 8182
  upstreamHost: 127.0.0.1
  healthPath: /ping
  healthTimeoutMs: 30000
  drainTimeoutMs: 60000
  forceStopTimeoutMs: 10000
processes:
  - id: beacon
    policy: companion
    cwd: "{{releasePath}}"
    command: env VELOCIOUS_BEACON_PORT={{port}} npx velocious beacon
    port: {from: 17330, to: 17399}
  - id: background-jobs-worker
    policy: companion
    cwd: "{{releasePath}}"
    command: npx velocious background-jobs-worker
    outputLines: 200
  - id: background-jobs-main
    policy: service
    cwd: "{{releasePath}}"
    command: npx velocious background-jobs-main
  - id: web
    policy: proxied
    cwd: "{{releasePath}}"
    command: npx velocious server --host 127.0.0.1 --port {{port}}
    port: {from: 18182, to: 18299}
    health: {path: /ping, timeoutMs: 30000}
`;

// Every field the reference documents, each set to a legal value.
const everyField = `
application: ticket-server
control: {path: /run/rollbridge/ticket.sock, mode: "660", owner: deploy, group: 1001}
proxy:
  host: 0.0.0.0
  port: 4500
  upstreamHost: 127.0.0.1
  healthPath: /health
  healthTimeoutMs: 20000
  drainTimeoutMs: 30000
  forceStopTimeoutMs: 15000
  holdTimeoutMs: 5000
  headersTimeoutMs: 20000
  requestTimeoutMs: 120000
  keepAliveTimeoutMs: 4000
  bodyTimeoutMs: 30000
  upgradeTimeoutMs: 10000
  trustedProxies: [127.0.0.1, "10.0.0.0/8", "fd00::/8"]
  socket: {path: proxy/ticket.sock, mode: "660", group: www-data}
  tcp: false
releaseRetention: {keep: 5, maxAgeMs: 86400000}
statePath: state/ticket-server.state.json
desiredPath: /etc/rollbridge/desired.yaml
resyncIntervalMs: 2000
metrics: {port: 9464}
legacyTakeover:
  screens: [ticket-server]
  processes:
    - {name: legacy web, includes: [/home/dev/ticket-server/, velocious server, --port 8082], user: dev}
processes:
  - id: beacon
    policy: service
    command: npx velocious beacon --port {{port}}
    port: 7330
    restart: {maxRestarts: 5, windowMs: 60000, backoffFactor: 2, maxDelayMs: 30000}
    lifecycle: {stopCommand: ./bin/stop-beacon}
  - id: worker
    policy: companion
    command: npx velocious background-jobs-worker --beacon {{ports.beacon}}
    replicas: 4
    nonBlockingDrain: true
    stopSignal: SIGINT
    gracefulStopMs: 60000
    memory: {limitBytes: 536870912, warnBytes: 402653184, checkIntervalMs: 5000}
    lifecycle: {quietCommand: kill -TSTP -$ROLLBRIDGE_PID, drainCommand: ./bin/wait-idle, drainTimeoutMs: 60000}
    logFile: {path: "logs/{{processId}}-{{replicaIndex}}.log", maxBytes: 1048576, keep: 3, gzip: true}
  - id: scheduler
    policy: singleton
    command: npx velocious scheduler
    health: {ipc: true}
    stopMessage: shutdown
    outputLines: 10
  - id: web
    policy: proxied
    cwd: "{{releasePath}}/backend"
    command: npx velocious server --port {{port}}
    env: {NODE_ENV: production, WORKERS: 2, DEBUG: false, HOME_COPY: "{{env.HOME}}"}
    port: {from: 14500, to: 14599}
    replicas: 2
    health: {path: /ping, timeoutMs: 30000, intervalMs: 500, startDelayMs: 1000, ipc: true}
    restartDelayMs: 500
`;

describe("configSchema", () => {
  it("accepts the reference README example converted to YAML", () => {
    const config = valid(parse(readmeExample));
    expect(config.application).toBe("ticket-server");
    expect(config.processes.map((process) => process.id)).toEqual(["beacon", "background-jobs-worker", "background-jobs-main", "web"]);
  });

  it("accepts a config that sets every documented field", () => {
    const config = valid(parse(everyField));
    expect(config.control).toEqual({ path: "/run/rollbridge/ticket.sock", defaultPath: false, mode: 0o660, owner: "deploy", group: 1001 });
    expect(config.statePath).toBe("/srv/ticket-server/state/ticket-server.state.json");
    expect(config.statePathSource).toBe("relative");
    expect(config.legacyTakeover.processes[0]?.user).toBe("dev");
    expect(config.proxy.requestTimeoutMs).toBe(120000);
    expect(config.proxy.socket).toEqual({ path: "/srv/ticket-server/proxy/ticket.sock", mode: 0o660, group: "www-data" });
    expect(config.proxy.trustedProxies).toEqual(["127.0.0.1", "10.0.0.0/8", "fd00::/8"]);
    expect(config.proxy.tcp).toBe(false);
    expect(config.metrics).toEqual({ host: "127.0.0.1", port: 9464 });
    expect(config.legacyTakeover.processes[0]?.includes).toHaveLength(3);
    const worker = config.processes.find((process) => process.id === "worker");
    expect(worker?.lifecycle).toEqual({ quietCommand: "kill -TSTP -$ROLLBRIDGE_PID", drainCommand: "./bin/wait-idle", drainTimeoutMs: 60000, stopCommand: undefined });
    expect(worker?.logFile).toEqual({ path: "/srv/ticket-server/logs/{{processId}}-{{replicaIndex}}.log", maxBytes: 1048576, keep: 3, gzip: true });
  });

  it("accepts the README's function-config shape once called", () => {
    valid({
      application: "ticket-server",
      control: { path: "/tmp/rollbridge-ticket-server.sock" },
      proxy: { host: "127.0.0.1", port: 8182 },
      processes: [{ id: "web", policy: "proxied", cwd: "{{releasePath}}", command: "npx velocious server --port {{port}}", port: { from: 18182, to: 18299 } }],
    });
  });

  it("fills every default for a minimal config", () => {
    const config = valid({ processes: [{ id: "web", policy: "proxied", command: "node server.js", port: { from: 18182, to: 18299 } }] });
    expect(config).toEqual({
      application: "ticket-server",
      control: { path: defaultControlPath("ticket-server"), defaultPath: true, mode: undefined, owner: undefined, group: undefined },
      proxy: {
        host: "127.0.0.1",
        port: 8182,
        upstreamHost: "127.0.0.1",
        healthPath: "/ping",
        healthTimeoutMs: 30000,
        drainTimeoutMs: 60000,
        forceStopTimeoutMs: 10000,
        holdTimeoutMs: 10000,
        headersTimeoutMs: 60000,
        requestTimeoutMs: 0,
        keepAliveTimeoutMs: 5000,
        bodyTimeoutMs: 60000,
        upgradeTimeoutMs: 30000,
        drainCloseCode: 1001,
        affinity: { mode: "none" },
        trustedProxies: ["127.0.0.0/8", "::1/128"],
        socket: undefined,
        tcp: true,
      },
      processes: [
        {
          id: "web",
          policy: "proxied",
          cwd: "{{releasePath}}",
          command: "node server.js",
          env: {},
          port: { from: 18182, to: 18299 },
          health: { path: "/ping", timeoutMs: 30000, intervalMs: 200, startDelayMs: 0, ipc: false },
          stopSignal: "SIGTERM",
          stopSignalTarget: "group",
          stopMessage: undefined,
          nonBlockingDrain: false,
          lifecycle: { quietCommand: undefined, drainCommand: undefined, drainTimeoutMs: 0, stopCommand: undefined },
          gracefulStopMs: 10000,
          restartDelayMs: 1000,
          restart: { maxRestarts: undefined, windowMs: 0, backoffFactor: 1, maxDelayMs: 0 },
          memory: undefined,
          replicas: 1,
          outputLines: 50,
          logFile: undefined,
        },
      ],
      releaseRetention: { keep: 10, maxAgeMs: 0 },
      // Unset: the private default, so a daemon starting after a crash adopts what still runs.
      statePath: defaultStatePath("ticket-server"),
      statePathSource: "default",
      legacyTakeover: { screens: [], processes: [] },
      desiredPath: "/srv/ticket-server/desired.yaml",
      metrics: undefined,
      resyncIntervalMs: 5000,
      rollout: { bakeMs: 0, maxErrorRate: 0.05, minRequests: 20, windowMs: 30000, maxP99Ms: 0, steps: [], sticky: "cookie" },
    });
  });

  it("takes health and grace defaults from the proxy section", () => {
    const config = valid({
      proxy: { healthPath: "/up", healthTimeoutMs: 5000, forceStopTimeoutMs: 2500 },
      processes: [
        { id: "web", policy: "proxied", command: "x", port: { from: 3000, to: 3009 }, health: { intervalMs: 50 } },
        { id: "job", policy: "companion", command: "y", gracefulStopMs: 100 },
      ],
    });
    expect(config.processes[0]?.health).toEqual({ path: "/up", timeoutMs: 5000, intervalMs: 50, startDelayMs: 0, ipc: false });
    expect(config.processes[0]?.gracefulStopMs).toBe(2500);
    expect(config.processes[1]?.gracefulStopMs).toBe(100);
  });

  it.each([
    ["cookie", { mode: "cookie", cookie: "rb_release" }],
    [{ cookie: "app_release" }, { mode: "cookie", cookie: "app_release" }],
    [{ query: "sid" }, { mode: "query", name: "sid", maxSessions: 10000 }],
    [
      { header: "X-Session", maxSessions: 50 },
      { mode: "header", name: "X-Session", maxSessions: 50 },
    ],
    ["none", { mode: "none" }],
  ])("normalises proxy.affinity %j", (affinity, expected) => {
    const config = valid({ proxy: { affinity }, processes: [{ id: "web", policy: "proxied", command: "x", port: 3000 }] });
    expect(config.proxy.affinity).toEqual(expected);
  });

  it("leaves health off for non-proxied processes unless asked, and IPC-only health without a path", () => {
    const config = valid({
      processes: [
        { id: "web", policy: "proxied", command: "x", port: { from: 3000, to: 3009 }, health: false },
        { id: "job", policy: "companion", command: "y" },
        { id: "sched", policy: "singleton", command: "z", health: { ipc: true } },
      ],
    });
    expect(config.processes.map((process) => process.health)).toEqual([false, false, { path: undefined, timeoutMs: 30000, intervalMs: 200, startDelayMs: 0, ipc: true }]);
  });

  it("normalises ports, modes, env values and paths", () => {
    const config = valid(
      {
        application: "shop",
        control: { mode: 0o640 },
        statePath: "../state/shop.json",
        desiredPath: "deploy/desired.yaml",
        processes: [
          { id: "web", policy: "proxied", command: "x", port: 18000, env: { A: 1, B: true, C: "c" } },
          { id: "broker", policy: "service", command: "y", port: { from: 7000, to: 7000 } },
        ],
      },
      "/etc/rollbridge/shop/rollbridge.yaml",
    );
    expect(config.control).toMatchObject({ path: defaultControlPath("shop"), defaultPath: true, mode: 0o640 });
    expect(config.statePath).toBe("/etc/rollbridge/state/shop.json");
    expect(config.desiredPath).toBe("/etc/rollbridge/shop/deploy/desired.yaml");
    expect(config.processes[0]?.port).toEqual({ from: 18000, to: 18000 });
    expect(config.processes[0]?.env).toEqual({ A: "1", B: "true", C: "c" });
    expect(config.processes[1]?.port).toEqual({ from: 7000, to: 7000 });
  });

  it.each([
    ["660", 0o660],
    ["0660", 0o660],
    ["0o640", 0o640],
    ["4", 0o4],
    [0o600, 0o600],
  ])("reads control.mode %j as %d", (mode, expected) => {
    const config = valid({ control: { mode }, processes: [{ id: "web", policy: "proxied", command: "x", port: 3000 }] });
    expect(config.control.mode).toBe(expected);
  });

  it("turns the state file off with statePath: false", () => {
    const config = valid({ statePath: false, processes: [{ id: "web", policy: "proxied", command: "x", port: 3000 }] });
    expect(config.statePath).toBeUndefined();
    expect(config.statePathSource).toBeUndefined();
  });

  it("names the application after the config directory by default", () => {
    const config = valid({ processes: [{ id: "web", policy: "proxied", command: "x", port: 3000 }] }, "/opt/apps/billing/rollbridge.json");
    expect(config.application).toBe("billing");
    expect(config.control.path).toBe(defaultControlPath("billing"));
    expect(config.control.path).not.toMatch(/^\/tmp\//);
  });

  it("accepts a $schema key for editors", () => {
    valid({ $schema: "./schemas/config.schema.json", processes: [{ id: "web", policy: "proxied", command: "x", port: 3000 }] });
  });

  it("parses with zod alone for the per-field rules", () => {
    expect(configSchema.safeParse({ processes: [{ id: "web", policy: "proxied", command: "x", port: 3000 }] }).success).toBe(true);
    expect(configSchema.safeParse({ processes: [] }).success).toBe(false);
  });
});
