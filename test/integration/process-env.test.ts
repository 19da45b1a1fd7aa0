// PORT (issue 13.8): a process with a port gets PORT as well as ROLLBRIDGE_PORT (the Heroku and
// Express convention), its own env may set PORT, and a PORT the daemon inherited never reaches
// a process without a port.
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { get } from "../helpers/load.js";
import { startDaemon, until, type TestDaemon } from "../helpers/daemon.js";

// Writes the port variables it was given to $OUT, then stays up.
const DUMP_ENV = `import { writeFileSync } from "node:fs";
writeFileSync(process.env.OUT, JSON.stringify({ PORT: process.env.PORT ?? null, ROLLBRIDGE_PORT: process.env.ROLLBRIDGE_PORT ?? null }));
setInterval(() => {}, 1000);
`;

let daemon: TestDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

describe("the PORT variable", () => {
  it("gives a process with a port PORT = its port, keeps a PORT its env sets, and keeps the daemon's PORT from port-less processes", async () => {
    daemon = await startDaemon({
      // The daemon itself runs with a PORT, as it would from a shell or a unit file that sets one.
      daemonEnv: { PORT: "1" },
      processes: `  - id: plain
    policy: companion
    command: node dump-env.mjs
    env: {OUT: '{{releasePath}}/plain.json'}
  - id: own
    policy: companion
    command: node dump-env.mjs
    env: {OUT: '{{releasePath}}/own.json', PORT: "7777"}
  - id: web
    policy: proxied
    command: node {{APP}}
    port: {from: {{RANGE_FROM}}, to: {{RANGE_TO}}}
    health: {path: /ping, intervalMs: 50}`,
    });
    const d = daemon;
    const release = await d.release("v1");
    await fs.writeFile(path.join(release, "dump-env.mjs"), DUMP_ENV);
    const result = await d.cli(["apply", "--release-path", release, "--wait"], { timeoutMs: 60_000 });
    expect(result.code, result.stdout + result.stderr).toBe(0);

    // The fixture app listens on $PORT when it is set: it serves, so PORT was its own port, not the daemon's 1.
    const web = (await d.status()).processes.find((p: { id: string }) => p.id === "web") as { port: number };
    expect(JSON.parse((await get(d.proxyPort, "/")).body)).toMatchObject({ release: "v1", port: web.port });

    const read = async (name: string) => JSON.parse(await until(() => fs.readFile(path.join(release, name), "utf8").catch(() => ""), 10_000, name)) as Record<string, string | null>;
    expect(await read("plain.json")).toEqual({ PORT: null, ROLLBRIDGE_PORT: null });
    expect(await read("own.json")).toEqual({ PORT: "7777", ROLLBRIDGE_PORT: null });
  }, 60_000);
});
