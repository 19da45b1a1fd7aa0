import { describe, expect, it } from "vitest";
import { isRollbridgeError, type RollbridgeError } from "../../src/errors.js";
import { desiredSchema, parseDesiredText, serializeDesired, type DesiredDocument } from "../../src/config/desired-schema.js";

function rejects(text: string): RollbridgeError {
  try {
    parseDesiredText(text, "/srv/app/desired.yaml");
  } catch (error) {
    if (isRollbridgeError(error, "DESIRED_INVALID")) return error;
    throw error;
  }
  throw new Error("expected DESIRED_INVALID");
}

describe("parseDesiredText", () => {
  it("refuses control characters in release ids and revisions, and NUL in env values", () => {
    expect(rejects('release: {path: /r, revision: "abc\\e[31m"}\n').message).toContain("revisions must not contain control characters");
    expect(rejects('release: {path: /r, revision: "abc\\ndef"}\n').message).toContain("release.revision");
    expect(rejects('release: {path: /r, id: "v1\\u009b2J"}\n').message).toContain("release ids must not contain control characters");
    expect(rejects('release: {path: /r, id: "v1\\0"}\n').message).toContain("release.id");
    expect(rejects('release: {path: /r}\nenv: {A: "x\\0y"}\n').message).toContain("NUL");
    // Printable text of any script is fine.
    expect(parseDesiredText('release: {path: /r, revision: "$(touch x) \'\\"` ünï"}\n', "d.yaml").release?.revision).toBe(`$(touch x) '"\` ünï`);
  });

  it("bounds replica counts", () => {
    expect(parseDesiredText("release: {path: /r}\nreplicas: {worker: 1024}\n", "d.yaml").replicas).toEqual({ worker: 1024 });
    expect(rejects("release: {path: /r}\nreplicas: {worker: 1025}\n").message).toContain("replicas.worker");
  });

  it("refuses a file over 1 MiB, naming its size and the cap", () => {
    const text = `release: {path: /r}\n# ${"x".repeat(1024 * 1024)}\n`;
    const error = rejects(text);
    expect(error.message).toBe(`desired file /srv/app/desired.yaml is ${Buffer.byteLength(text)} bytes; the cap is 1048576 bytes (1 MiB)`);
    expect(error.fix).toContain("release directory");
  });

  it("reads the whole documented file", () => {
    const doc = parseDesiredText(
      `release:
  path: /srv/app/releases/20261123120000   # may be a symlink
  revision: abc123
  id: 20261123120000
replicas:
  worker: 4
env:
  FEATURE_X: "1"
stopped: false
`,
      "desired.yaml",
    );
    expect(doc).toEqual({
      release: { path: "/srv/app/releases/20261123120000", revision: "abc123", id: "20261123120000" },
      replicas: { worker: 4 },
      env: { FEATURE_X: "1" },
      stopped: false,
    });
  });

  it("keeps unquoted numbers and booleans as written for ids, revisions and env", () => {
    const doc = parseDesiredText("release: {path: /r, id: 0042, revision: 1.10}\nenv: {A: 007, B: true, C: 1e3}\n", "d.yaml");
    expect(doc.release).toEqual({ path: "/r", id: "0042", revision: "1.10" });
    expect(doc.env).toEqual({ A: "007", B: "true", C: "1e3" });
  });

  it("reads JSON too", () => {
    const doc = parseDesiredText('{\n\t"release": {"path": "/srv/r1", "revision": 7},\n\t"replicas": {"worker": 0}\n}\n', "desired.json");
    expect(doc).toEqual({ release: { path: "/srv/r1", revision: "7" }, replicas: { worker: 0 } });
  });

  it("needs no release when stopped", () => {
    expect(parseDesiredText("stopped: true\n", "d.yaml")).toEqual({ stopped: true });
  });

  it("rejects an empty file", () => {
    expect(rejects("").message).toContain("desired file is empty");
    expect(rejects("# only a comment\n").message).toContain("/srv/app/desired.yaml");
  });

  it("rejects syntax errors with line and column", () => {
    const error = rejects("release:\n  path: /a\n  revision: [abc\n");
    expect(error.message).toMatch(/\/srv\/app\/desired\.yaml at line \d+, column \d+/);
  });

  it("requires release unless stopped", () => {
    const error = rejects("replicas: {worker: 2}\n");
    expect(error.message).toContain("/srv/app/desired.yaml");
    expect(error.message).toContain("release is required unless stopped is true");
    expect(rejects("stopped: false\n").message).toContain("release");
  });

  it("names the field path of a bad value", () => {
    expect(rejects("release: {path: /a}\nreplicas: {worker: -1}\n").message).toContain("replicas.worker");
    expect(rejects("release: {path: /a}\nreplicas: {worker: 1.5}\n").message).toContain("replicas.worker must be a whole number");
    expect(rejects("release: {path: ''}\n").message).toContain("release.path must not be empty");
    expect(rejects("release: {path: /a}\nenv: {A: [1]}\n").message).toContain("env.A");
    expect(rejects("release: {path: /a}\nstopped: yes\n").message).toContain("stopped must be true or false");
  });

  it("rejects unknown keys with a did-you-mean hint", () => {
    const error = rejects("releas: {path: /a}\n");
    expect(error.message).toBe('invalid desired file /srv/app/desired.yaml: releas is not a known setting (Did you mean "release"?)');
    expect(error.fix).toContain('Did you mean "release"?');
    expect(rejects("release: {path: /a, revison: x}\n").fix).toContain('"revision"');
  });

  it("reports every problem at once", () => {
    const error = rejects("replicas: {worker: -1}\nstoped: true\n");
    expect(error.message).toContain("replicas.worker");
    expect(error.message).toContain("stoped");
    expect(error.message).toContain("release is required");
    expect(Array.isArray(error.details)).toBe(true);
  });

  it("rejects a document that is not a mapping", () => {
    expect(rejects("- a\n- b\n").message).toContain("must be a mapping");
  });
});

describe("serializeDesired", () => {
  it("writes a stable key order that parses back to the same document", () => {
    const doc: DesiredDocument = { stopped: false, env: { Z: "1", A: "two" }, replicas: { worker: 2, api: 1 }, release: { id: "v3", revision: "007", path: "/srv/v3" } };
    const text = serializeDesired(doc);
    expect(text).toBe('release:\n  path: /srv/v3\n  revision: "007"\n  id: v3\nreplicas:\n  api: 1\n  worker: 2\nenv:\n  A: two\n  Z: "1"\nstopped: false\n');
    expect(parseDesiredText(text, "d.yaml")).toEqual(doc);
  });

  it("writes a stopped document", () => {
    expect(serializeDesired({ stopped: true })).toBe("stopped: true\n");
  });
});

describe("desiredSchema", () => {
  it("validates parsed data directly", () => {
    expect(desiredSchema.safeParse({ release: { path: "/a" } }).success).toBe(true);
    expect(desiredSchema.safeParse({}).success).toBe(false);
  });
});
