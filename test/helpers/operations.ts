// Shared pieces of the operations tests: a web + worker setup, deploys through the CLI, a CLI
// child that streams (logs/events --follow), and a small Prometheus text parser.
import { spawn, type ChildProcess } from "node:child_process";
import http from "node:http";
import { CLI, waitForExit, type TestDaemon } from "./daemon.js";
import { get } from "./load.js";
import { companionProcess, webProcess } from "./test-config.js";

/** A proxied web process and a two-replica heartbeat worker. */
export const WEB_AND_WORKERS = [webProcess(), companionProcess("worker", { replicas: 2, restartDelayMs: 200, gracefulStopMs: 3000 })].join("\n");

export async function deploy(d: TestDaemon, release: string, extra: string[] = []) {
  const p = await d.release(release);
  return d.cli(["deploy", "--release-path", p, ...extra]);
}

export interface StreamingCli {
  child: ChildProcess;
  lines: string[];
  stderr: () => string;
  /** Resolves with the first line matching `pattern` (rejects after timeoutMs). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

/** Runs the CLI as a long-lived child (for --follow), collecting stdout lines. */
export function streamCli(args: string[], cwd: string): StreamingCli {
  const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  let partial = "";
  let err = "";
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    partial += chunk;
    const parts = partial.split("\n");
    partial = parts.pop() ?? "";
    for (const line of parts) {
      lines.push(line);
      for (const w of [...waiters]) {
        if (w.pattern.test(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
  return {
    child,
    lines,
    stderr: () => err,
    waitFor(pattern, timeoutMs = 15_000) {
      const seen = lines.find((l) => pattern.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms; got:\n${lines.slice(-10).join("\n")}\nstderr: ${err}`)), timeoutMs);
        waiters.push({ pattern, resolve: (line) => (clearTimeout(timer), resolve(line)) });
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGINT");
        if (!(await waitForExit(child, 5000))) child.kill("SIGKILL");
      }
    },
  };
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * Parses Prometheus text exposition (0.0.4) strictly enough to catch format errors: every
 * line is a comment (# HELP / # TYPE), blank, or `name{labels} value`; each TYPE comes before
 * its samples; a family's TYPE appears once.
 */
export function parsePrometheus(text: string): { samples: Sample[]; types: Record<string, string> } {
  const samples: Sample[] = [];
  const types: Record<string, string> = {};
  const sampleRe = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$/;
  const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (!m) throw new Error(`bad comment line: ${line}`);
      if (m[1] === "TYPE") {
        if (types[m[2]!]) throw new Error(`TYPE twice for ${m[2]}`);
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(m[3]!)) throw new Error(`bad type: ${line}`);
        types[m[2]!] = m[3]!;
      }
      continue;
    }
    const m = sampleRe.exec(line);
    if (!m) throw new Error(`bad sample line: ${line}`);
    const name = m[1]!;
    const family = Object.keys(types).find((f) => name === f || (types[f] === "histogram" && [`${f}_bucket`, `${f}_sum`, `${f}_count`].includes(name)));
    if (!family) throw new Error(`sample before its TYPE: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[3] ?? "";
    labelRe.lastIndex = 0;
    while (labelRe.lastIndex < body.length) {
      const start = labelRe.lastIndex;
      const l = labelRe.exec(body);
      if (!l || l.index !== start) throw new Error(`bad labels: ${line}`);
      // One pass: `\\n` is an escaped backslash before an "n", not a newline.
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    }
    samples.push({ name, labels, value: Number(m[4] === "+Inf" ? Infinity : m[4] === "-Inf" ? -Infinity : m[4]) });
  }
  return { samples, types };
}

/** Every (name, label set) that appears more than once. */
export function repeatedSeries(samples: Sample[]): string[] {
  const counts = new Map<string, number>();
  for (const s of samples) {
    const id = `${s.name}${JSON.stringify(Object.entries(s.labels).sort(([a], [b]) => a.localeCompare(b)))}`;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return [...counts].filter(([, n]) => n > 1).map(([id]) => id);
}

export function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

/** A plain HTTP GET (status, body, headers), failed after 10 s without an answer. */
export function httpGet(port: number, path: string, host = "127.0.0.1"): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return get(port, path, { host, timeoutMs: 10_000 });
}
