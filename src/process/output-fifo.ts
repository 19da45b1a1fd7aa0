// A managed process's stdout and stderr as FIFOs in the daemon's private runtime directory,
// so its output survives the daemon: the child's end is opened read-write (the child itself
// always holds a reader, so a write never gets EPIPE or SIGPIPE, even while no daemon runs;
// with nobody reading, a full pipe only blocks the writer until the next daemon reads), and
// the daemon reads the other end non-blocking. A daemon that starts after a crash reopens the
// same paths (recorded in the state file) and keeps reading. Each FIFO is refused unless it
// is a FIFO owned by this uid that nobody else may open, reached without a symlink.
import { execFile, spawnSync } from "node:child_process";
import { closeSync, constants, fstatSync, lstatSync, openSync, unlinkSync } from "node:fs";
import net from "node:net";
import { RollbridgeError } from "../errors.js";

/** Where one process's two streams go. */
export interface OutputFifoPaths {
  stdout: string;
  stderr: string;
}

/** The daemon's reading ends, and (for a spawn) the child's ends, to be closed once it is spawned. */
export interface OpenedFifos {
  readers: { stdout: net.Socket; stderr: net.Socket };
  /** The child's read-write ends (spawn only); the daemon closes its copies right after the spawn. */
  childFds?: { stdout: number; stderr: number };
}

/** Creates both FIFOs (mode 0600) with the `mkfifo` program (Node has no mkfifo of its own). */
export function createOutputFifos(paths: OutputFifoPaths): void {
  const made = spawnSync("mkfifo", mkfifoArgs(paths), { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8", timeout: 10_000 });
  if (made.error !== undefined || made.status !== 0) throw fifoFailure(paths, made.error !== undefined ? made.error.message : made.stderr || `mkfifo exited ${made.status}`);
}

function mkfifoArgs(paths: OutputFifoPaths): string[] {
  return ["-m", "600", "--", paths.stdout, paths.stderr];
}

/** mkfifo failed: what it made is removed, and the error says why and what to do. */
function fifoFailure(paths: OutputFifoPaths, why: string): RollbridgeError {
  removeOutputFifos(paths);
  return new RollbridgeError("SPAWN_FAILED", `cannot create the output FIFOs ${paths.stdout}: ${why.trim()}`, { fix: "install coreutils' mkfifo, or check the runtime directory" });
}

/**
 * Creates both FIFOs like createOutputFifos, without blocking: the daemon's event loop (its
 * proxy too) goes on while `mkfifo` runs, where spawnSync held it for 3-7 ms per process start.
 */
export function createOutputFifosAsync(paths: OutputFifoPaths): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("mkfifo", mkfifoArgs(paths), { timeout: 10_000 }, (error, _stdout, stderr) => {
      if (error === null) return resolve();
      reject(fifoFailure(paths, typeof error.code === "number" ? String(stderr) || `mkfifo exited ${error.code}` : error.message));
    });
  });
}

/**
 * Opens both ends of each FIFO for a process about to be spawned, creating them first unless
 * `created` (createOutputFifosAsync made them); either way each is checked as it is opened.
 */
export function openFifosForSpawn(paths: OutputFifoPaths, created = false): OpenedFifos {
  if (!created) createOutputFifos(paths);
  const opened: number[] = [];
  try {
    const out = openChecked(paths.stdout, constants.O_RDONLY | constants.O_NONBLOCK, opened);
    const err = openChecked(paths.stderr, constants.O_RDONLY | constants.O_NONBLOCK, opened);
    // O_RDWR never blocks on a FIFO, and makes the child its own reader (no SIGPIPE, ever).
    const childOut = openChecked(paths.stdout, constants.O_RDWR, opened);
    const childErr = openChecked(paths.stderr, constants.O_RDWR, opened);
    return { readers: { stdout: reader(out), stderr: reader(err) }, childFds: { stdout: childOut, stderr: childErr } };
  } catch (error) {
    for (const fd of opened) closeQuietly(fd);
    removeOutputFifos(paths);
    throw error;
  }
}

/** Reopens the reading ends of FIFOs an earlier daemon created (adoption). */
export function reopenFifos(paths: OutputFifoPaths): OpenedFifos {
  const opened: number[] = [];
  try {
    const out = openChecked(paths.stdout, constants.O_RDONLY | constants.O_NONBLOCK, opened);
    const err = openChecked(paths.stderr, constants.O_RDONLY | constants.O_NONBLOCK, opened);
    return { readers: { stdout: reader(out), stderr: reader(err) } };
  } catch (error) {
    for (const fd of opened) closeQuietly(fd);
    throw error;
  }
}

/** Removes both FIFOs when they are FIFOs of ours; anything else at those paths is left alone. */
export function removeOutputFifos(paths: OutputFifoPaths): void {
  for (const file of [paths.stdout, paths.stderr]) {
    try {
      const stat = lstatSync(file);
      if (stat.isFIFO() && stat.uid === myUid()) unlinkSync(file);
    } catch {
      // already gone
    }
  }
}

/** Closes a child's ends in the daemon (the child has its own copies once spawned). */
export function closeChildEnds(opened: OpenedFifos): void {
  if (opened.childFds === undefined) return;
  closeQuietly(opened.childFds.stdout);
  closeQuietly(opened.childFds.stderr);
  delete opened.childFds;
}

function openChecked(file: string, flags: number, opened: number[]): number {
  let fd: number;
  try {
    fd = openSync(file, flags | constants.O_NOFOLLOW);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new RollbridgeError("UNSAFE_PATH", `cannot open the output FIFO ${file}: ${code === "ELOOP" ? "it is a symlink" : (code ?? String(cause))}`, { cause, details: { path: file } });
  }
  opened.push(fd);
  const stat = fstatSync(fd);
  if (!stat.isFIFO() || stat.uid !== myUid() || (stat.mode & 0o077) !== 0) {
    throw new RollbridgeError("UNSAFE_PATH", `refusing the output FIFO ${file}: it is ${stat.isFIFO() ? `a FIFO owned by uid ${stat.uid} with mode ${(stat.mode & 0o777).toString(8)}` : "not a FIFO"}, not a private FIFO of uid ${myUid()}`, {
      details: { path: file },
    });
  }
  return fd;
}

function reader(fd: number): net.Socket {
  const socket = new net.Socket({ fd, readable: true, writable: false });
  // A read error ends the stream like EOF; the process's exit is reported on its own.
  socket.on("error", () => socket.destroy());
  return socket;
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

function myUid(): number {
  return typeof process.geteuid === "function" ? process.geteuid() : 0;
}
