#!/usr/bin/env bash
# Offline check of the shipped compose.yaml (tor with DisableNetwork 1; never the public network):
# builds both images, starts the stack with test/compose.offline.yaml, and checks what the
# deployment promises. Prints one line per check and "N passed, N failed"; exits non-zero on failure.
#
#   bash test/offline/check-stack.sh        (needs Docker: .ci/install-docker.sh)
#
# Base images: test/.run/base-images.env (test/images/build-standins.sh) when present.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
[ -f test/.run/base-images.env ] && . test/.run/base-images.env

project=p2p-registry-offline-check
dc=(docker compose -p "$project" -f compose.yaml -f test/compose.offline.yaml)
passed=0 failed=0
check() { # check NAME COMMAND...
  local name=$1; shift
  if "$@" >/dev/null 2>&1; then passed=$((passed + 1)); echo "ok   $name"
  else failed=$((failed + 1)); echo "FAIL $name"; fi
}
cleanup() { "${dc[@]}" down -v --remove-orphans >/dev/null 2>&1 || true; }
trap cleanup EXIT

cleanup
echo "building images"
"${dc[@]}" build -q
start=$(date +%s)
"${dc[@]}" up -d --quiet-pull >/dev/null 2>&1 || "${dc[@]}" up -d
registry=$("${dc[@]}" ps -q registry)
tor=$("${dc[@]}" ps -q tor)

healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$1")" = healthy ]; }
for _ in $(seq 1 60); do healthy "$registry" && break; sleep 1; done
echo "registry health after $(( $(date +%s) - start ))s"

in_registry() { docker exec "$registry" "$@"; }
logs_have_url() { "${dc[@]}" logs registry | grep -Eq 'registry reachable at ws://[a-z2-7]{56}\.onion:8080/'; }
socket_mode() { [ "$(in_registry stat -c '%a %g' /run/registry/registry.sock)" = "660 10001" ]; }
hostname_readable() { in_registry cat /var/lib/tor/hidden_service/hostname | grep -Eqx '[a-z2-7]{56}\.onion'; }
key_unreadable() { ! in_registry cat /var/lib/tor/hidden_service/hs_ed25519_secret_key; }
key_modes() { [ "$(docker exec "$tor" stat -c '%a' /var/lib/tor/hidden_service/hostname /var/lib/tor/hidden_service/hs_ed25519_secret_key | tr '\n' ' ')" = "640 600 " ]; }
no_network() { [ "$(docker inspect -f '{{.HostConfig.NetworkMode}}' "$registry")" = none ]; }
logs_rotated() { # both containers: json-file, 10m x 5 (compose.yaml x-hardening)
  local c
  for c in "$tor" "$registry"; do
    [ "$(docker inspect -f '{{.HostConfig.LogConfig.Type}} {{index .HostConfig.LogConfig.Config "max-size"}} {{index .HostConfig.LogConfig.Config "max-file"}}' "$c")" = "json-file 10m 5" ] || return 1
  done
}
no_ports() { ! "${dc[@]}" config | grep -Eq '^[[:space:]]+(ports|published):'; }
tor_uid() { [ "$(docker exec "$tor" id -u):$(docker exec "$tor" id -g)" = 10001:10001 ]; }
registry_uid() { [ "$(in_registry id -u):$(in_registry id -g)" = 1000:10001 ]; }
tor_reaches_socket() { # a client with tor's uid/gid gets 200 from /healthz through the socket
  docker run --rm --user 10001:10001 --network none -v "${project}_registry-socket:/run/registry:ro" \
    --entrypoint node p2p-registry/server:latest -e '
      require("http").get({ socketPath: "/run/registry/registry.sock", path: "/healthz" },
        (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on("error", () => process.exit(1))'
}
onion_kept() { # the onion address survives down + up (the key lives in a named volume)
  local before after
  before=$(in_registry cat /var/lib/tor/hidden_service/hostname)
  "${dc[@]}" down >/dev/null 2>&1 && "${dc[@]}" up -d >/dev/null 2>&1
  registry=$("${dc[@]}" ps -q registry)
  for _ in $(seq 1 60); do healthy "$registry" && break; sleep 1; done
  after=$(in_registry cat /var/lib/tor/hidden_service/hostname)
  [ -n "$before" ] && [ "$before" = "$after" ]
}

check "tor container is healthy" healthy "$tor"
check "registry container is healthy" healthy "$registry"
check "registry logs its ws://<onion>:8080/ URL (port from config.ini)" logs_have_url
check "tor runs as 10001:10001" tor_uid
check "registry runs as 1000:10001" registry_uid
check "socket is mode 0660, group tor" socket_mode
check "tor's uid/gid reaches /healthz through the socket" tor_reaches_socket
check "hostname is 0640 and the secret key 0600" key_modes
check "registry can read hostname" hostname_readable
check "registry cannot read hs_ed25519_secret_key" key_unreadable
check "registry has no network" no_network
check "no port is published" no_ports
check "logs of both containers are rotated (10m x 5)" logs_rotated
check "onion address survives down and up" onion_kept

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
