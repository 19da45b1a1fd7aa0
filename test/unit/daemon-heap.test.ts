// Which heap flags the daemon adds to Node's command line: only those whose option the user
// gave neither on node's command line nor in NODE_OPTIONS (in any value or spelling).
import { describe, expect, it } from "vitest";
import { DAEMON_HEAP_FLAGS, missingHeapFlags, needsRuntimeFlag } from "../../src/cli/daemon-heap.js";

describe("missingHeapFlags", () => {
  it.each([
    ["nothing given", [], undefined, DAEMON_HEAP_FLAGS],
    ["on node's command line", ["--max-semi-space-size=2"], undefined, []],
    ["another value of the user's", ["--max-semi-space-size=8"], undefined, []],
    ["in NODE_OPTIONS", [], "--max-old-space-size=200 --max-semi-space-size=4", []],
    ["with underscores, as V8 also reads them", ["--max_semi_space_size=1"], undefined, []],
    ["other flags only", ["--enable-source-maps"], "--max-old-space-size=200", DAEMON_HEAP_FLAGS],
    ["a longer flag with the same start", ["--max-semi-space-size-x=3"], undefined, DAEMON_HEAP_FLAGS],
  ] as const)("%s", (_what, execArgv, nodeOptions, expected) => {
    expect(missingHeapFlags(execArgv, nodeOptions)).toEqual(expected);
  });
});

describe("needsRuntimeFlag", () => {
  it.each([
    ["nothing given", [], true],
    ["other flags only", ["--max-semi-space-size=2", "--enable-source-maps"], true],
    ["given", ["--liftoff-only"], false],
    ["turned off by the user", ["--no-liftoff-only"], false],
    ["with underscores", ["--liftoff_only"], false],
    ["a longer flag with the same start", ["--liftoff-only-x"], true],
  ] as const)("%s", (_what, execArgv, expected) => {
    expect(needsRuntimeFlag(execArgv)).toBe(expected);
  });
});
