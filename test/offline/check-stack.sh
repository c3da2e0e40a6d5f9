#!/usr/bin/env bash
# Offline check of the shipped compose.yaml (tor with DisableNetwork 1; never the public network):
# builds both images, starts the stack with test/compose.offline.yaml, and checks what the
# deployment promises: the config one-shot (one config.ini parser), tor's healthcheck, permissions,
# health on the operator socket only (never through tor's socket), no ports, the onion kept, the
# claim database backed up online (make backup) and restored into a fresh volume (make restore),
# and a bad config.ini stopping the stack with the server's message. Prints one line per check and
# "N passed, N failed"; exits non-zero on failure.
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
  local began=$SECONDS
  if "$@" >/dev/null 2>&1; then passed=$((passed + 1)); echo "ok   $name ($((SECONDS - began))s)"
  else failed=$((failed + 1)); echo "FAIL $name ($((SECONDS - began))s)"; fi
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
for _ in $(seq 1 60); do healthy "$registry" && healthy "$tor" && break; sleep 1; done
echo "tor and registry healthy after $(( $(date +%s) - start ))s"

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
config_ran() { # the one-shot exited 0 after validating config.ini with the server's parser
  local id
  id=$("${dc[@]}" ps -aq config)
  [ "$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$id")" = "exited 0" ] &&
    "${dc[@]}" logs config | grep -q 'is valid; wrote /run/registry-config/tor.env: HIDDEN_SERVICE_PORT=8080'
}
tor_reads_only_its_file() { # no config.ini in tor; tor.env is the one line; the torrc uses it
  ! docker inspect -f '{{range .Mounts}}{{.Destination}} {{end}}' "$tor" | grep -q config.ini &&
    [ "$(docker exec "$tor" cat /run/registry-config/tor.env)" = HIDDEN_SERVICE_PORT=8080 ] &&
    docker exec "$tor" grep -qx 'HiddenServicePort 8080 unix:/run/registry/registry.sock' /run/tor/torrc &&
    ! docker exec "$tor" touch /run/registry-config/tor.env
}
tor_refuses_a_bad_file() { # the entrypoint takes HIDDEN_SERVICE_PORT=<digits> and nothing else
  local bad out
  bad=$(mktemp -d)
  for content in 'HIDDEN_SERVICE_PORT=80;x' 'HIDDEN_SERVICE_PORT="80"' 'HiddenServicePort=80' 'HIDDEN_SERVICE_PORT=99999'; do
    printf '%s\n' "$content" >"$bad/tor.env"
    chmod 0644 "$bad/tor.env"
    if out=$(docker run --rm --network none -v "$bad/tor.env:/run/registry-config/tor.env:ro" p2p-registry/tor:latest 2>&1); then
      rm -rf "$bad"; return 1
    fi
    grep -q 'tor-entrypoint: error: /run/registry-config/tor.env' <<<"$out" || { rm -rf "$bad"; return 1; }
  done
  rm -rf "$bad"
}
control_socket_private() { # tor's control socket: in a 0700 dir of tor's user, absent from the server
  [ "$(docker exec "$tor" stat -c '%a %u' /run/tor)" = "700 10001" ] &&
    docker exec "$tor" test -S /run/tor/control && ! in_registry test -e /run/tor/control
}
health_says_offline() { # the healthcheck asks tor itself; offline has its own meaning
  docker exec "$tor" tor-control health | grep -q '^healthy: tor running, [a-z2-7]\{56\}\.onion (DisableNetwork 1: offline'
}
frozen_tor_unhealthy() { # a tor that does not answer its control socket is not serving
  local pid out
  pid=$(docker exec "$tor" cat /run/tor/tor.pid)
  docker exec "$tor" sh -c "kill -STOP $pid"
  out=$(docker exec "$tor" tor-control health) && { docker exec "$tor" sh -c "kill -CONT $pid"; return 1; }
  docker exec "$tor" sh -c "kill -CONT $pid"
  grep -q "^unhealthy: tor's control socket did not answer" <<<"$out" && docker exec "$tor" tor-control health
}
wait_serving_prints_url() { # make up's wait: the URL once tor and the registry are healthy
  COMPOSE="${dc[*]}" ONION_WAIT_SECONDS=30 bash tor/wait-serving.sh 2>/dev/null | grep -Eq '^serving after [0-9]+s: ws://[a-z2-7]{56}\.onion:8080/$'
}
bad_config_stops_stack() { # CONFIG_INI EXPECTED: `up` fails at the one-shot with the server's line; nothing else starts
  local project=p2p-registry-offline-badconfig out
  # Beside the running stack: a monitoring network of its own (one subnet can exist once per host).
  local -x MONITORING_SUBNET=10.213.72.0/24 MONITORING_PROMETHEUS_ADDRESS=10.213.72.10
  local bad=(docker compose -p "$project" -f compose.yaml -f test/compose.offline.yaml)
  "${bad[@]}" down -v >/dev/null 2>&1 || true
  if CONFIG_INI=$1 "${bad[@]}" up -d >/dev/null 2>&1; then "${bad[@]}" down -v >/dev/null 2>&1; return 1; fi
  out=$(CONFIG_INI=$1 "${bad[@]}" logs --no-log-prefix config 2>&1)
  local started
  started=$(CONFIG_INI=$1 "${bad[@]}" ps -q tor registry)
  CONFIG_INI=$1 "${bad[@]}" down -v >/dev/null 2>&1 || true
  [ -z "$started" ] && [ "$(grep -c . <<<"$out")" = 1 ] && grep -qF "$2" <<<"$out"
}
no_ports() { ! "${dc[@]}" config | grep -Eq '^[[:space:]]+(ports|published):'; }
tor_uid() { [ "$(docker exec "$tor" id -u):$(docker exec "$tor" id -g)" = 10001:10001 ]; }
registry_uid() { [ "$(in_registry id -u):$(in_registry id -g)" = 1000:10001 ]; }
tor_reaches_socket() { # a client with tor's uid/gid reaches the socket: plain HTTP, /healthz too, gets 426 and no health
  docker run --rm --user 10001:10001 --network none -v "${project}_registry-socket:/run/registry:ro" \
    --entrypoint node p2p-registry/server:latest -e '
      require("http").get({ socketPath: "/run/registry/registry.sock", path: "/healthz" }, (r) => {
        let body = "";
        r.on("data", (chunk) => (body += chunk));
        r.on("end", () => process.exit(r.statusCode === 426 && !/uptime|peers|onion|status/.test(body) ? 0 : 1));
      }).on("error", () => process.exit(1))'
}
operator_socket_private() { # /healthz is on the operator socket: the registry's user alone, in a tmpfs tor does not have
  [ "$(in_registry stat -c '%a %u' /run/registry-operator /run/registry-operator/operator.sock | tr '\n' ' ')" = "700 1000 600 1000 " ] &&
    ! docker exec "$tor" test -e /run/registry-operator &&
    in_registry node /app/server/dist/cli.js health --config /etc/p2p-registry/config.ini | grep -q '"uptimeSeconds"'
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

claims_json() { in_registry node /app/server/dist/cli.js claims list --json --config /etc/p2p-registry/config.ini; }
# Claims written into the live database (the server runs) by a one-off container of the server
# image with the store's own code: what the server writes at registration, without a Tor network.
seed_claims() { # NICKNAME...
  docker run --rm --user 1000:10001 --network none -e NICKNAMES="$*" \
    -v "${project}_registry-data:/var/lib/p2p-registry" --entrypoint node p2p-registry/server:latest --input-type=module -e '
      import { generateKeyPairSync, randomBytes } from "node:crypto";
      import { openSqliteClaimStore } from "/app/server/dist/store/sqlite/sqlite-store.js";
      import { keyIdOf } from "/app/server/dist/store/claim-store.js";
      import { onionAddressFromPublicKey } from "/app/server/dist/protocol/onion-address.js";
      const store = await openSqliteClaimStore({ path: "/var/lib/p2p-registry/registry.db", claimDays: 30 });
      for (const nickname of process.env.NICKNAMES.split(" ")) {
        const der = generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "der" });
        await store.claim({ keyId: keyIdOf(der), publicKeyDer: der, nickname, address: onionAddressFromPublicKey(randomBytes(32)), addressVerified: false });
      }
      await store.close();'
}
has_claims() { # JSON WANTED...: the nicknames of the JSON list, sorted, are exactly WANTED
  local json=$1; shift
  [ "$(node -e 'console.log(JSON.parse(process.argv[1]).map((c) => c.nickname).sort().join(" "))' "$json" 2>/dev/null ||
      grep -o '"nickname":"[^"]*"' <<<"$json" | cut -d'"' -f4 | sort | tr '\n' ' ' | sed 's/ $//')" = "$*" ]
}
backup_restore() { # make backup while serving; a claim released after it; make restore into a fresh volume brings it back
  local dir out file mode
  dir=$(mktemp -d)
  seed_claims alice bob || { rm -rf "$dir"; return 1; }
  has_claims "$(claims_json)" alice bob || { rm -rf "$dir"; return 1; }
  out=$(make --no-print-directory backup COMPOSE="${dc[*]}" BACKUP_DIR="$dir") || { rm -rf "$dir"; return 1; }
  file=$(tail -n 1 <<<"$out")
  mode=$(stat -c '%a' "$file")
  # nothing left in the volume; the file on the host is 0600
  [ "$mode" = 600 ] && ! in_registry sh -c 'ls /var/lib/p2p-registry | grep -q backup-' || { rm -rf "$dir"; return 1; }
  in_registry node /app/server/dist/cli.js claims release alice --config /etc/p2p-registry/config.ini
  has_claims "$(claims_json)" bob || { rm -rf "$dir"; return 1; }
  # a fresh registry-data volume: the old database is gone, then the backup goes in
  "${dc[@]}" down >/dev/null 2>&1
  docker volume rm "${project}_registry-data" >/dev/null
  "${dc[@]}" up -d >/dev/null 2>&1
  registry=$("${dc[@]}" ps -q registry); tor=$("${dc[@]}" ps -q tor)
  for _ in $(seq 1 60); do healthy "$registry" && break; sleep 1; done
  has_claims "$(claims_json)" || { rm -rf "$dir"; return 1; }
  # a file that is no claim database is refused; the registry comes back with what it had
  echo 'not a database' >"$dir/bad.db"
  make --no-print-directory restore COMPOSE="${dc[*]}" FILE="$dir/bad.db" && { rm -rf "$dir"; return 1; }
  registry=$("${dc[@]}" ps -q registry)
  for _ in $(seq 1 60); do healthy "$registry" && break; sleep 1; done
  has_claims "$(claims_json)" || { rm -rf "$dir"; return 1; }
  make --no-print-directory restore COMPOSE="${dc[*]}" FILE="$file" || { rm -rf "$dir"; return 1; }
  rm -rf "$dir"
  registry=$("${dc[@]}" ps -q registry)
  for _ in $(seq 1 60); do healthy "$registry" && break; sleep 1; done
  healthy "$registry" && has_claims "$(claims_json)" alice bob &&
    [ "$(in_registry stat -c '%u:%g %a' /var/lib/p2p-registry/registry.db)" = "1000:10001 600" ]
}

check "config one-shot validated config.ini and wrote tor.env" config_ran
check "tor reads only tor.env (no config.ini mounted; read-only; torrc uses its port)" tor_reads_only_its_file
check "tor refuses a tor.env that is not HIDDEN_SERVICE_PORT=<digits>" tor_refuses_a_bad_file
check "tor container is healthy" healthy "$tor"
check "tor's healthcheck asks tor: offline (DisableNetwork 1) healthy" health_says_offline
check "tor's control socket is private to tor (0700, not in the registry)" control_socket_private
check "a frozen tor is unhealthy (control socket silent), healthy again after" frozen_tor_unhealthy
check "make up's wait (tor/wait-serving.sh) prints the URL" wait_serving_prints_url
check "registry container is healthy" healthy "$registry"
check "registry logs its ws://<onion>:8080/ URL (port from config.ini)" logs_have_url
check "tor runs as 10001:10001" tor_uid
check "registry runs as 1000:10001" registry_uid
check "socket is mode 0660, group tor" socket_mode
check "tor's uid/gid reaches the socket, where plain HTTP (/healthz too) gets 426 and no health" tor_reaches_socket
check "health answers on the operator socket (0600, tmpfs 0700 of 1000), which tor does not have" operator_socket_private
check "hostname is 0640 and the secret key 0600" key_modes
check "registry can read hostname" hostname_readable
check "registry cannot read hs_ed25519_secret_key" key_unreadable
check "registry has no network" no_network
check "no port is published" no_ports
check "logs of both containers are rotated (10m x 5)" logs_rotated
check "onion address survives down and up" onion_kept
check "make backup copies the claims online; make restore puts them into a fresh volume (1000:10001 0600)" backup_restore
check "[hiddenservice] stops the stack at the one-shot with the server's line" \
  bad_config_stops_stack ./test/offline/config-bad-section.ini 'unknown section [hiddenservice]: did you mean [HiddenService]?'
check "a misspelt key stops the stack at the one-shot with the server's line" \
  bad_config_stops_stack ./test/offline/config-misspelt.ini 'unknown key [HiddenService] HiddenServicePrt: did you mean HiddenServicePort?'


echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
