// checkListener against real sockets: who holds the LISTEN socket of a port, read from /proc.
import { spawn, type ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { checkListener, portHolders } from "../../src/process/listener-owner.js";
import { killQuietly } from "../helpers/process.js";

const children: ChildProcess[] = [];
const servers: net.Server[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.pid !== undefined) killQuietly(-child.pid);
  for (const server of servers.splice(0)) server.close();
});

async function ownGroup(): Promise<number> {
  const stat = await readFile("/proc/self/stat", "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
}

function listenHere(host: string): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, host, () => resolve((server.address() as net.AddressInfo).port));
    servers.push(server);
  });
}

/** A process group of its own whose `command` (run by /bin/sh) listens and prints its port. */
function listenElsewhere(command: string): Promise<{ leader: number; port: number }> {
  const child = spawn("/bin/sh", ["-c", command], { detached: true, stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.stdout!.setEncoding("utf8").once("data", (chunk: string) => resolve({ leader: child.pid!, port: Number(chunk.trim()) }));
    child.once("exit", (code) => reject(new Error(`listener exited with ${code}`)));
  });
}

const LISTEN = `node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => console.log(s.address().port))'`;

describe("checkListener", () => {
  it("finds a listener of the group itself, by address or by name", async () => {
    const port = await listenHere("127.0.0.1");
    const pgid = await ownGroup();
    expect(await checkListener({ host: "127.0.0.1", port, pgid })).toEqual({ state: "owned" });
    expect(await checkListener({ host: "localhost", port, pgid })).toEqual({ state: "owned" });
  });

  it("finds a listener held by a member of the group that is not its leader", async () => {
    // A compound command keeps /bin/sh as the leader; node, its child, holds the socket.
    const { leader, port } = await listenElsewhere(`${LISTEN}; sleep 30`);
    expect(await checkListener({ host: "127.0.0.1", port, pgid: leader })).toEqual({ state: "owned" });
  });

  it("names the pid and uid of a listener outside the group, on the address or a wildcard", async () => {
    const { leader, port } = await listenElsewhere(`exec ${LISTEN}`);
    const result = await checkListener({ host: "127.0.0.1", port, pgid: await ownGroup() });
    expect(result).toEqual({ state: "foreign", holders: [{ endpoint: `127.0.0.1:${port}`, uid: process.getuid!(), pid: leader }] });
    expect(await portHolders("127.0.0.1", port)).toEqual([{ endpoint: `127.0.0.1:${port}`, uid: process.getuid!(), pid: leader }]);

    const wildcard = await listenElsewhere(`exec ${LISTEN.replace('"127.0.0.1"', '"0.0.0.0"')}`);
    expect(await checkListener({ host: "127.0.0.1", port: wildcard.port, pgid: await ownGroup() })).toMatchObject({ state: "foreign", holders: [{ endpoint: `0.0.0.0:${wildcard.port}`, pid: wildcard.leader }] });
  });

  it("reports nothing on a port nobody listens on, and ignores a listener on another loopback address", async () => {
    const port = await listenHere("127.0.0.2");
    expect(await checkListener({ host: "127.0.0.1", port, pgid: await ownGroup() })).toEqual({ state: "none" });
    expect(await portHolders("127.0.0.1", port)).toEqual([]);
  });
});
