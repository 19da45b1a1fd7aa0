// /proc/<pid>/stat (Linux), read and split into its fields, for identity.ts (who a pid is) and
// memory.ts (what a group uses). Field 2, the program name, may hold spaces and parentheses,
// so the fields are counted after the last ')'.
import { readFile } from "node:fs/promises";

/** The text of /proc/<pid>/stat; null when the process is gone or there is no /proc. */
export async function readStatText(pid: number): Promise<string | null> {
  try {
    return await readFile(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
}

/** The fields from field 3 (state) on, so field n of proc(5) is at index n - 3; null without the ')' that ends field 2. */
export function fieldsAfterComm(text: string): string[] | null {
  const close = text.lastIndexOf(")");
  if (close < 0) return null;
  return text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
}
