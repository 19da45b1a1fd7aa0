#!/usr/bin/env bash
# GitOps-style deploy: the `current` symlink is the desired state. The daemon's desired file
# names $APP_ROOT/current once (`release: {path: /srv/app/current}`); every deploy after that
# only unpacks a release and flips the link, and the daemon rolls out whatever it points to.
#
#   1. unpack the tarball into $APP_ROOT/releases/<UTC timestamp> (through a hidden temporary
#      directory, so a half-unpacked release is never visible) and write its REVISION file;
#   2. flip `current` atomically: `ln -s` to a temporary name, then `mv -T` over `current`
#      (rename(2) replaces the link in one step; `ln -sfn` would remove it first);
#   3. wait with `rollbridge status --json` until the daemon runs the new release and has
#      converged (exit 0), or until its rollout fails (exit 1: `current` is flipped back to the
#      previous release, which kept serving throughout).
# On the very first deploy, when the desired file does not name $APP_ROOT/current yet, step 3
# is `rollbridge apply --release-path $APP_ROOT/current --wait` instead.
#
# Usage: deploy-symlink.sh TARBALL [REVISION]
#   APP_ROOT=/srv/shop ROLLBRIDGE_CONFIG=/etc/rollbridge/shop.yaml ./deploy-symlink.sh shop.tar.gz 9f1c2e7
#
# Settings (environment):
#   APP_ROOT            where releases/ and current live   (default /srv/app)
#   ROLLBRIDGE_CONFIG   the daemon's config file            (default /etc/rollbridge/app.yaml)
#   ROLLBRIDGE          the rollbridge command              (default: rollbridge on PATH)
#   DEPLOY_TIMEOUT_MS   give up waiting after               (default 300000)
set -euo pipefail

usage() { echo "usage: $0 TARBALL [REVISION]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
tarball=$1
revision=${2:-}
app_root=${APP_ROOT:-/srv/app}
config=${ROLLBRIDGE_CONFIG:-/etc/rollbridge/app.yaml}
rollbridge=${ROLLBRIDGE:-rollbridge}
timeout_ms=${DEPLOY_TIMEOUT_MS:-300000}
[ -f "$tarball" ] || { echo "deploy: no such tarball: $tarball" >&2; exit 2; }

# 1. Unpack.
mkdir -p "$app_root/releases"
app_root=$(cd "$app_root" && pwd) # absolute, as the desired file names it
releases="$app_root/releases"
stamp=$(date -u +%Y%m%d%H%M%S)
while [ -e "$releases/$stamp" ]; do sleep 1; stamp=$(date -u +%Y%m%d%H%M%S); done
release="$releases/$stamp"
partial="$releases/.$stamp.partial"
trap 'rm -rf "$partial" "$app_root/.current.$$"' EXIT
mkdir "$partial"
tar -xzf "$tarball" -C "$partial"
[ -n "$revision" ] && printf '%s\n' "$revision" > "$partial/REVISION"
mv "$partial" "$release"
echo "deploy: unpacked $tarball into $release${revision:+ (revision $revision)}"

# 2. Flip `current` atomically, remembering where it pointed.
previous=$(readlink "$app_root/current" 2>/dev/null || true)
ln -s "releases/$stamp" "$app_root/.current.$$"
mv -T "$app_root/.current.$$" "$app_root/current"
echo "deploy: current -> releases/$stamp${previous:+ (was $previous)}"

flip_back() {
  [ -n "$previous" ] || return 0
  ln -s "$previous" "$app_root/.current.$$"
  mv -T "$app_root/.current.$$" "$app_root/current"
  echo "deploy: current flipped back to $previous" >&2
}

status_json() { "$rollbridge" status --config "$config" --json; }

# Reads `status --json` on stdin; prints one of: converged, failed <reason>, waiting, other.
judge() {
  RELEASE=$(cd "$release" && pwd -P) CURRENT="$app_root/current" node -e '
    let text = "";
    process.stdin.on("data", (c) => (text += c)).on("end", () => {
      const s = JSON.parse(text);
      const mine = (s.releases ?? []).find((r) => r.path === process.env.RELEASE);
      if (s.desired.requestedPath !== process.env.CURRENT) return console.log("other");
      if (mine && mine.state === "failed") return console.log(`failed ${mine.failure?.reason ?? "rollout failed"}`);
      if (s.desired.path === process.env.RELEASE && s.activeRelease?.path === process.env.RELEASE && s.converged) return console.log("converged");
      console.log("waiting");
    });'
}

# 3. Wait for the daemon.
if [ "$(status_json | judge)" = "other" ]; then
  echo "deploy: the desired file does not name $app_root/current yet: applying it"
  if ! "$rollbridge" apply --config "$config" --release-path "$app_root/current" --wait --timeout "$timeout_ms"; then
    flip_back
    exit 1
  fi
  exit 0
fi
deadline=$(( $(date +%s) + timeout_ms / 1000 ))
while :; do
  verdict=$(status_json | judge)
  case $verdict in
    converged) echo "deploy: $stamp is active and converged"; exit 0 ;;
    failed*) echo "deploy: rollout of $stamp ${verdict}; the previous release keeps serving" >&2; flip_back; exit 1 ;;
    other) echo "deploy: someone changed the desired file to something else while we waited" >&2; exit 1 ;;
  esac
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "deploy: $stamp not converged within $timeout_ms ms (rollbridge status shows why)" >&2
    exit 1
  fi
  sleep 0.5
done
