// The environment ensure-daemon gives the daemon (src/cli/daemon-env.ts): the minimal one by
// default, everything with --inherit-env.
import { describe, expect, it } from "vitest";
import { daemonEnvironment, referencedEnv } from "../../src/cli/daemon-env.js";
import type { Config } from "../../src/config/resolved-config.js";

const config = {
  processes: [
    { id: "web", command: "node server.js --db {{env.DATABASE_URL}}", cwd: "{{releasePath}}", env: { KEY: "{{ env.API_KEY }}" }, logFile: { path: "/var/log/{{env.LOG_DIR}}/web.log" } },
    { id: "jobs", command: "run --dir '{{.Names}}'", lifecycle: { stopCommand: "stop {{env.STOP_TOKEN}}" } },
  ],
} as unknown as Config;

const shell = {
  PATH: "/usr/bin:/bin",
  HOME: "/home/deploy",
  LANG: "C.UTF-8",
  LC_ALL: "C.UTF-8",
  TZ: "UTC",
  XDG_RUNTIME_DIR: "/run/user/1000",
  DATABASE_URL: "postgres://db",
  API_KEY: "k",
  LOG_DIR: "app",
  STOP_TOKEN: "t",
  AWS_SECRET_ACCESS_KEY: "do-not-pass",
  GITHUB_TOKEN: "do-not-pass",
  SSH_AUTH_SOCK: "/tmp/ssh-agent",
};

describe("the daemon's environment", () => {
  it("finds every {{env.NAME}} the config refers to, in any field", () => {
    expect(referencedEnv(config)).toEqual(["API_KEY", "DATABASE_URL", "LOG_DIR", "STOP_TOKEN"]);
  });

  it("keeps PATH, HOME, LANG/LC_*, TZ, the XDG directories and what the config refers to; nothing else", () => {
    expect(daemonEnvironment(shell, config, false)).toEqual({
      PATH: "/usr/bin:/bin",
      HOME: "/home/deploy",
      LANG: "C.UTF-8",
      LC_ALL: "C.UTF-8",
      TZ: "UTC",
      XDG_RUNTIME_DIR: "/run/user/1000",
      DATABASE_URL: "postgres://db",
      API_KEY: "k",
      LOG_DIR: "app",
      STOP_TOKEN: "t",
    });
  });

  it("passes everything with --inherit-env", () => {
    expect(daemonEnvironment(shell, config, true)).toEqual(shell);
  });
});
