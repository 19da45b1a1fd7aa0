// fast-check generators for configs and desired documents: valid ones, nearly valid ones (each
// field is right most of the time and hostile otherwise, plus misspelt keys), and garbage.
// Shared by the unit fuzz tests and the daemon/CLI fuzz tests.
import fc from "fast-check";

const leaf = fc.oneof(
  fc.integer({ min: -10, max: 70_000 }),
  fc.double(),
  fc.constantFrom(0, -1, 0.5, 1e308, Number.NaN, Number.POSITIVE_INFINITY, -0, 2 ** 53 + 1),
  fc.string({ maxLength: 20 }),
  fc.constantFrom("", " ", "{{port}}", "{{nope}}", "{{ports.web}}", "{{ports.zz}}", "{{", "}}", "__proto__", "constructor", "/ping", "SIGTERM", "proxied", "web#1", "a=b", "\0"),
  fc.boolean(),
  fc.constant(null),
);

/** Wrong in shape or type: a leaf, a short list, or a small mapping with odd keys. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: leaf },
  { weight: 1, arbitrary: fc.array(leaf, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom("__proto__", "constructor", "toString", "from", "to")), leaf, { maxKeys: 3 }) },
);

/** Usually `valid`, sometimes hostile. */
const mostly = <T>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 5, arbitrary: valid }, { weight: 1, arbitrary: hostileValue });

const processId = fc.stringMatching(/^[a-z][a-z0-9_.-]{0,7}$/);
const envName = fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,10}$/);
const range = fc.integer({ min: 10_000, max: 60_000 }).chain((from) => fc.integer({ min: from + 1, max: Math.min(from + 100, 65_535) }).map((to) => ({ from, to })));
const signal = fc.constantFrom("SIGTERM", "SIGINT", "SIGQUIT", "SIGUSR2", "SIGHUP");
const command = fc.constantFrom("node server.js --port {{port}}", "node worker.js {{releaseId}}", "ruby app.rb -p {{port}} --env {{env.RACK_ENV}}", "./bin/run {{ports.web}}", "sleep 1000");
const misspelt = fc.constantFrom("prot", "polcy", "helth", "comand", "replica", "drainTimeout", "__proto__", "constructor");

const processArb = fc.record(
  {
    id: mostly(processId),
    policy: mostly(fc.constantFrom("proxied", "companion", "singleton", "service", "worker")),
    command: mostly(command),
    cwd: mostly(fc.constantFrom("{{releasePath}}", "/srv/app", "{{releasePath}}/{{nope}}")),
    env: mostly(fc.dictionary(envName, fc.oneof(fc.string({ maxLength: 10 }), fc.integer(), fc.boolean()), { maxKeys: 3 })),
    port: mostly(
      fc.oneof(
        range,
        fc.integer({ min: 1, max: 65_535 }),
        range.map(({ from, to }) => ({ from: to, to: from })),
      ),
    ),
    health: mostly(
      fc.oneof(
        fc.constant(false),
        fc.record({ path: mostly(fc.constantFrom("/ping", "ping", "/health")), timeoutMs: mostly(fc.nat(60_000)), intervalMs: mostly(fc.integer({ min: 1, max: 5000 })), ipc: mostly(fc.boolean()) }, { requiredKeys: [] }),
      ),
    ),
    stopSignal: mostly(signal),
    stopMessage: mostly(fc.constantFrom("shutdown", "")),
    nonBlockingDrain: mostly(fc.boolean()),
    lifecycle: mostly(fc.record({ quietCommand: mostly(fc.constant("true")), drainCommand: mostly(fc.constant("./bin/wait")), drainTimeoutMs: mostly(fc.nat(60_000)), stopCommand: mostly(fc.constant("./bin/stop")) }, { requiredKeys: [] })),
    gracefulStopMs: mostly(fc.nat(60_000)),
    restartDelayMs: mostly(fc.nat(10_000)),
    restart: mostly(fc.record({ maxRestarts: mostly(fc.nat(10)), windowMs: mostly(fc.nat(100_000)), backoffFactor: mostly(fc.double({ min: 1, max: 4, noNaN: true })), maxDelayMs: mostly(fc.nat(60_000)) }, { requiredKeys: [] })),
    memory: mostly(fc.record({ limitBytes: mostly(fc.integer({ min: 1, max: 2 ** 31 })), warnBytes: mostly(fc.nat()), checkIntervalMs: mostly(fc.integer({ min: 1, max: 10_000 })) }, { requiredKeys: [] })),
    replicas: mostly(fc.integer({ min: 1, max: 8 })),
    outputLines: mostly(fc.integer({ min: 1, max: 500 })),
    logFile: mostly(fc.record({ path: mostly(fc.constantFrom("/var/log/{{processId}}.log", "{{nope}}.log")), maxBytes: mostly(fc.integer({ min: 1, max: 1e9 })), keep: mostly(fc.nat(10)), gzip: mostly(fc.boolean()) }, { requiredKeys: [] })),
  },
  { requiredKeys: [] },
);

const withTypo = <T extends object>(arb: fc.Arbitrary<T>): fc.Arbitrary<unknown> =>
  fc.tuple(arb, fc.option(fc.tuple(misspelt, hostileValue), { freq: 4 })).map(([value, typo]) => {
    if (typo === null) return value;
    const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    Object.defineProperty(copy, typo[0], { value: typo[1], enumerable: true, configurable: true, writable: true });
    return copy;
  });

/** Configs that are right in most places and wrong in a few (types, ranges, cross-field rules, typos). */
export const configArb: fc.Arbitrary<unknown> = withTypo(
  fc.record(
    {
      application: mostly(fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/)),
      control: mostly(
        fc.record(
          {
            path: mostly(fc.constantFrom("/run/rb.sock", "rb.sock", `/tmp/${"x".repeat(120)}.sock`)),
            mode: mostly(fc.constantFrom("660", "0o600", 0o660, "999")),
            owner: mostly(fc.constantFrom("deploy", 1000, -1)),
            group: mostly(fc.constantFrom("deploy", 1000)),
          },
          { requiredKeys: [] },
        ),
      ),
      proxy: mostly(
        withTypo(
          fc.record(
            {
              host: mostly(fc.constantFrom("127.0.0.1", "::1", "")),
              port: mostly(fc.integer({ min: 1, max: 65_535 })),
              upstreamHost: mostly(fc.constant("127.0.0.1")),
              healthPath: mostly(fc.constantFrom("/ping", "ping")),
              healthTimeoutMs: mostly(fc.nat(60_000)),
              drainTimeoutMs: mostly(fc.nat(60_000)),
              forceStopTimeoutMs: mostly(fc.nat(60_000)),
              holdTimeoutMs: mostly(fc.nat(60_000)),
              headersTimeoutMs: mostly(fc.nat(120_000)),
              requestTimeoutMs: mostly(fc.nat(120_000)),
              keepAliveTimeoutMs: mostly(fc.nat(60_000)),
            },
            { requiredKeys: [] },
          ),
        ),
      ),
      processes: mostly(fc.array(withTypo(processArb), { maxLength: 4 })),
      releaseRetention: mostly(fc.record({ keep: mostly(fc.nat(20)), maxAgeMs: mostly(fc.nat()) }, { requiredKeys: [] })),
      statePath: mostly(fc.constantFrom("state.json", "/var/lib/rb/state.json")),
      legacyTakeover: mostly(
        fc.record(
          {
            screens: mostly(fc.array(fc.string({ minLength: 1, maxLength: 8 }), { maxLength: 2 })),
            processes: mostly(fc.array(fc.record({ name: mostly(fc.constant("old")), includes: mostly(fc.array(fc.string({ maxLength: 8 }), { maxLength: 2 })) }), { maxLength: 2 })),
          },
          { requiredKeys: [] },
        ),
      ),
      desiredPath: mostly(fc.constantFrom("desired.yaml", "../desired.yaml", "")),
      metrics: mostly(fc.record({ host: mostly(fc.constant("127.0.0.1")), port: mostly(fc.integer({ min: 1, max: 65_535 })) }, { requiredKeys: [] })),
      resyncIntervalMs: mostly(fc.integer({ min: 0, max: 20_000 })),
    },
    { requiredKeys: [] },
  ),
);

/** Configs that satisfy every rule: one proxied process with a port range, uniquely named others. */
export const validConfigArb: fc.Arbitrary<Record<string, unknown>> = fc
  .record({
    application: fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/),
    port: fc.integer({ min: 1024, max: 9000 }),
    drainTimeoutMs: fc.nat(100_000),
    headersTimeoutMs: fc.integer({ min: 1, max: 60_000 }),
    requestTimeoutExtra: fc.option(fc.nat(60_000), { nil: undefined }),
    web: fc.record({
      range,
      replicas: fc.integer({ min: 1, max: 2 }),
      health: fc.option(fc.record({ path: fc.constantFrom("/ping", "/up"), intervalMs: fc.integer({ min: 10, max: 1000 }), timeoutMs: fc.integer({ min: 100, max: 60_000 }) }), { nil: undefined }),
    }),
    others: fc.uniqueArray(fc.record({ id: processId.filter((id) => id !== "web"), policy: fc.constantFrom("companion", "singleton", "service"), withPort: fc.boolean(), stopSignal: signal }), { maxLength: 3, selector: (p) => p.id }),
    resyncIntervalMs: fc.option(fc.integer({ min: 100, max: 10_000 }), { nil: undefined }),
  })
  .map((c) => ({
    application: c.application,
    proxy: { port: c.port, drainTimeoutMs: c.drainTimeoutMs, headersTimeoutMs: c.headersTimeoutMs, requestTimeoutMs: c.requestTimeoutExtra === undefined ? 0 : c.headersTimeoutMs + c.requestTimeoutExtra },
    processes: [
      { id: "web", policy: "proxied", command: "node server.js --port {{port}}", port: c.web.range, replicas: c.web.replicas, ...(c.web.health ? { health: c.web.health } : {}) },
      ...c.others.map((p, i) => ({
        id: p.id,
        policy: p.policy,
        command: p.withPort ? "node side.js --port {{port}} --web {{ports.web}}" : "node worker.js {{releaseId}}",
        stopSignal: p.stopSignal,
        ...(p.withPort ? { port: { from: 61_000 + i * 10, to: 61_005 + i * 10 } } : {}),
      })),
    ],
    ...(c.resyncIntervalMs === undefined ? {} : { resyncIntervalMs: c.resyncIntervalMs }),
  }));

/** Valid desired documents whose release paths live under `base` (which need not exist). */
export function validDesiredArb(base: string): fc.Arbitrary<Record<string, unknown>> {
  const release = fc.record(
    {
      path: fc.stringMatching(/^[a-z0-9]{1,10}$/).map((name) => `${base}/${name}`),
      revision: fc.string({ minLength: 1, maxLength: 12 }),
      id: fc.stringMatching(/^[A-Za-z0-9._-]{1,12}$/),
    },
    { requiredKeys: ["path"] },
  );
  return fc.oneof(
    fc.record(
      {
        release,
        replicas: fc.dictionary(processId, fc.nat(8), { maxKeys: 3 }),
        env: fc.dictionary(envName, fc.string({ maxLength: 12 }), { maxKeys: 3 }),
        stopped: fc.constant(false),
      },
      { requiredKeys: ["release"] },
    ),
    fc.record({ stopped: fc.constant(true), release: release }, { requiredKeys: ["stopped"] }),
  );
}

/** Desired documents: valid, nearly valid (a hostile field or a typo), or any JSON value. */
export const desiredObjectArb: fc.Arbitrary<unknown> = fc.oneof(
  validDesiredArb("/srv/app/releases"),
  withTypo(
    fc.record(
      {
        release: mostly(fc.record({ path: mostly(fc.constantFrom("/srv/a", "", "rel")), revision: mostly(fc.string({ maxLength: 6 })), id: mostly(fc.constantFrom("v1", "a b", "x/y", "")) }, { requiredKeys: [] })),
        replicas: mostly(fc.dictionary(fc.string({ maxLength: 6 }), mostly(fc.nat(4)), { maxKeys: 2 })),
        env: mostly(fc.dictionary(fc.string({ maxLength: 6 }), mostly(fc.string({ maxLength: 6 })), { maxKeys: 2 })),
        stopped: mostly(fc.boolean()),
      },
      { requiredKeys: [] },
    ),
  ),
  fc.jsonValue({ maxDepth: 3 }),
);

/** Texts derived from `texts` by truncating, duplicating or splicing in stray characters. */
export function mutatedText(texts: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.tuple(texts, fc.nat(), fc.constantFrom("", ":", "- ", "\t", "{", "[", "'", '"', "&a", "*a", "!!binary", "\n  ", "%YAML 1.2\n---\n", "<<: *a", "\0"), fc.constantFrom("cut", "splice", "double")).map(([text, at, stray, how]) => {
    const i = text.length === 0 ? 0 : at % text.length;
    switch (how) {
      case "cut":
        return text.slice(0, i);
      case "splice":
        return text.slice(0, i) + stray + text.slice(i);
      case "double":
        return text + text;
      default:
        return text;
    }
  });
}
