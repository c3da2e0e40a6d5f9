#!/bin/sh
# Docker HEALTHCHECK for the tor container. Healthy when all of these hold:
#   1. the tor process named in /run/tor/tor.pid is alive;
#   2. HiddenServiceDir/hostname holds a v3 onion address (tor writes it ~1 s after start);
#   3. tor has bootstrapped to 100% (its last "Bootstrapped N%" notice, which the entrypoint
#      sends to /run/tor/bootstrap.log), unless the configuration says `DisableNetwork 1`
#      (offline tests), where bootstrapping cannot happen by design.
# Read from files only: no control port is opened for this.
set -eu

TOR_RUN_DIR=${TOR_RUN_DIR:-/run/tor}
HOSTNAME_FILE=${HOSTNAME_FILE:-/var/lib/tor/hidden_service/hostname}

fail() { echo "unhealthy: $*"; exit 1; }

pid=$(cat "$TOR_RUN_DIR/tor.pid" 2>/dev/null) || fail "no $TOR_RUN_DIR/tor.pid (tor not started yet?)"
kill -0 "$pid" 2>/dev/null || fail "tor (pid $pid) is not running"

onion=$(cat "$HOSTNAME_FILE" 2>/dev/null) || fail "no $HOSTNAME_FILE yet"
printf '%s\n' "$onion" | grep -Eqx '[a-z2-7]{56}\.onion' || fail "$HOSTNAME_FILE does not hold a v3 onion address"

if cat "$TOR_RUN_DIR/torrc" /etc/tor/torrc.d/*.conf 2>/dev/null | grep -Eiq '^[[:space:]]*DisableNetwork[[:space:]]+1'; then
  echo "healthy: tor running, $onion (DisableNetwork 1: bootstrap not required)"
  exit 0
fi

progress=$(sed -n 's/.*Bootstrapped \([0-9]*\)%.*/\1/p' "$TOR_RUN_DIR/bootstrap.log" 2>/dev/null | tail -n 1)
[ "${progress:-0}" = 100 ] || fail "tor bootstrap at ${progress:-0}%"
echo "healthy: tor running and bootstrapped, $onion"
