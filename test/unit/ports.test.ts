import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { isRollbridgeError } from "../../src/errors.js";
import { allocatePort, ephemeralOverlap, isPortFree } from "../../src/process/ports.js";

const HOST = "127.0.0.1";
const held: net.Server[] = [];

afterEach(async () => {
  await Promise.all(held.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

function hold(port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(port, HOST, () => {
      held.push(server);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

/** A held port P whose neighbours P+1..P+extra are free right now (ephemeral ports are picked by the OS). */
async function heldPortWithFreeNeighbours(extra: number): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const port = await hold();
    const neighbours = await Promise.all(Array.from({ length: extra }, (_, i) => isPortFree(HOST, port + 1 + i)));
    if (port + extra <= 65535 && neighbours.every(Boolean)) return port;
  }
  throw new Error("could not find a run of free ports");
}

describe("isPortFree", () => {
  it("is false for a port a server holds and true once it is released", async () => {
    const port = await hold();
    expect(await isPortFree(HOST, port)).toBe(false);
    await new Promise((resolve) => held.pop()!.close(resolve));
    expect(await isPortFree(HOST, port)).toBe(true);
  });
});

describe("allocatePort", () => {
  it("skips a port held by another server", async () => {
    const taken = await heldPortWithFreeNeighbours(1);
    expect(await allocatePort(HOST, { from: taken, to: taken + 1 }, new Set())).toBe(taken + 1);
  });

  it("skips excluded ports even when they are free", async () => {
    const base = await heldPortWithFreeNeighbours(2);
    const port = await allocatePort(HOST, { from: base, to: base + 2 }, new Set([base + 1]));
    expect(port).toBe(base + 2);
  });

  it("rotates through the range so back-to-back allocations get different ports", async () => {
    const base = (await heldPortWithFreeNeighbours(3)) + 1;
    const range = { from: base, to: base + 2 };
    const first = await allocatePort(HOST, range, new Set());
    const second = await allocatePort(HOST, range, new Set());
    const third = await allocatePort(HOST, range, new Set());
    expect(new Set([first, second, third]).size).toBe(3);
    // Wraps around to the oldest port once every port has been handed out.
    expect(await allocatePort(HOST, range, new Set())).toBe(first);
  });

  it("hands out distinct ports to concurrent allocations", async () => {
    const base = (await heldPortWithFreeNeighbours(2)) + 1;
    const range = { from: base, to: base + 1 };
    const ports = await Promise.all([allocatePort(HOST, range, new Set()), allocatePort(HOST, range, new Set())]);
    expect(new Set(ports).size).toBe(2);
  });

  it("throws PORT_RANGE_EXHAUSTED with a fix when every port is taken", async () => {
    const first = await heldPortWithFreeNeighbours(1);
    await hold(first + 1);
    const error = await allocatePort(HOST, { from: first, to: first + 1 }, new Set()).catch((e: unknown) => e);
    expect(isRollbridgeError(error, "PORT_RANGE_EXHAUSTED")).toBe(true);
    expect((error as Error).message).toBe(`no free port in ${first}-${first + 1} on ${HOST}`);
    expect((error as { fix?: string }).fix).toContain("ss -ltnp");
  });

  it("throws PORT_RANGE_EXHAUSTED when the only free ports are excluded", async () => {
    const port = await heldPortWithFreeNeighbours(1);
    const error = await allocatePort(HOST, { from: port + 1, to: port + 1 }, new Set([port + 1])).catch((e: unknown) => e);
    expect(isRollbridgeError(error, "PORT_RANGE_EXHAUSTED")).toBe(true);
  });
});

describe("ephemeralOverlap", () => {
  const files =
    (range: string, reserved = "") =>
    (file: string) => {
      if (file.endsWith("ip_local_port_range")) return `${range}\n`;
      if (file.endsWith("ip_local_reserved_ports")) return `${reserved}\n`;
      throw new Error(`unexpected ${file}`);
    };
  it.each([
    { what: "a range below the ephemeral one", range: { from: 18000, to: 18099 }, read: files("32768\t60999"), expected: null },
    { what: "a range inside it", range: { from: 40000, to: 40019 }, read: files("32768\t60999"), expected: { ephemeral: { from: 32768, to: 60999 }, exposed: 20, first: 40000, last: 40019, reserved: "" } },
    { what: "a range across its start", range: { from: 32760, to: 32779 }, read: files("32768\t60999"), expected: { ephemeral: { from: 32768, to: 60999 }, exposed: 12, first: 32768, last: 32779, reserved: "" } },
    { what: "a range inside it but reserved", range: { from: 40000, to: 40019 }, read: files("32768\t60999", "8080,40000-40019"), expected: null },
    {
      what: "a range partly reserved",
      range: { from: 40000, to: 40019 },
      read: files("32768\t60999", "40000-40009,40019"),
      expected: { ephemeral: { from: 32768, to: 60999 }, exposed: 9, first: 40010, last: 40018, reserved: "40000-40009,40019" },
    },
    { what: "a moved ephemeral range", range: { from: 40000, to: 40019 }, read: files("50000 65000"), expected: null },
    {
      what: "no /proc/sys (not Linux)",
      range: { from: 40000, to: 40019 },
      read: () => {
        throw new Error("ENOENT");
      },
      expected: null,
    },
  ])("$what", ({ range, read, expected }) => {
    expect(ephemeralOverlap(range, read)).toEqual(expected);
  });
});
