#!/usr/bin/env bash
# Make this Debian bookworm machine able to run Docker with the compose v2 plugin.
# Idempotent: every step is skipped when its result is already there. Run as root.
#
#   bash .ci/install-docker.sh
#
# - docker.io (engine 20.10) and debootstrap come from the system's own apt sources.
# - The compose v2 plugin comes from Debian trixie's docker-compose package, fetched with a
#   private apt configuration so trixie is never added to the system's sources.
# - dockerd is started in the background (log: $DOCKERD_LOG) when the socket does not answer.
set -euo pipefail

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
DOCKERD_WAIT_SECONDS=${DOCKERD_WAIT_SECONDS:-60}
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
PRIVATE_APT=/var/cache/p2p-registry/apt-trixie

say() { printf '[install-docker] %s\n' "$*"; }
die() { printf '[install-docker] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"

# debian_mirror: the Debian mirror the system already uses, else the default.
# shellcheck source-path=SCRIPTDIR source=../test/images/debian-mirror.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../test/images/debian-mirror.sh"

apt_updated=0
apt_update_once() {
  if [ "$apt_updated" = 0 ]; then
    say "apt-get update"
    apt-get update -qq
    apt_updated=1
  fi
}

# 1. Engine and debootstrap from the system's sources.
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  apt_update_once
  say "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "docker.io and debootstrap already installed"
fi
# The engine package also brings a client (/usr/bin/docker); an existing /usr/local/bin/docker
# (if any) comes first in PATH and is fine: both negotiate the API version with the daemon.

# 2. Compose v2 plugin from trixie, via a private apt configuration.
if docker compose version >/dev/null 2>&1; then
  say "compose plugin already works: $(docker compose version --short 2>/dev/null || true)"
else
  mirror=$(debian_mirror)
  say "fetching docker-compose from trixie at $mirror (private apt dir $PRIVATE_APT)"
  mkdir -p "$PRIVATE_APT/etc/sources.list.d" "$PRIVATE_APT/etc/preferences.d" \
           "$PRIVATE_APT/state/lists/partial" "$PRIVATE_APT/cache/archives/partial" "$PRIVATE_APT/pkg"
  printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s trixie main\n' "$mirror" \
    > "$PRIVATE_APT/etc/sources.list"
  apt_private=(
    -o "Dir::Etc::SourceList=$PRIVATE_APT/etc/sources.list"
    -o "Dir::Etc::SourceParts=$PRIVATE_APT/etc/sources.list.d"
    -o "Dir::Etc::Preferences=$PRIVATE_APT/etc/preferences"
    -o "Dir::Etc::PreferencesParts=$PRIVATE_APT/etc/preferences.d"
    -o "Dir::State=$PRIVATE_APT/state"
    -o "Dir::State::status=/var/lib/dpkg/status"
    -o "Dir::Cache=$PRIVATE_APT/cache"
  )
  apt-get "${apt_private[@]}" update -qq
  rm -f "$PRIVATE_APT"/pkg/*.deb
  # apt downloads as the unprivileged _apt user when it can write the target folder.
  if id _apt >/dev/null 2>&1; then chown _apt "$PRIVATE_APT/pkg"; fi
  (cd "$PRIVATE_APT/pkg" && apt-get "${apt_private[@]}" download docker-compose)
  deb=$(ls "$PRIVATE_APT"/pkg/docker-compose_*.deb | head -n1)
  say "unpacking $(basename "$deb")"
  rm -rf "$PRIVATE_APT/extract"
  dpkg -x "$deb" "$PRIVATE_APT/extract"
  install -d "$PLUGIN_DIR"
  install -m 0755 "$PRIVATE_APT/extract/usr/libexec/docker/cli-plugins/docker-compose" "$PLUGIN_DIR/docker-compose"
  say "installed $PLUGIN_DIR/docker-compose"
fi

# 3. The daemon.
if docker info >/dev/null 2>&1; then
  say "dockerd already answers"
else
  if [ -s /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    say "dockerd is running but does not answer yet; waiting"
  else
    say "starting dockerd in the background (log: $DOCKERD_LOG)"
    # setsid: its own session, so it outlives the shell (or CI step) that started it.
    setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    dockerd_pid=$!
  fi
  waited=0
  dockerd_pid=${dockerd_pid:-}
  until docker info >/dev/null 2>&1; do
    if [ -n "${dockerd_pid:-}" ] && ! kill -0 "$dockerd_pid" 2>/dev/null; then
      tail -n 20 "$DOCKERD_LOG" >&2 || true
      die "dockerd exited during startup (see $DOCKERD_LOG)"
    fi
    if [ "$waited" -ge "$DOCKERD_WAIT_SECONDS" ]; then
      tail -n 20 "$DOCKERD_LOG" >&2 || true
      die "dockerd did not answer within ${DOCKERD_WAIT_SECONDS}s (see $DOCKERD_LOG)"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  say "dockerd answers after ${waited}s"
fi

say "$(docker version --format 'client {{.Client.Version}}, server {{.Server.Version}}')"
say "compose $(docker compose version --short)"
