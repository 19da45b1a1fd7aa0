// Writes schemas/*.schema.json from the built zod schemas. Run through `npm run schemas` (builds first).
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildJsonSchemas } from "../dist/config/json-schemas.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const schemas = buildJsonSchemas();
await mkdir(join(root, "schemas"), { recursive: true });
for (const [name, schema] of [
  ["config", schemas.config],
  ["desired", schemas.desired],
]) {
  const file = join(root, "schemas", `${name}.schema.json`);
  await writeFile(file, `${JSON.stringify(schema, null, 2)}\n`);
  console.log(`wrote ${file}`);
}
