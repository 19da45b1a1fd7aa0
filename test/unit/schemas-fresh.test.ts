import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildJsonSchemas } from "../../src/config/json-schemas.js";

const root = join(import.meta.dirname, "..", "..");

describe("schemas/*.schema.json", () => {
  const built = buildJsonSchemas();

  it.each([
    ["config", built.config],
    ["desired", built.desired],
  ] as const)("schemas/%s.schema.json matches the zod schema", async (name, schema) => {
    const file = join(root, "schemas", `${name}.schema.json`);
    const onDisk = await readFile(file, "utf8").catch(() => "(missing)");
    const expected = `${JSON.stringify(schema, null, 2)}\n`;
    if (onDisk !== expected) {
      expect.fail(`schemas/${name}.schema.json is stale (it differs from what src/config/json-schemas.ts builds); run \`npm run schemas\` and commit the result`);
    }
  });

  it("describes the files as written: shorthands, defaults and strict keys", () => {
    const config = built.config as { properties: Record<string, { default?: unknown }>; additionalProperties: boolean; required: string[] };
    expect(config.additionalProperties).toBe(false);
    expect(config.required).toEqual(["processes"]);
    expect(config.properties["resyncIntervalMs"]?.default).toBe(5000);
    const desired = built.desired as { properties: Record<string, unknown>; additionalProperties: boolean };
    expect(Object.keys(desired.properties)).toEqual(expect.arrayContaining(["release", "replicas", "env", "stopped"]));
    expect(desired.additionalProperties).toBe(false);
  });
});
