// The desired store against real files: what it adopts, when, and what it reports. The clock
// is the only fake: the real one plus an offset that `later` moves on and every change to the
// files resets, so a change always happens "now" and then ages by `later` (file ctimes are real).
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DesiredStore, type DesiredSnapshot } from "../../src/observe/desired-store.js";

let dir: string;
let offset = 0;
const later = (ms: number) => (offset += ms);
const stores: DesiredStore[] = [];

beforeEach(async () => {
  dir = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), "rb-store-")));
  offset = 0;
  for (const name of ["v1", "v2", "v20", "20261123"]) await fs.mkdir(path.join(dir, "releases", name), { recursive: true });
});

afterEach(async () => {
  for (const s of stores.splice(0)) s.close();
  await fs.rm(dir, { recursive: true, force: true });
});

function store(options: ConstructorParameters<typeof DesiredStore>[1] = {}): DesiredStore {
  const s = new DesiredStore(path.join(dir, "desired.yaml"), { now: () => Date.now() + offset, ...options });
  stores.push(s);
  return s;
}

const file = () => path.join(dir, "desired.yaml");
const rel = (name: string) => path.join(dir, "releases", name);
/** Changes the files "now" (see the header). */
async function change<T>(fn: () => Promise<T>): Promise<T> {
  offset = 0;
  return fn();
}
const write = (text: string) => change(() => fs.writeFile(file(), text));

/** A store that has adopted `release: {path: <release>}`, written long ago. */
async function adopted(release: string, options: ConstructorParameters<typeof DesiredStore>[1] = {}): Promise<DesiredStore> {
  await write(`release:\n  path: ${release}\n`);
  const s = store(options);
  later(1000);
  const snap = await s.refresh();
  expect(snap.target?.release?.path).toBe(await fs.realpath(release));
  return s;
}

describe("DesiredStore: settling", () => {
  it("adopts a file whose inputs last changed longer ago than the settle window at once", async () => {
    await write(`release:\n  path: ${rel("v1")}\n`);
    const s = store();
    later(1000);
    const snap = await s.refresh();
    expect(snap.changed).toBe(true);
    expect(snap.target?.release?.id).toBe("v1");
    expect(snap.pending).toBeNull();
  });

  it("holds a fresh write until it has been unchanged for the settle window, then wakes the loop and adopts it", async () => {
    let woken = 0;
    const s = store({ settleMs: 150, onWake: () => woken++, now: Date.now });
    await write(`release:\n  path: ${rel("v1")}\n`);
    const first = await s.refresh();
    expect(first.target).toBeNull();
    expect(first.pending).toMatchObject({ kind: "change", summary: "release v1" });
    await until(() => woken > 0, 2000);
    const second = await s.refresh();
    expect(second.target?.release?.id).toBe("v1");
    expect(second.changed).toBe(true);
    expect(second.pending).toBeNull();
  });

  it("never adopts the valid prefix of a file written in two chunks 150 ms apart", async () => {
    const s = await adopted(rel("v1"));
    const seen: (string | undefined)[] = [];
    const look = async () => seen.push((await s.refresh()).target?.release?.id);
    // Chunk one is a complete, valid document naming releases/v2 ...
    await write(`release:\n  path: ${rel("v2")}`);
    await look();
    later(150);
    await look();
    // ... chunk two turns it into releases/v20.
    await change(() => fs.appendFile(file(), "0\n"));
    await look();
    later(200);
    await look();
    later(200);
    await look();
    expect(seen).toEqual(["v1", "v1", "v1", "v1", "v20"]);
  });

  it("adopts only the last of a burst of writes", async () => {
    const s = await adopted(rel("v1"));
    const ids = new Set<string | undefined>();
    for (const name of ["v2", "20261123", "v20"]) {
      await write(`release:\n  path: ${rel(name)}\n`);
      ids.add((await s.refresh()).target?.release?.id);
      later(50);
    }
    later(400);
    ids.add((await s.refresh()).target?.release?.id);
    expect([...ids]).toEqual(["v1", "v20"]);
  });

  it("drops a pending change that is reverted before it settles", async () => {
    const s = await adopted(rel("v1"));
    await write(`release:\n  path: ${rel("v2")}\n`);
    expect((await s.refresh()).pending?.kind).toBe("change");
    await write(`release:\n  path: ${rel("v1")}\n`);
    const snap = await s.refresh();
    expect(snap.pending).toBeNull();
    expect(snap.changed).toBe(false);
    expect(snap.target?.release?.id).toBe("v1");
  });

  it("adopts its own atomic write at once", async () => {
    const s = await adopted(rel("v1"));
    await change(() => s.write({ release: { path: rel("v2"), revision: "r2" } }));
    const snap = await s.refresh();
    expect(snap.target?.release).toMatchObject({ id: "v2", revision: "r2" });
    expect(snap.changed).toBe(true);
  });
});

describe("DesiredStore: symlinks and REVISION", () => {
  it("resolves a current symlink: the id is the resolved basename and both paths are kept", async () => {
    await fs.symlink(path.join("releases", "20261123"), path.join(dir, "current"));
    const s = await adopted(path.join(dir, "current"));
    const release = s.current().target?.release;
    expect(release).toMatchObject({ id: "20261123", path: rel("20261123"), requestedPath: path.join(dir, "current") });
  });

  it("keeps the last good state through the gap of an ln -sfn flip and adopts the new target once it settles", async () => {
    const link = path.join(dir, "current");
    await fs.symlink(rel("v1"), link);
    const s = await adopted(link);
    await change(() => fs.unlink(link)); // ln -sfn: unlink, then symlink
    const gap = await s.refresh();
    expect(gap.error).toBeNull();
    expect(gap.pending?.kind).toBe("problem");
    expect(gap.target?.release?.id).toBe("v1");
    await change(() => fs.symlink(rel("v2"), link));
    const flipped = await s.refresh();
    expect(flipped.target?.release?.id).toBe("v1");
    expect(flipped.pending).toMatchObject({ kind: "change", summary: "release v2" });
    later(400);
    const settled = await s.refresh();
    expect(settled.error).toBeNull();
    expect(settled.target?.release).toMatchObject({ id: "v2", path: rel("v2"), requestedPath: link });
  });

  it("rolls back by resolved path: flipping back gives the first generation again", async () => {
    const link = path.join(dir, "current");
    await fs.symlink(rel("v1"), link);
    const s = await adopted(link);
    const first = s.current().target?.release?.generation;
    await change(async () => fs.rename(await tmpLink(rel("v2")), link));
    later(400);
    expect((await s.refresh()).target?.release?.id).toBe("v2");
    await change(async () => fs.rename(await tmpLink(rel("v1")), link));
    later(400);
    expect((await s.refresh()).target?.release?.generation).toBe(first);
  });

  it("takes the revision from REVISION unless the desired state names one; a new REVISION is a new generation", async () => {
    await fs.writeFile(path.join(rel("v1"), "REVISION"), "abc123\n");
    const s = await adopted(rel("v1"));
    const first = s.current().target?.release;
    expect(first?.revision).toBe("abc123");
    await change(() => fs.writeFile(path.join(rel("v1"), "REVISION"), "def456\n"));
    later(400);
    const next = (await s.refresh()).target?.release;
    expect(next?.revision).toBe("def456");
    expect(next?.generation).not.toBe(first?.generation);
    await write(`release:\n  path: ${rel("v1")}\n  revision: pinned\n`);
    later(400);
    expect((await s.refresh()).target?.release?.revision).toBe("pinned");
  });

  it("asks the watcher to follow the file and the release symlink", async () => {
    const link = path.join(dir, "current");
    await fs.symlink(rel("v1"), link);
    const calls: string[][] = [];
    await adopted(link, { onWatchPaths: (files) => calls.push(files) });
    expect(calls.at(-1)).toEqual([file(), link].sort());
  });
});

describe("DesiredStore: problems", () => {
  async function brokenBy(s: DesiredStore, breakIt: () => Promise<void>): Promise<DesiredSnapshot> {
    const before = s.current().error;
    await change(breakIt);
    const early = await s.refresh();
    expect(early.error).toEqual(before);
    expect(early.pending?.kind).toBe("problem");
    later(400);
    const late = await s.refresh();
    expect(late.changed).toBe(true);
    expect(late.target?.release?.id).toBe("v1");
    return late;
  }

  it("reports unparsable YAML with its line once it persists, keeps the target, and recovers when fixed", async () => {
    const s = await adopted(rel("v1"));
    const snap = await brokenBy(s, () => write(`release:\n  path: [unclosed\n`));
    expect(snap.error?.code).toBe("DESIRED_INVALID");
    expect(snap.error?.message).toMatch(/line \d+, column \d+/);
    await write(`release:\n  path: ${rel("v2")}\n`);
    later(400);
    const fixed = await s.refresh();
    expect(fixed.error).toBeNull();
    expect(fixed.target?.release?.id).toBe("v2");
  });

  it("reports a schema violation, a missing release path and a deleted file", async () => {
    const s = await adopted(rel("v1"));
    expect((await brokenBy(s, () => write(`release:\n  path: ${rel("v1")}\nreplica: {web: 2}\n`))).error?.message).toMatch(/replica/);
    expect((await brokenBy(s, () => write(`release:\n  path: ${rel("nope")}\n`))).error?.message).toMatch(/does not exist/);
    const gone = await brokenBy(s, () => fs.unlink(file()));
    expect(gone.target?.release?.id).toBe("v1");
    expect(gone.error).toMatchObject({ code: "DESIRED_NOT_FOUND" });
    expect(gone.error?.message).toMatch(/missing/);
  });

  it("reports nothing for a file that was never there", async () => {
    const s = store();
    later(1000);
    const snap = await s.refresh();
    expect(snap).toMatchObject({ target: null, error: null, pending: null, changed: false });
  });

  it("peek reads the file as it is now, before it settles, and throws its problem", async () => {
    const s = await adopted(rel("v1"));
    await write(`release:\n  path: ${rel("v2")}\n`);
    expect((await s.peek()).release?.id).toBe("v2");
    expect(s.current().target?.release?.id).toBe("v1");
    await write(`release: [\n`);
    await expect(s.peek()).rejects.toMatchObject({ code: "DESIRED_INVALID" });
    await fs.unlink(file());
    await expect(s.peek()).rejects.toMatchObject({ code: "DESIRED_NOT_FOUND" });
  });
});

async function tmpLink(target: string): Promise<string> {
  const p = path.join(dir, `.current.${Math.random().toString(36).slice(2)}`);
  await fs.symlink(target, p);
  return p;
}

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}
