#!/usr/bin/env bash
# Deploy a release tarball with Rollbridge:
#   1. unpack it into $APP_ROOT/releases/<UTC timestamp> (via a hidden temporary directory,
#      so a half-unpacked release is never deployed);
#   2. `rollbridge deploy` it, which starts it, health-checks it, switches traffic and drains
#      the previous release (exit 0), or leaves the previous release serving (exit 1);
#   3. keep the newest $KEEP_RELEASES release directories and delete older ones, never one
#      the daemon is running. Keep as many as you may want to roll back to: a release
#      whose directory is gone cannot be started again.
#
# Usage: deploy.sh TARBALL [REVISION]
#   APP_ROOT=/srv/shop ROLLBRIDGE_CONFIG=/etc/rollbridge/shop.yaml ./deploy.sh shop-9f1c2e7.tar.gz 9f1c2e7
#
# Settings (environment):
#   APP_ROOT            where releases/ lives                  (default /srv/app)
#   ROLLBRIDGE_CONFIG   the daemon's config file                (default /etc/rollbridge/app.yaml)
#   ROLLBRIDGE          the rollbridge command                  (default: rollbridge on PATH)
#   KEEP_RELEASES       release directories to keep, at least 1 (default 5)
#   DEPLOY_TIMEOUT_MS   give up waiting for the rollout after   (default 300000)
set -euo pipefail

usage() { echo "usage: $0 TARBALL [REVISION]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
tarball=$1
revision=${2:-}
app_root=${APP_ROOT:-/srv/app}
config=${ROLLBRIDGE_CONFIG:-/etc/rollbridge/app.yaml}
rollbridge=${ROLLBRIDGE:-rollbridge}
keep=${KEEP_RELEASES:-5}
timeout_ms=${DEPLOY_TIMEOUT_MS:-300000}

[ -f "$tarball" ] || { echo "deploy: no such tarball: $tarball" >&2; exit 2; }
case $keep in ''|*[!0-9]*|0) echo "deploy: KEEP_RELEASES must be a whole number of at least 1, not '$keep'" >&2; exit 2 ;; esac

releases="$app_root/releases"
mkdir -p "$releases"
stamp=$(date -u +%Y%m%d%H%M%S)
release="$releases/$stamp"
# Two deploys in the same second: wait for the next one rather than reuse a directory.
while [ -e "$release" ]; do sleep 1; stamp=$(date -u +%Y%m%d%H%M%S); release="$releases/$stamp"; done

partial="$releases/.$stamp.partial"
trap 'rm -rf "$partial"' EXIT
mkdir "$partial"
tar -xzf "$tarball" -C "$partial"
# Build steps that belong to the release go here, run inside it, e.g.:
#   (cd "$partial" && npm ci --omit=dev)
mv "$partial" "$release"
echo "deploy: unpacked $tarball into $release"

args=(deploy --config "$config" --release-path "$release" --timeout "$timeout_ms")
[ -n "$revision" ] && args+=(--revision "$revision")
if ! "$rollbridge" "${args[@]}"; then
  echo "deploy: rollout of $release failed; the previous release keeps serving" >&2
  exit 1
fi

# Paths of the releases the daemon is running (active, draining or starting): never deleted,
# even when older than the newest $keep (after a rollback, for example).
running=$("$rollbridge" status --config "$config" --json | node -e '
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk)).on("end", () => {
    for (const r of JSON.parse(text).releases ?? []) if (!["stopped", "failed"].includes(r.state)) console.log(r.path);
  });')

find "$releases" -mindepth 1 -maxdepth 1 -type d -name '[0-9]*' | sort -r | tail -n +"$((keep + 1))" |
  while IFS= read -r dir; do
    if printf '%s\n' "$running" | grep -qxF -- "$(cd "$dir" && pwd -P)"; then
      echo "deploy: keeping $dir (the daemon is running it)"
    else
      rm -rf -- "$dir"
      echo "deploy: removed old release $dir"
    fi
  done
