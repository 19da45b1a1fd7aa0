// The private default paths (src/config/runtime-dir.ts): where they are for root and for other
// users, and how their directories are created and checked.
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { configRecordName, defaultControlCandidates, defaultControlPath, defaultDaemonLogPath, defaultPidPath, defaultStatePath, ensurePrivateDir, runtimeBase, type PathContext } from "../../src/config/runtime-dir.js";
import { isRollbridgeError } from "../../src/errors.js";

const isRoot = process.getuid?.() === 0;
const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await fs.rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "rb-rundir-"));
  dirs.push(dir);
  return dir;
}

const me = process.getuid?.() ?? 0;

describe("default paths", () => {
  it("as root: the socket, pid file and log in /run/rollbridge/<app>/, the state in /var/lib/rollbridge/<app>/", () => {
    const root: PathContext = { uid: 0, env: { XDG_RUNTIME_DIR: "/run/user/0" }, home: "/root" };
    expect(defaultControlPath("shop", root)).toBe("/run/rollbridge/shop/control.sock");
    expect(defaultPidPath("shop", root)).toBe("/run/rollbridge/shop/daemon.pid");
    expect(defaultDaemonLogPath("shop", root)).toBe("/run/rollbridge/shop/daemon.log");
    expect(defaultStatePath("shop", root)).toBe("/var/lib/rollbridge/shop/state.json");
    expect(defaultControlCandidates("shop", root)).toEqual(["/run/rollbridge/shop/control.sock"]);
  });

  it("as another user: under its own XDG_RUNTIME_DIR, the state under ~/.local/state; root's socket is a candidate too", async () => {
    const xdg = await tempDir(); // 0700
    // As root, the runtime directory is given to a made-up user; otherwise it is this user's.
    const uid = me === 0 ? 54321 : me;
    if (me === 0) await fs.chown(xdg, uid, uid);
    const user: PathContext = { uid, env: { XDG_RUNTIME_DIR: xdg }, home: "/home/deploy" };
    expect(defaultControlPath("shop", user)).toBe(path.join(xdg, "rollbridge/shop/control.sock"));
    expect(defaultStatePath("shop", user)).toBe("/home/deploy/.local/state/rollbridge/shop/state.json");
    expect(defaultControlCandidates("shop", user)).toContain("/run/rollbridge/shop/control.sock");
  });

  it("falls back to ~/.local/state when XDG_RUNTIME_DIR is unset, or is not this user's (sudo -u keeps the caller's)", async () => {
    const foreign = await tempDir();
    // A uid that does not own `foreign` (nor anything else here).
    const user = (env: Record<string, string>): PathContext => ({ uid: 54321, env, home: "/home/deploy" });
    expect(runtimeBase(user({}))).toBe("/home/deploy/.local/state/rollbridge");
    expect(runtimeBase(user({ XDG_RUNTIME_DIR: foreign }))).toBe("/home/deploy/.local/state/rollbridge");
    expect(runtimeBase(user({ XDG_RUNTIME_DIR: "relative/dir" }))).toBe("/home/deploy/.local/state/rollbridge");
    expect(runtimeBase(user({ XDG_STATE_HOME: "/var/state/deploy" }))).toBe("/var/state/deploy/rollbridge");
  });

  it("never puts a default in /tmp", () => {
    for (const ctx of [
      { uid: 0, env: {}, home: "/root" },
      { uid: 54321, env: {}, home: "/home/x" },
    ] satisfies PathContext[]) {
      for (const p of [defaultControlPath("a", ctx), defaultPidPath("a", ctx), defaultDaemonLogPath("a", ctx), defaultStatePath("a", ctx)]) expect(p).not.toMatch(/^\/tmp\//);
    }
  });

  it("keys the config record by the config file's absolute path", () => {
    expect(configRecordName("/etc/rollbridge/shop.yaml")).toMatch(/^config-[0-9a-f]{16}\.json$/);
    expect(configRecordName("/etc/rollbridge/shop.yaml")).not.toBe(configRecordName("/etc/rollbridge/blog.yaml"));
  });
});

describe("ensurePrivateDir", () => {
  it("creates the directory 0700 under a base it also creates", async () => {
    const dir = path.join(await tempDir(), "base", "shop");
    await ensurePrivateDir(dir);
    expect((await fs.stat(dir)).mode & 0o7777).toBe(0o700);
    expect((await fs.stat(path.dirname(dir))).uid).toBe(me);
  });

  it("makes it 0750 and group-owned with control.group", async () => {
    const dir = path.join(await tempDir(), "base", "shop");
    const gid = process.getgid?.() ?? 0;
    await ensurePrivateDir(dir, { gid });
    const stat = await fs.stat(dir);
    expect(stat.mode & 0o7777).toBe(0o750);
    expect(stat.gid).toBe(gid);
  });

  it("refuses a world-writable directory and a symlink in its place", async () => {
    const base = await tempDir();
    const open = path.join(base, "open");
    await fs.mkdir(open);
    await fs.chmod(open, 0o777);
    const error = await ensurePrivateDir(open).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isRollbridgeError(error, "UNSAFE_PATH")).toBe(true);
    expect((error as Error).message).toMatch(/world-writable/);

    const elsewhere = await tempDir();
    const link = path.join(base, "linked");
    await fs.symlink(elsewhere, link);
    const linkError = await ensurePrivateDir(link).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isRollbridgeError(linkError, "UNSAFE_PATH")).toBe(true);
    expect((linkError as Error).message).toMatch(/symbolic link/);
  });

  it.skipIf(!isRoot)("refuses a directory another user owns (needs root to chown)", async () => {
    const dir = path.join(await tempDir(), "shop");
    await fs.mkdir(dir, { mode: 0o700 });
    await fs.chown(dir, 54321, 54321);
    const error = await ensurePrivateDir(dir).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isRollbridgeError(error, "UNSAFE_PATH")).toBe(true);
    expect((error as Error).message).toMatch(/owned by uid 54321/);
  });
});
