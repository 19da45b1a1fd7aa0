// A real nginx for tests: found on PATH or in Debian's /usr/sbin, run from a temp prefix (its
// own pid file, logs and temp dirs, so no system path is touched), in the foreground, stopped by
// the pid of its master (which takes its workers with it).
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { waitForExit } from "./daemon.js";

/** The nginx binary, or null when it is not installed. */
export function findNginx(): string | null {
  for (const dir of (process.env.PATH ?? "").split(":")) if (dir && existsSync(path.join(dir, "nginx"))) return path.join(dir, "nginx");
  for (const candidate of ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"]) if (existsSync(candidate)) return candidate;
  return null;
}

export const NGINX_MISSING = "nginx is not installed (apt-get install -y nginx; .ci/run installs it): skipping the nginx tests";

/**
 * The main nginx.conf around a site file (what /etc/nginx/nginx.conf does for conf.d/*.conf),
 * with every path in `prefix`. `user` (as root: the workers' "user group") is left out otherwise.
 */
export function mainConfig(prefix: string, siteFile: string, options: { user?: string } = {}): string {
  const at = (name: string) => path.join(prefix, name);
  return [
    "daemon off;",
    "worker_processes 1;",
    `pid ${at("nginx.pid")};`,
    `error_log ${at("error.log")} warn;`,
    ...(options.user ? [`user ${options.user};`] : []),
    "events { worker_connections 512; }",
    "http {",
    "    access_log off;",
    `    client_body_temp_path ${at("client_body")};`,
    `    proxy_temp_path ${at("proxy")};`,
    `    fastcgi_temp_path ${at("fastcgi")};`,
    `    uwsgi_temp_path ${at("uwsgi")};`,
    `    scgi_temp_path ${at("scgi")};`,
    `    include ${siteFile};`,
    "}",
    "",
  ].join("\n");
}

/** `nginx -t` on a main config: exit code and output (nginx reports on stderr). */
export function nginxTest(nginx: string, prefix: string, configPath: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(nginx, ["-t", "-p", prefix, "-e", path.join(prefix, "error.log"), "-c", configPath], { timeout: 20_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, output: stdout + stderr });
    });
  });
}

export interface RunningNginx {
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Starts nginx on `configPath` and waits until `port` accepts connections. */
export async function startNginx(nginx: string, prefix: string, configPath: string, canConnect: () => Promise<boolean>): Promise<RunningNginx> {
  const child = spawn(nginx, ["-p", prefix, "-e", path.join(prefix, "error.log"), "-c", configPath], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const running: RunningNginx = {
    child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const workers = await fs.readFile(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").then(
        (text) => text.split(/\s+/).filter(Boolean).map(Number),
        () => [],
      );
      child.kill("SIGTERM"); // fast shutdown: the master stops its workers, then exits
      if (!(await waitForExit(child, 10_000))) child.kill("SIGKILL");
      // a worker left behind by a killed master is ended by its pid, never by name
      for (const pid of workers) {
        const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
        if (!cmdline.startsWith("nginx: worker")) continue; // gone with its master, as it should be
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // exited meanwhile
        }
      }
    },
  };
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${stderr}${await fs.readFile(path.join(prefix, "error.log"), "utf8").catch(() => "")}`);
    if (await canConnect()) return running;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await running.stop();
  throw new Error(`nginx did not listen in 15 s: ${stderr}`);
}
