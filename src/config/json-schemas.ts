// JSON Schemas for editors, generated from the zod schemas so validation and completion never drift.
import { z } from "zod";
import { desiredSchema } from "./desired-schema.js";
import { configSchema } from "./schema.js";

// Both schemas describe the files as written (input side: shorthands allowed, defaults shown).
export function buildJsonSchemas(): { config: object; desired: object } {
  return {
    config: z.toJSONSchema(configSchema, { io: "input", target: "draft-2020-12", unrepresentable: "any" }),
    desired: z.toJSONSchema(desiredSchema, { io: "input", target: "draft-2020-12", unrepresentable: "any" }),
  };
}
