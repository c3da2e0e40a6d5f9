#!/usr/bin/env bash
# The cluster's operations, run on the Docker host (make cluster-upgrade, cluster-drain, ...;
# docs/CLUSTER.md). Each goes through `docker compose` and the frontend's `cluster` command
# (tor/cluster.sh), so no step needs SQL.
#
#   cluster-ops.sh upgrade [--no-build]
#       builds the server image, then replaces each backend's registry container, one at a time:
#       the next only after this one is healthy and holds a lease again. No tor restarts, so the
#       backends' introduction points, and every peer's cached descriptor, stay valid; the peers
#       of a restarted registry reconnect through the master address and keep their nicknames.
#   cluster-ops.sh drain BACKEND [--reason TEXT] [--wait] [--force]
#   cluster-ops.sh undrain BACKEND
#       BACKEND: a backend's compose name (backend1) or its onion address.
#   cluster-ops.sh remove BACKEND
#       drain, stop its registry and tor, and forget it once its lease has lapsed.
#   cluster-ops.sh backends
#
# Environment: COMPOSE, the compose command of the cluster (default: docker compose -f
# compose.cluster.yaml --profile all); UPGRADE_WAIT_SECONDS (180) bounds each backend's wait.
set -euo pipefail

COMPOSE=${COMPOSE:-docker compose -f compose.cluster.yaml --profile all}
WAIT_SECONDS=${UPGRADE_WAIT_SECONDS:-180}
HS_DIR=/var/lib/tor/hidden_service

say() { printf 'cluster %s: %s\n' "$command" "$*"; }
die() { printf 'cluster %s: error: %s\n' "$command" "$*" >&2; exit 1; }
compose() { $COMPOSE "$@"; }
frontend() { compose exec -T frontend /usr/local/bin/cluster "$@"; }

# registry_services: the backendN-registry services of this compose file, in order.
registry_services() { services | grep -E '^backend[0-9]+-registry$' | sort -V || true; }

# The services of this compose file, read once (whole: grep -q on a pipe would cut it short).
SERVICES=
services() {
  [ -n "$SERVICES" ] || SERVICES=$(compose config --services) || die "docker compose config failed: run it yourself to see why"
  printf '%s\n' "$SERVICES"
}

# onion_of BACKEND: an onion address as it is, or the onion of a backend's compose name.
onion_of() {
  case $1 in
    *.onion) printf '%s\n' "$1" ;;
    *)
      services >/dev/null
      printf '%s\n' "$SERVICES" | grep -qx "$1-tor" || die "no service $1-tor in this compose file: give a backend's name (backend1) or its onion address (make cluster-backends lists them)"
      compose exec -T "$1-tor" cat "$HS_DIR/hostname" 2>/dev/null \
        || die "cannot read $1's onion from its tor container: is $1-tor running here? (on another host, give the onion address instead)" ;;
  esac
}

# backend_row ONION: "state|instance" from the frontend's table (empty when unknown).
backend_row() {
  frontend backends | awk -v o="$1" '$1 == o { print $2 "|" $4 }'
}

health_of() {
  local id
  id=$(compose ps -q "$1")
  [ -n "$id" ] || { echo missing; return; }
  docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id"
}

upgrade() {
  local build=1 service backend onion before started row
  [ "${1:-}" = --no-build ] && build=
  services >/dev/null   # read here, in this shell: the subshells below inherit it
  mapfile -t registries < <(registry_services)
  [ "${#registries[@]}" -gt 0 ] || die "no backendN-registry service in this compose file"
  if [ -n "$build" ]; then
    say "building the server image"
    compose build "${registries[0]}"
  fi
  for service in "${registries[@]}"; do
    backend=${service%-registry}
    onion=$(onion_of "$backend")
    before=$(backend_row "$onion")
    [ -n "$before" ] || die "$onion ($backend) is not in registry_backends: is its registry running? (make cluster-backends)"
    started=$(date +%s)
    say "$backend: replacing its registry (its tor keeps running: its introduction points stay)"
    compose up -d --no-deps --force-recreate "$service"
    until [ "$(health_of "$service")" = healthy ]; do
      [ $(( $(date +%s) - started )) -lt "$WAIT_SECONDS" ] || die "$service is not healthy after ${WAIT_SECONDS}s ($(health_of "$service")): see make cluster-logs; the other backends were not touched"
      sleep 1
    done
    until row=$(backend_row "$onion") && [ "${row%%|*}" = serving ] && [ "${row#*|}" != "${before#*|}" ]; do
      [ $(( $(date +%s) - started )) -lt "$WAIT_SECONDS" ] || die "$backend's new registry holds no lease after ${WAIT_SECONDS}s (${row:-no row}): see make cluster-logs"
      sleep 1
    done
    say "$backend: serving again after $(( $(date +%s) - started ))s (registry instance ${row#*|})"
  done
  say "every backend's registry was replaced; no tor restarted"
}

remove() {
  local backend=$1 onion
  onion=$(onion_of "$backend")
  frontend drain "$onion" --reason "removed"
  case $backend in
    *.onion) say "stop that backend's registry and tor on its host now; forgetting it once its lease lapsed" ;;
    *) compose stop "$backend-registry" "$backend-tor" ;;
  esac
  local started
  started=$(date +%s)
  until frontend forget "$onion" 2>/dev/null; do
    [ $(( $(date +%s) - started )) -lt "$WAIT_SECONDS" ] || die "$onion still holds a lease after ${WAIT_SECONDS}s: is its registry still running?"
    sleep 5
  done
  say "removed $onion: remove its services and volumes from your compose file (docs/CLUSTER.md)"
}

command=${1:-}
[ $# -gt 0 ] && shift
case $command in
  upgrade) upgrade "$@" ;;
  drain | undrain)
    [ $# -ge 1 ] || die "usage: $command BACKEND (backend1, or an onion address)"
    onion=$(onion_of "$1"); shift
    frontend "$command" "$onion" "$@" ;;
  remove) [ $# -eq 1 ] || die "usage: remove BACKEND"; remove "$1" ;;
  backends) frontend backends ;;
  *) die "usage: cluster-ops.sh upgrade [--no-build] | drain BACKEND [--reason TEXT] [--wait] [--force] | undrain BACKEND | remove BACKEND | backends" ;;
esac
