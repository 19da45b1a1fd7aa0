// Node's on-disk compile cache for the CLI's (and the daemon's) modules, on Node 22.1 and later
// (module.enableCompileCache; Node 20 has none and nothing happens). It lives in this user's
// private cache directory (docs/cli.md#start-up): `$XDG_CACHE_HOME/rollbridge` (default
// `~/.cache/rollbridge`), `/var/cache/rollbridge` as root — never a shared temporary
// directory, where another user could plant cache entries for our code, and apart from the
// state directories, whose names are the applications'. The directory is created 0700 and used only when it is a directory of ours
// that nobody else may write (not a symlink); otherwise the CLI simply runs without the cache.
// NODE_COMPILE_CACHE and NODE_DISABLE_COMPILE_CACHE keep their meaning: Node's own.
import { lstatSync, mkdirSync } from "node:fs";
import module from "node:module";
import os from "node:os";
import path from "node:path";

type EnableCompileCache = (dir: string) => { status: number; message?: string; directory?: string };

/** The cache directory for this user (see the header). */
export function compileCacheDir(uid: number, env: Record<string, string | undefined>, home: string): string {
  if (uid === 0) return "/var/cache/rollbridge";
  const cache = env["XDG_CACHE_HOME"];
  return path.join(cache && path.isAbsolute(cache) ? cache : path.join(home, ".cache"), "rollbridge");
}

/**
 * Turns the compile cache on (see the header); returns the directory used, or null when it
 * is not (an older Node, disabled, or a directory that is not safely ours). Never throws.
 */
export function enableCompileCache(env: Record<string, string | undefined> = process.env, dir?: string): string | null {
  const enable = (module as { enableCompileCache?: EnableCompileCache }).enableCompileCache;
  if (typeof enable !== "function" || env.NODE_DISABLE_COMPILE_CACHE || env.NODE_COMPILE_CACHE) return null;
  try {
    const uid = process.geteuid?.() ?? 0;
    dir ??= compileCacheDir(uid, env, os.homedir());
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const stat = lstatSync(dir);
    if (!stat.isDirectory() || stat.uid !== uid || (stat.mode & 0o077) !== 0) return null;
    const result = enable.call(module, dir);
    return result.directory ?? null;
  } catch {
    return null;
  }
}
