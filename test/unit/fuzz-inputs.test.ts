// Property-based fuzzing (fast-check) of everything that reads user input: configs, desired
// files and desired documents, valid, nearly valid and garbage. None of them may throw anything
// but a RollbridgeError with a message (validateConfig: nothing at all); a valid input must come
// out clean. A failure prints the seed and the smallest failing input; replay it with FC_SEED=<seed>.
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseDesiredText } from "../../src/config/desired-schema.js";
import { validateConfig } from "../../src/config/issues.js";
import { RollbridgeError } from "../../src/errors.js";
import { resolveDesired } from "../../src/observe/desired-read.js";
import { configArb, desiredObjectArb, hostileValue, mutatedText, validConfigArb, validDesiredArb } from "../helpers/fuzz-arbitraries.js";

const seed = process.env["FC_SEED"] === undefined ? undefined : Number(process.env["FC_SEED"]);
// Bounded in time as well as in runs, so a slow machine runs fewer inputs instead of timing out.
const params = (numRuns: number, timeLimitMs = 2500) => ({ numRuns, interruptAfterTimeLimit: timeLimitMs, ...(seed === undefined ? {} : { seed }) });
const CONFIG_PATH = "/srv/app/rollbridge.yaml";

/** Runs `fn`; a throw must be a RollbridgeError with a code and a message. Returns what it threw. */
function onlyClearErrors<T>(fn: () => T): RollbridgeError | T {
  try {
    return fn();
  } catch (error) {
    expect(error).toBeInstanceOf(RollbridgeError);
    expect((error as RollbridgeError).message.length).toBeGreaterThan(0);
    return error as RollbridgeError;
  }
}

function expectCleanValidation(raw: unknown): ReturnType<typeof validateConfig> {
  const result = validateConfig(raw, { configPath: CONFIG_PATH });
  if (!result.ok) {
    expect(result.issues.length).toBeGreaterThan(0);
    for (const issue of result.issues) {
      expect(typeof issue.message).toBe("string");
      expect(issue.message.length).toBeGreaterThan(0);
      expect(issue.fix.length).toBeGreaterThan(0);
    }
  }
  return result;
}

describe("validateConfig under fuzzing", () => {
  it("never throws on garbage, and reports each problem with a message and a fix", () => {
    fc.assert(
      fc.property(fc.oneof(fc.anything({ withBigInt: true, withDate: true, withMap: true, withSet: true, withNullPrototype: true, withObjectString: true, withSparseArray: true, withTypedArray: true }), hostileValue), (raw) => {
        expectCleanValidation(raw);
      }),
      params(1000),
    );
  });

  it("never throws on nearly valid configs", () => {
    fc.assert(
      fc.property(configArb, (raw) => {
        expectCleanValidation(raw);
      }),
      params(600),
    );
  });

  it("accepts every valid config", () => {
    fc.assert(
      fc.property(validConfigArb, (raw) => {
        const result = expectCleanValidation(raw);
        expect(result.ok ? [] : result.issues).toEqual([]);
      }),
      params(300),
    );
  });
});

describe("parseDesiredText under fuzzing", () => {
  const parse = (text: string) => onlyClearErrors(() => parseDesiredText(text, "desired.yaml"));

  it("answers any text with a document or a DESIRED_INVALID error", () => {
    const texts = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ unit: "binary", maxLength: 200 }),
      desiredObjectArb.map((doc) => stringify(doc)),
      desiredObjectArb.map((doc) => JSON.stringify(doc) ?? "null"),
      mutatedText(desiredObjectArb.map((doc) => stringify(doc))),
    );
    fc.assert(
      fc.property(texts, (text) => {
        const result = parse(text);
        if (result instanceof RollbridgeError) expect(result.code).toBe("DESIRED_INVALID");
        else expect(typeof result).toBe("object");
      }),
      params(800),
    );
  });

  it("accepts every valid desired document", () => {
    fc.assert(
      fc.property(validDesiredArb("/srv/app/releases"), fc.boolean(), (doc, asJson) => {
        const result = parse(asJson ? JSON.stringify(doc) : stringify(doc));
        expect(result).not.toBeInstanceOf(RollbridgeError);
      }),
      params(400),
    );
  });
});

describe("inputs the fuzzers found", () => {
  it("reports a YAML merge of a non-mapping as DESIRED_INVALID with its line, not a bare Error", () => {
    const error = onlyClearErrors(() => parseDesiredText("release:\n  path: /srv/a\nextra: &x [1]\nenv:\n  <<: *x\n", "desired.yaml"));
    expect(error).toBeInstanceOf(RollbridgeError);
    expect((error as RollbridgeError).message).toMatch(/desired\.yaml at line 5, column 7: .*[Mm]erge/);
  });

  it("refuses release.path / (it has no name to serve as the release id)", async () => {
    await expect(resolveDesired({ release: { path: "/" } }, "/tmp")).rejects.toMatchObject({ code: "DESIRED_INVALID", message: expect.stringMatching(/no directory name/) });
    const target = await resolveDesired({ release: { path: "/", id: "root" } }, "/tmp");
    expect(target.release?.id).toBe("root");
  });
});

describe("resolveDesired under fuzzing", () => {
  let dir: string;
  let paths: string[];
  beforeAll(async () => {
    dir = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), "rb-fuzz-")));
    await fs.mkdir(path.join(dir, "releases", "v1"), { recursive: true });
    await fs.writeFile(path.join(dir, "releases", "v1", "REVISION"), "abc123\n");
    await fs.writeFile(path.join(dir, "a-file"), "not a directory");
    await fs.symlink(path.join(dir, "releases", "v1"), path.join(dir, "current"));
    await fs.symlink(path.join(dir, "gone"), path.join(dir, "dangling"));
    await fs.symlink(path.join(dir, "loop-b"), path.join(dir, "loop-a"));
    await fs.symlink(path.join(dir, "loop-a"), path.join(dir, "loop-b"));
    paths = [path.join(dir, "releases", "v1"), "releases/v1", "current", path.join(dir, "current"), "dangling", "loop-a", "a-file", "missing", "/", ".", "..", "releases/v1/", "releases//v1", `${"x/".repeat(3000)}v1`, "bad\0path", " ", "~"];
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it("resolves a parsed document to a target or rejects it with a RollbridgeError", async () => {
    const docs = fc.oneof(
      validDesiredArb("."),
      fc.record(
        { release: fc.record({ path: fc.constantFrom(...paths), id: fc.option(fc.constantFrom("v1", "x", "2026"), { nil: undefined }) }, { requiredKeys: ["path"] }), stopped: fc.option(fc.boolean(), { nil: undefined }) },
        { requiredKeys: [] },
      ),
    );
    await fc.assert(
      fc.asyncProperty(docs, async (raw) => {
        const parsed = onlyClearErrors(() => parseDesiredText(JSON.stringify(raw), "desired.yaml"));
        if (parsed instanceof RollbridgeError) return;
        try {
          const target = await resolveDesired(parsed, dir);
          if (target.release) {
            expect(target.release.id.length).toBeGreaterThan(0);
            expect(path.isAbsolute(target.release.path)).toBe(true);
          } else expect(target.stopped).toBe(true);
        } catch (error) {
          expect(error).toBeInstanceOf(RollbridgeError);
          expect((error as RollbridgeError).message.length).toBeGreaterThan(0);
        }
      }),
      params(400),
    );
  });
});
