// sd_listen_fds semantics for the daemon's listeners: which passed descriptor serves what, what
// is refused with a message, and that the variables never stay in the environment.
import { describe, expect, it } from "vitest";
import { takeInheritedListeners } from "../../src/daemon-lifecycle/inherited-listeners.js";
import { isRollbridgeError } from "../../src/errors.js";

const PID = 4242;
const sockets = () => true;

describe("takeInheritedListeners", () => {
  it.each([
    ["one unnamed socket is the proxy", { LISTEN_FDS: "1", LISTEN_PID: "4242" }, { proxy: 3, proxySocket: null, metrics: null }],
    ["a socket named after its unit is the proxy when it is the only one", { LISTEN_FDS: "1", LISTEN_PID: "4242", LISTEN_FDNAMES: "rollbridge-shop.socket" }, { proxy: 3, proxySocket: null, metrics: null }],
    ["named sockets in any order", { LISTEN_FDS: "3", LISTEN_PID: "4242", LISTEN_FDNAMES: "metrics:proxy:proxy-socket" }, { proxy: 4, proxySocket: 5, metrics: 3 }],
    ["zero sockets is none", { LISTEN_FDS: "0", LISTEN_PID: "4242" }, { proxy: null, proxySocket: null, metrics: null }],
    ["no variables is none", {}, { proxy: null, proxySocket: null, metrics: null, ignored: null }],
  ])("%s", (_name, env, expected) => {
    const copy: NodeJS.ProcessEnv = { ...env, OTHER: "kept" };
    expect(takeInheritedListeners(copy, PID, sockets)).toMatchObject(expected);
    expect(copy).toEqual({ OTHER: "kept" });
  });

  it.each([
    ["another pid", "1"],
    ["no pid", undefined],
    ["a pid that is not a number", "42x"],
  ])("ignores sockets meant for %s, and still removes the variables", (_name, listenPid) => {
    const env: NodeJS.ProcessEnv = { LISTEN_FDS: "1", LISTEN_FDNAMES: "proxy" };
    if (listenPid !== undefined) env.LISTEN_PID = listenPid;
    const found = takeInheritedListeners(env, PID, sockets);
    expect(found).toMatchObject({ proxy: null, proxySocket: null, metrics: null });
    expect(found.ignored).toMatch(/LISTEN_PID .* is not this daemon's pid 4242/);
    expect(env).toEqual({});
  });

  it.each([
    ["a count that is not a number", { LISTEN_FDS: "two", LISTEN_PID: "4242" }, /LISTEN_FDS must be/],
    ["several sockets without known names", { LISTEN_FDS: "2", LISTEN_PID: "4242", LISTEN_FDNAMES: "proxy:other" }, /named "other"/],
    ["two sockets with one name", { LISTEN_FDS: "2", LISTEN_PID: "4242", LISTEN_FDNAMES: "proxy:proxy" }, /two sockets are named proxy/],
  ])("refuses %s with CONFIG_INVALID", (_name, env, message) => {
    const copy: NodeJS.ProcessEnv = { ...env };
    let caught: unknown;
    try {
      takeInheritedListeners(copy, PID, sockets);
    } catch (error) {
      caught = error;
    }
    expect(isRollbridgeError(caught, "CONFIG_INVALID")).toBe(true);
    expect((caught as Error).message).toMatch(message);
    expect(copy).toEqual({});
  });

  it("refuses a descriptor that is not a socket", () => {
    expect(() => takeInheritedListeners({ LISTEN_FDS: "1", LISTEN_PID: "4242" }, PID, () => false)).toThrow(/fd 3 \(proxy\) is not a socket/);
  });
});
