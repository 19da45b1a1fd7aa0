// Generated input against the real programs: a running daemon gets a burst of generated desired
// files and PUT /v1/desired bodies and keeps serving its release; `rollbridge validate` and
// `rollbridge diff` answer generated files with their documented exit codes and a clear message,
// never a stack trace. Inputs come from test/helpers/fuzz-arbitraries.ts; the seed is in every
// failure message (FC_SEED=<seed> replays it).
import { promises as fs } from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, sleep, startDaemon, until, type TestDaemon } from "../helpers/daemon.js";
import { startLoad } from "../helpers/load.js";
import { configArb, desiredObjectArb, hostileValue, mutatedText, validConfigArb } from "../helpers/fuzz-arbitraries.js";
import { control, expectDaemonServes, quickStatus } from "../helpers/raw.js";

const seed = process.env["FC_SEED"] === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(process.env["FC_SEED"]);
const sample = <T>(arb: fc.Arbitrary<T>, numRuns: number, offset: number) => fc.sample(arb, { numRuns, seed: seed + offset });

// A generated document that would legitimately change what runs (stop the release) is not fuzz.
const stops = (text: string) => /stopped["']?\s*:\s*(true|!!bool|yes|on)/i.test(text);
const isStackTrace = (text: string) => /unexpected error|^\s+at .+:\d+:\d+\)?$/m.test(text);

let daemon: TestDaemon;
let v1: string;

beforeAll(async () => {
  daemon = await startDaemon();
  v1 = await daemon.release("v1");
  const result = await daemon.cli(["apply", "--release-path", v1, "--wait"]);
  expect(result.code, result.stderr).toBe(0);
});

afterAll(async () => {
  await daemon?.stop();
});

describe(`generated input against the daemon and the CLI (seed ${seed})`, () => {
  it("keeps serving its release through a burst of generated desired files and PUT /v1/desired bodies", async () => {
    const load = startLoad(daemon.proxyPort, { connections: 4 });
    const texts = sample(
      fc.oneof(
        desiredObjectArb.map((doc) => stringify(doc)),
        desiredObjectArb.map((doc) => JSON.stringify(doc) ?? "null"),
        mutatedText(desiredObjectArb.map((doc) => stringify(doc))),
        fc.string({ unit: "binary", maxLength: 100 }),
      ),
      60,
      1,
    ).filter((text) => !stops(text));
    for (const text of texts) {
      await fs.writeFile(daemon.desiredPath, text);
      await sleep(15);
    }
    const bodies = sample(
      fc.oneof(
        desiredObjectArb.map((document) => JSON.stringify({ document })),
        hostileValue.map((value) => JSON.stringify(value) ?? "null"),
        fc.string({ maxLength: 60 }),
      ),
      60,
      2,
    ).filter((body) => !stops(body));
    for (const body of bodies) {
      const answer = await control(daemon.socket, "PUT", "/desired", body);
      expect(answer.status, `seed ${seed}: PUT ${body}`).toBeGreaterThanOrEqual(400);
      expect(answer.status, `seed ${seed}: PUT ${body} → ${JSON.stringify(answer.json)}`).toBeLessThan(500);
      expect(answer.json.error.message.length, `seed ${seed}: PUT ${body}`).toBeGreaterThan(0);
    }
    const stats = await load.stop();
    expect(stats.errors, `seed ${seed}`).toEqual([]);
    expect(stats.failed + stats.non2xx).toBe(0);
    expect(Object.keys(stats.byRelease)).toEqual(["v1"]);
    await expectDaemonServes(daemon, "v1");

    // The last good state ran all along; a valid file is adopted again and clears the error.
    await fs.writeFile(daemon.desiredPath, `release: {path: ${v1}}\n`);
    const status = await until(
      async () => {
        const s = await quickStatus(daemon.socket);
        return s.desired.error === null && s.converged ? s : null;
      },
      10_000,
      "the valid desired file adopted",
    );
    expect(status.activeRelease.id).toBe("v1");
    expect(status.releases.map((r: { id: string }) => r.id)).toEqual(["v1"]);
  });

  it("answers `rollbridge diff` on generated desired files with 0, 1 or 2 and a clear message", async () => {
    const texts = sample(
      fc.oneof(
        desiredObjectArb.map((doc) => stringify(doc)),
        mutatedText(desiredObjectArb.map((doc) => stringify(doc))),
      ),
      10,
      3,
    );
    const results = await inBatches(texts, 5, async (text, i) => {
      const file = path.join(daemon.dir, `fuzz-desired-${i}.yaml`);
      await fs.writeFile(file, text);
      return [text, await daemon.cli(["diff", "-f", file])] as const;
    });
    for (const [text, result] of results) {
      expect([0, 1, 2], `seed ${seed}: diff of ${JSON.stringify(text)}: ${result.stderr}`).toContain(result.code);
      expect(isStackTrace(result.stderr), `seed ${seed}: ${result.stderr}`).toBe(false);
      if (result.code === 2) expect(result.stderr).toMatch(/^rollbridge: \S/);
    }
    expect(daemon.child.exitCode).toBeNull();
  });

  it("answers `rollbridge validate` on generated config files with 0 or 1 and a clear message", async () => {
    const configs = [
      ...sample(
        validConfigArb.map((raw) => ({ ext: "yaml", text: stringify(raw) })),
        3,
        4,
      ),
      ...sample(
        fc.oneof(
          { weight: 4, arbitrary: configArb.map((raw) => ({ ext: "yaml", text: stringify(raw) })) },
          { weight: 1, arbitrary: configArb.map((raw) => ({ ext: "json", text: JSON.stringify(raw) ?? "null" })) },
          { weight: 1, arbitrary: configArb.map((raw) => ({ ext: "mjs", text: `export default ${JSON.stringify(raw) ?? "undefined"};\n` })) },
          { weight: 2, arbitrary: mutatedText(configArb.map((raw) => stringify(raw))).map((text) => ({ ext: "yaml", text })) },
        ),
        27,
        5,
      ),
    ];
    const dir = await fs.mkdtemp(path.join(daemon.dir, "validate-"));
    const results = await inBatches(configs, 5, async ({ ext, text }, i) => {
      const file = path.join(dir, `config-${i}.${ext}`);
      await fs.writeFile(file, text);
      return [text, await runCli(["validate", "--config", file], { cwd: dir })] as const;
    });
    for (const [text, result] of results) {
      expect([0, 1], `seed ${seed}: validate of ${JSON.stringify(text)}: ${result.stderr}`).toContain(result.code);
      expect(isStackTrace(result.stderr), `seed ${seed}: ${result.stderr}`).toBe(false);
      if (result.code === 1) expect(result.stderr.trim().length).toBeGreaterThan(0);
    }
    // The valid ones pass: the answers depend on the input, not on luck.
    for (const [, result] of results.slice(0, 3)) expect(result.code, `seed ${seed}: ${result.stderr}`).toBe(0);
    expect(results.some(([, r]) => r.code === 1)).toBe(true);
  });
});

async function inBatches<T, R>(items: T[], size: number, run: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map((item, j) => run(item, i + j)))));
  return out;
}
