// Lint (npm run lint): type-aware checks that catch what the compiler does not — a switch
// that misses a case of a union, a promise nobody awaits or marks `void`, a promise passed
// where a plain callback is expected — plus ESLint's and typescript-eslint's recommended
// correctness rules. Formatting is Prettier's job (npm run format / format:check), not ESLint's.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "test-results/**", "schemas/**", "bench/results/**"] },
  {
    files: ["**/*.ts"],
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
    languageOptions: { parserOptions: { projectService: { allowDefaultProject: ["*.ts"] }, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // Every case of a string-literal union is handled (a `default` that assigns to `never` counts).
      "@typescript-eslint/switch-exhaustiveness-check": ["error", { considerDefaultExhaustiveForUnions: true, requireDefaultForNonUnion: false }],
      // A promise is awaited, returned, or explicitly dropped with `void` (fire-and-forget on purpose).
      "@typescript-eslint/no-floating-promises": ["error", { ignoreVoid: true }],
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: false }],
      "@typescript-eslint/await-thenable": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrorsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_", ignoreRestSiblings: true }],
      // Terminal escaping and the control-character checks of ids match control characters on purpose.
      "no-control-regex": "off",
    },
  },
  {
    // Tests read JSON documents and child-process results loosely, and spell out exact runs of spaces.
    files: ["test/**/*.ts"],
    rules: { "@typescript-eslint/no-explicit-any": "off", "no-regex-spaces": "off" },
  },
  {
    files: ["**/*.js", "**/*.mjs"],
    extends: [js.configs.recommended],
    languageOptions: {
      sourceType: "module",
      globals: {
        process: "readonly",
        console: "readonly",
        Buffer: "readonly",
        setTimeout: "readonly",
        clearTimeout: "readonly",
        setInterval: "readonly",
        clearInterval: "readonly",
        setImmediate: "readonly",
        URL: "readonly",
        performance: "readonly",
        fetch: "readonly",
      },
    },
    rules: { "no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrorsIgnorePattern: "^_", ignoreRestSiblings: true }], "no-control-regex": "off" },
  },
);
