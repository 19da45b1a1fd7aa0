// The CLI's check before it connects to a control socket (src/control/socket-trust.ts), on real
// unix sockets, and the /proc/net/unix parsing behind ensure-daemon's pid verification.
import { promises as fs } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { listeningInodes, socketHeldBy, verifyControlSocket } from "../../src/control/socket-trust.js";
import { isRollbridgeError } from "../../src/errors.js";

const isRoot = process.getuid?.() === 0;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function listening(dir: string, name = "control.sock"): Promise<{ socket: string; accepted: () => number }> {
  const socket = path.join(dir, name);
  let accepted = 0;
  const server = net.createServer((c) => {
    accepted += 1;
    c.destroy();
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  cleanups.push(() => new Promise((resolve) => server.close(() => resolve())));
  return { socket, accepted: () => accepted };
}

async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "rb-trust-"));
  cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

async function refusal(promise: Promise<unknown>): Promise<Error> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e as Error,
  );
  expect(isRollbridgeError(error, "UNTRUSTED_SOCKET"), String(error)).toBe(true);
  expect(error!.message).toMatch(/nothing was sent/);
  return error!;
}

describe("verifyControlSocket", () => {
  it("accepts our own socket in our own directory, and says no daemon when nothing is there", async () => {
    const dir = await tempDir();
    const { socket } = await listening(dir);
    await verifyControlSocket(socket);
    const missing = await verifyControlSocket(path.join(dir, "none.sock")).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isRollbridgeError(missing, "DAEMON_NOT_RUNNING")).toBe(true);
  });

  it("refuses a regular file where the socket should be", async () => {
    const file = path.join(await tempDir(), "control.sock");
    await fs.writeFile(file, "");
    const error = await refusal(verifyControlSocket(file));
    expect(error.message).toMatch(/regular file/);
  });

  it("refuses a socket in a directory every user may write, unless the sticky bit protects it", async () => {
    const dir = await tempDir();
    const { socket } = await listening(dir);
    await fs.chmod(dir, 0o777);
    const error = await refusal(verifyControlSocket(socket));
    expect(error.message).toContain(`its directory ${dir} is writable by every user`);
    await fs.chmod(dir, 0o1777);
    await verifyControlSocket(socket);
  });

  it.skipIf(!isRoot)("refuses a socket of another owner unless that owner is control.owner (needs root to chown)", async () => {
    const dir = await tempDir();
    const { socket, accepted } = await listening(dir);
    await fs.chown(socket, 54321, 54321);
    const error = await refusal(verifyControlSocket(socket));
    expect(error.message).toMatch(/owned by uid 54321/);
    expect((error as { fix?: string }).fix).toMatch(/control\.owner/);
    await verifyControlSocket({ path: socket, owner: 54321 });
    expect(accepted()).toBe(0);
  });
});

describe("which process holds a socket", () => {
  it("parses listening sockets out of /proc/net/unix, paths with spaces included", () => {
    const table = [
      "Num       RefCount Protocol Flags    Type St Inode Path",
      "0000000000000000: 00000002 00000000 00010000 0001 01 4242 /run/rollbridge/shop/control.sock",
      "0000000000000000: 00000003 00000000 00000000 0001 03 4243 /run/rollbridge/shop/control.sock",
      "0000000000000000: 00000002 00000000 00010000 0001 01 4244 /srv/my app/control.sock",
      "0000000000000000: 00000002 00000000 00010000 0001 01 4245",
    ].join("\n");
    expect([...listeningInodes(table, "/run/rollbridge/shop/control.sock")]).toEqual([4242]);
    expect([...listeningInodes(table, "/srv/my app/control.sock")]).toEqual([4244]);
    expect([...listeningInodes(table, "/elsewhere.sock")]).toEqual([]);
  });

  it("finds the socket among this process's fds, and not among another process's", async () => {
    const { socket } = await listening(await tempDir());
    expect(await socketHeldBy(socket, process.pid)).toBe(true);
    expect(await socketHeldBy(socket, process.ppid)).toBe(false);
    expect(await socketHeldBy(path.join(os.tmpdir(), "no-such.sock"), process.pid)).toBe(false);
  });
});
