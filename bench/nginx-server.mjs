// nginx as a reference proxy in front of a bench app: a master of our own (daemon off, one
// worker) from a temp config on 127.0.0.1:<free port>, never the system service; stopped by pid.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { canConnect } from "./bench-daemon.mjs";
import { freePort, sleep } from "./lib.mjs";

export const NGINX_MISSING = "nginx not found (install it with `apt-get install -y nginx`)";

/** Where nginx is, or null: apt installs it to /usr/sbin, which is not on every PATH. */
export function findNginx() {
  const found = spawnSync("sh", ["-c", "command -v nginx"], { encoding: "utf8" });
  if (found.status === 0 && found.stdout.trim()) return found.stdout.trim();
  for (const candidate of ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"]) if (existsSync(candidate)) return candidate;
  return null;
}

export function nginxVersion(nginx) {
  return spawnSync(nginx, ["-v"], { encoding: "utf8" }).stderr.trim();
}

/**
 * Starts nginx proxying to 127.0.0.1:<appPort> over a `keepalive 64` HTTP/1.1 upstream (how
 * docs/nginx.md runs it in front of Rollbridge). `spawnChild(command, args, options)` spawns
 * and records the master; `place(command, args)` may wrap it (taskset). Resolves with
 * {port, pids (master and workers), stop()}: stop sends SIGQUIT, then SIGKILL to the master and
 * its workers, and removes the temp directory.
 * `websocket`: pass Upgrade and Connection through (as docs/nginx.md does), for WebSockets and Socket.IO.
 */
export async function startNginx({ nginx, appPort, spawnChild, place = (c, a) => [c, a], websocket = false }) {
  const tmp = mkdtempSync(join(os.tmpdir(), "rb-nginx-"));
  const port = await freePort();
  for (const dir of ["body", "proxy", "fastcgi", "uwsgi", "scgi"]) mkdirSync(join(tmp, dir), { recursive: true });
  const conf = `daemon off;
master_process on;
worker_processes 1;
pid ${join(tmp, "nginx.pid")};
error_log ${join(tmp, "error.log")} warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${join(tmp, "body")};
  proxy_temp_path ${join(tmp, "proxy")};
  fastcgi_temp_path ${join(tmp, "fastcgi")};
  uwsgi_temp_path ${join(tmp, "uwsgi")};
  scgi_temp_path ${join(tmp, "scgi")};
${
  websocket
    ? `  map $http_upgrade $connection_upgrade { default upgrade; "" ""; }
`
    : ""
}  upstream app {
    server 127.0.0.1:${appPort};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
${
  websocket
    ? `      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 3600s;`
    : `      proxy_set_header Connection "";`
}
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }
}
`;
  const confPath = join(tmp, "nginx.conf");
  writeFileSync(confPath, conf);
  // -e: the error log before the config is read (the default, /var/log/nginx, may not be writable).
  const [command, args] = place(nginx, ["-p", tmp, "-e", join(tmp, "error.log"), "-c", confPath]);
  const child = spawnChild(command, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const handle = {
    port,
    pids: [child.pid],
    async stop() {
      const workers = workerPids(tmp);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGQUIT");
        await Promise.race([new Promise((resolve) => child.once("exit", resolve)), sleep(3000)]);
      }
      // The workers are the master's children, not ours: end them by pid if they outlived it.
      for (const pid of [child.pid, ...workers]) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone, as it should be
        }
      }
      rmSync(tmp, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      const log = existsSync(join(tmp, "error.log")) ? readFileSync(join(tmp, "error.log"), "utf8") : "";
      await handle.stop();
      throw new Error(`nginx exited (${child.exitCode}): ${stderr}${log}`);
    }
    if (await canConnect(port)) {
      handle.pids = [child.pid, ...workerPids(tmp)];
      return handle;
    }
    await sleep(50);
  }
  await handle.stop();
  throw new Error(`nginx did not listen on ${port} in 10 s: ${stderr}`);
}

/** The worker pids of the nginx master whose pid file is in tmp (Linux /proc). */
function workerPids(tmp) {
  const pidFile = join(tmp, "nginx.pid");
  if (!existsSync(pidFile)) return [];
  const master = readFileSync(pidFile, "utf8").trim();
  try {
    return readFileSync(`/proc/${master}/task/${master}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
