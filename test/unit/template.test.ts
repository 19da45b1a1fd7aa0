import { describe, expect, it } from "vitest";
import { isRollbridgeError, type RollbridgeError } from "../../src/errors.js";
import { renderTemplate, templateNames, type TemplateContext } from "../../src/config/template.js";

const ctx: TemplateContext = {
  vars: { releasePath: "/srv/app/releases/v3", port: 18183, "ports.beacon": 17330, "proxy.host": "127.0.0.1", replicaIndex: 0, revision: undefined },
  env: { HOME: "/home/deploy", EMPTY: "" },
};

function thrown(fn: () => unknown): RollbridgeError {
  try {
    fn();
  } catch (error) {
    if (isRollbridgeError(error)) return error;
    throw error;
  }
  throw new Error("expected a RollbridgeError");
}

describe("renderTemplate", () => {
  it("replaces variables, dotted names and numbers, with or without inner spaces", () => {
    expect(renderTemplate("cd {{releasePath}} && node s.js --port {{ port }} --beacon {{ports.beacon}} --host {{  proxy.host}} -i {{replicaIndex}}", ctx, "cmd")).toBe(
      "cd /srv/app/releases/v3 && node s.js --port 18183 --beacon 17330 --host 127.0.0.1 -i 0",
    );
  });

  it("reads env.X from the daemon's environment, including empty values", () => {
    expect(renderTemplate("{{env.HOME}}/x{{env.EMPTY}}", ctx, "cwd")).toBe("/home/deploy/x");
  });

  it("leaves text without placeholders and shell braces that are not variable names alone", () => {
    expect(renderTemplate("plain text", ctx, "cmd")).toBe("plain text");
    expect(renderTemplate("docker ps --format '{{.Names}}' {{ json . }} {{}}", ctx, "cmd")).toBe("docker ps --format '{{.Names}}' {{ json . }} {{}}");
  });

  it("fails on an unset env variable and says to export it", () => {
    const error = thrown(() => renderTemplate("{{env.FOO}}", ctx, "processes[web].env.FOO"));
    expect(error.code).toBe("TEMPLATE_UNRESOLVED");
    expect(error.message).toBe("unresolved template variable {{env.FOO}} in processes[web].env.FOO");
    expect(error.fix).toContain("Export FOO");
  });

  it("fails on a known variable without a value", () => {
    const error = thrown(() => renderTemplate("--rev {{revision}}", ctx, "processes[web].command"));
    expect(error.code).toBe("TEMPLATE_UNRESOLVED");
    expect(error.message).toBe("unresolved template variable {{revision}} in processes[web].command");
  });

  it("explains a missing port", () => {
    const error = thrown(() => renderTemplate("{{port}}", { vars: { port: undefined }, env: {} }, "processes[worker].command"));
    expect(error.fix).toContain("port");
  });

  it("fails on an unknown name and lists the known ones", () => {
    const error = thrown(() => renderTemplate("{{prot}}", ctx, "processes[web].command"));
    expect(error.code).toBe("TEMPLATE_UNRESOLVED");
    expect(error.message).toBe("unknown template variable {{prot}} in processes[web].command");
    expect(error.fix).toContain("{{port}}");
    expect(error.fix).toContain("{{ports.beacon}}");
    expect(error.fix).toContain("{{env.<NAME>}}");
  });
});

describe("templateNames", () => {
  it("lists distinct names in order of appearance", () => {
    expect(templateNames("{{ port }} {{releasePath}} {{port}} {{env.HOME}} {{.Names}}")).toEqual(["port", "releasePath", "env.HOME"]);
    expect(templateNames("none")).toEqual([]);
  });
});
