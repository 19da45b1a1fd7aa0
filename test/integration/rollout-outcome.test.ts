// What fleet tooling reads from one host: `status --json` `rollout` names the last rollout and
// its outcome (serving, failed) with the reason, and `apply --wait` exits 124 when --timeout
// runs out, 1 when the rollout fails, 0 when it serves — the JSON outcome telling which.
import { afterEach, describe, expect, it } from "vitest";
import { startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { get } from "../helpers/load.js";

let daemon: TestDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

describe("status --json rollout and apply --wait exit codes", () => {
  it("reports serving, then failed with the reason, then a --timeout abandon (exit 124) as failed; v1 serves throughout", async () => {
    daemon = await startDaemon({ proxy: { drainTimeoutMs: 1000 } });
    const d = daemon;
    expect((await d.status()).rollout).toBeNull();

    const v1 = await d.cli(["apply", "--release-path", await d.release("v1"), "--wait", "--json"]);
    expect(v1.code, v1.stderr).toBe(0);
    expect(JSON.parse(v1.stdout).outcome.outcome).toBe("converged");
    const serving = (await d.status()).rollout;
    expect(serving).toMatchObject({ releaseId: "v1", outcome: "serving", reason: null });
    expect(Date.parse(serving.finishedAt)).toBeGreaterThanOrEqual(Date.parse(serving.startedAt));

    // A release whose process exits at once: failed, exit 1, the reason in both places.
    const bad = await d.cli(["apply", "-f", "-", "--wait", "--json"], { input: `release: {path: ${await d.release("v2")}}\nenv: {EXIT_IMMEDIATELY: "1"}\n` });
    expect(bad.code).toBe(1);
    const badOutcome = JSON.parse(bad.stdout).outcome;
    expect(badOutcome.outcome).toBe("failed");
    const failed = (await d.status()).rollout;
    expect(failed).toMatchObject({ releaseId: "v2", outcome: "failed" });
    expect(failed.reason).toBe(badOutcome.message);
    expect(failed.reason).toMatch(/exited/);
    expect(JSON.parse((await get(d.proxyPort)).body).release).toBe("v1");

    // Back to v1 by hand (it is active: nothing restarts), then a release that never becomes
    // ready within --timeout: exit 124, abandoned, and status says the rollout failed.
    const back = await d.cli(["apply", "-f", "-", "--wait"], { input: `release: {path: ${await d.release("v1")}}\n` });
    expect(back.code, back.stderr).toBe(0);
    expect((await d.status()).rollout).toMatchObject({ releaseId: "v2", outcome: "failed" });
    const slow = await d.cli(["apply", "-f", "-", "--wait", "--json", "--timeout", "1500"], { input: `release: {path: ${await d.release("v3")}}\nenv: {BOOT_DELAY_MS: "30000"}\n` });
    expect(slow.code, slow.stderr).toBe(124);
    expect(JSON.parse(slow.stdout).outcome.outcome).toBe("timeout");
    const s = await d.status();
    expect(s.rollout).toMatchObject({ releaseId: "v3", outcome: "failed" });
    expect(s.rollout.reason).toMatch(/abandoned: not ready within 1500 ms/);
    expect(s.desired.releaseId).toBe("v1");
    expect(s.activeRelease.id).toBe("v1");

    // The human status says it too.
    expect((await d.cli(["status"])).stdout).toMatch(/last rollout: v3 failed: rollout of v3 abandoned/);
  });
});
