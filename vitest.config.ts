import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start real daemons and processes; two cores, so keep it modest.
    maxWorkers: 2,
    // Daemons under test run as started, without restarting themselves for their heap flags
    // (src/cli/daemon-heap.ts): their pid is the spawned child's. test/integration/daemon-heap.test.ts
    // covers the restart.
    env: { ROLLBRIDGE_DAEMON_REEXEC: "off" },
    reporters: ["default", "json"],
    outputFile: { json: "test-results/vitest.json" },
  },
});
