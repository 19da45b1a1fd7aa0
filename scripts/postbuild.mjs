// Runs after `tsc -p tsconfig.build.json`: makes the CLI entry executable (it has a shebang,
// so `./dist/cli/main.js` and the installed `rollbridge` bin run directly) and removes source
// maps left by older builds (the package ships dist without src, so maps would point nowhere).
import { promises as fs } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../dist");

await fs.chmod(path.join(dist, "cli/main.js"), 0o755);

for (const entry of await fs.readdir(dist, { recursive: true, withFileTypes: true })) {
  if (entry.isFile() && entry.name.endsWith(".js.map")) await fs.rm(path.join(entry.parentPath, entry.name), { force: true });
}
