// Where the CLI keeps Node's compile cache, and that it refuses a directory that is not safely its own.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import module from "node:module";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { compileCacheDir, enableCompileCache } from "../../src/cli/compile-cache.js";

const canCache = typeof (module as { enableCompileCache?: unknown }).enableCompileCache === "function";
const tmp = mkdtempSync(path.join(os.tmpdir(), "rb-compile-cache-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("compileCacheDir", () => {
  it.each([
    ["root", 0, {}, "/var/cache/rollbridge"],
    ["root ignores XDG_CACHE_HOME", 0, { XDG_CACHE_HOME: "/home/x/.c" }, "/var/cache/rollbridge"],
    ["a user, default", 1000, {}, "/home/u/.cache/rollbridge"],
    ["a user with XDG_CACHE_HOME", 1000, { XDG_CACHE_HOME: "/data/cache" }, "/data/cache/rollbridge"],
    ["a relative XDG_CACHE_HOME is ignored", 1000, { XDG_CACHE_HOME: "rel" }, "/home/u/.cache/rollbridge"],
  ] as const)("%s", (_what, uid, env, expected) => {
    expect(compileCacheDir(uid, env, "/home/u")).toBe(expected);
  });
});

describe("enableCompileCache", () => {
  it("does nothing when NODE_COMPILE_CACHE or NODE_DISABLE_COMPILE_CACHE is set", () => {
    expect(enableCompileCache({ NODE_COMPILE_CACHE: path.join(tmp, "node-own") }, path.join(tmp, "a"))).toBeNull();
    expect(enableCompileCache({ NODE_DISABLE_COMPILE_CACHE: "1" }, path.join(tmp, "b"))).toBeNull();
  });

  it.runIf(canCache)("refuses a directory others may write (Node >= 22.1 only: older Node has no module.enableCompileCache, skipped there)", () => {
    const dir = path.join(tmp, "open");
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    expect(enableCompileCache({}, dir)).toBeNull();
  });

  it.runIf(canCache)("refuses a symlink in the directory's place (Node >= 22.1 only: older Node has no module.enableCompileCache, skipped there)", () => {
    const target = path.join(tmp, "elsewhere");
    mkdirSync(target, { mode: 0o700 });
    const dir = path.join(tmp, "link");
    symlinkSync(target, dir);
    expect(enableCompileCache({}, dir)).toBeNull();
  });
});
