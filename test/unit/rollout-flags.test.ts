// `--bake MS`, `--canary 10,50` and `--max-p99 MS` as a desired `rollout` section
// (src/cli/desired-input.ts): what each flag writes, and the usage error a bad value gets.
import { describe, expect, it } from "vitest";
import { rolloutFromFlags } from "../../src/cli/desired-input.js";
import { isRollbridgeError } from "../../src/errors.js";

describe("rollout flags of apply and deploy", () => {
  it.each([
    { flags: {}, rollout: null },
    { flags: { "max-p99": "500" }, rollout: { maxP99Ms: 500 } },
    { flags: { bake: "60000", "max-p99": "0" }, rollout: { bakeMs: 60000, maxP99Ms: 0 } },
    { flags: { bake: "1000", canary: "25:2000", "max-p99": "250" }, rollout: { bakeMs: 1000, steps: [{ weight: 25, pauseMs: 2000 }], maxP99Ms: 250 } },
  ])("$flags writes $rollout", async ({ flags, rollout }) => {
    expect(await rolloutFromFlags(flags)).toEqual(rollout);
  });

  it.each(["1.5", "-1", "fast", "99999999999"])("--max-p99 %s is a usage error naming the flag", async (value) => {
    const error = await rolloutFromFlags({ "max-p99": value }).catch((e: unknown) => e);
    expect(isRollbridgeError(error, "USAGE")).toBe(true);
    expect((error as Error).message).toBe(`--max-p99 ${value}: expected a whole number of milliseconds (0 to 2147483647)`);
  });
});
