#!/bin/sh
# The cluster's tor side (compose.cluster.yaml), in the frontend image (tor/frontend.Dockerfile):
#
#   cluster frontend     run the frontend: tor (a ControlPort, no onion service of its own) and
#                        onionbalance, which publishes the master onion's descriptor built from
#                        the backends' introduction points. The backends are read from PostgreSQL
#                        (registry_backends, kept fresh by each registry server) every
#                        CLUSTER_POLL_SECONDS; onionbalance is restarted only when that set changes.
#                        The master address is published to registry_frontend for the backends.
#   cluster join --out FILE
#                        a backend's one-shot before its tor starts: waits for the frontend's
#                        master address in registry_frontend and writes MASTER_ONION_ADDRESS=<addr>
#                        to FILE (tor/entrypoint.sh then writes ob_config into the onion's folder)
#   cluster health       the frontend's HEALTHCHECK: onionbalance runs, knows a backend's
#                        descriptor and has published the master descriptor
#   cluster status       onionbalance's own status (JSON): each backend's descriptor and when its
#                        introduction points last changed, the master descriptor's last publication
#                        (times in UTC). A rolling restart waits on it between backends (README).
#
# Environment:
#   CLUSTER_DATABASE_URL            postgres://user@host:port/database (required; no password in it)
#   CLUSTER_DATABASE_PASSWORD_FILE  a file holding the password (else PGPASSWORD, or none)
#   CLUSTER_POLL_SECONDS            how often the frontend re-reads the backends (30)
#   CLUSTER_WAIT_SECONDS            how long a wait for the database, its tables or the master
#                                   address may take before giving up with the reason (600)
# The master key lives in /var/lib/onionbalance/master.key (the frontend-master-key volume), made
# at the first start and never again: it IS the cluster's address. Back it up.
set -eu

KEY_DIR=/var/lib/onionbalance
RUN_DIR=/run/frontend
CONTROL_PORT=127.0.0.1:9051
POLL_SECONDS=${CLUSTER_POLL_SECONDS:-30}
WAIT_SECONDS=${CLUSTER_WAIT_SECONDS:-600}
# onionbalance 0.2.2 takes two introduction points per backend; tor's 50,000-byte descriptor
# limit leaves room for 8 backends (~2.7 KB per introduction point).
MAX_BACKENDS=8
ROLE=${1:-frontend}

say() { printf 'cluster %s: %s\n' "$ROLE" "$*"; }
die() { printf 'cluster %s: error: %s\n' "$ROLE" "$*" >&2; exit 1; }

# --- PostgreSQL -------------------------------------------------------------------------------
database_setup() {
  [ -n "${CLUSTER_DATABASE_URL:-}" ] || die "CLUSTER_DATABASE_URL is not set: set it to the registry's database, postgres://user@host:port/database (compose.cluster.yaml does)"
  case $CLUSTER_DATABASE_URL in
    postgres://*:*@*|postgresql://*:*@*) die "CLUSTER_DATABASE_URL carries a password: remove it and put the password into CLUSTER_DATABASE_PASSWORD_FILE" ;;
    postgres://*|postgresql://*) ;;
    *) die "CLUSTER_DATABASE_URL must start with postgres:// (got something else): e.g. postgres://registry@postgres:5432/registry" ;;
  esac
  if [ -n "${CLUSTER_DATABASE_PASSWORD_FILE:-}" ]; then
    [ -r "$CLUSTER_DATABASE_PASSWORD_FILE" ] || die "cannot read CLUSTER_DATABASE_PASSWORD_FILE $CLUSTER_DATABASE_PASSWORD_FILE: mount the PostgreSQL password there (compose.cluster.yaml: the postgres-password secret)"
    PGPASSWORD=$(cat "$CLUSTER_DATABASE_PASSWORD_FILE")
    export PGPASSWORD
  fi
  export PGCONNECT_TIMEOUT=5 PGOPTIONS='-c statement_timeout=5000' PGAPPNAME="p2p-registry-cluster-$ROLE"
}

# sql TEXT: runs one statement; prints the rows unaligned, one per line. stderr goes to $RUN_DIR/psql.err.
sql() { psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$CLUSTER_DATABASE_URL" -c "$1" 2>"$ERR_FILE"; }

# The operator's reading of the last psql failure.
why_failed() {
  err=$(tr '\n' ' ' <"$ERR_FILE" | cut -c1-300)
  case $err in
    *'does not exist'*) echo "the registry's tables are not there yet: the registry servers' migrations create them (is a backend's registry running against this database?) [$err]" ;;
    *'password authentication failed'*) echo "PostgreSQL refused the password: CLUSTER_DATABASE_PASSWORD_FILE must hold the password of the database's user [$err]" ;;
    *) echo "PostgreSQL is not reachable or refused (check that it runs and CLUSTER_DATABASE_URL names it) [$err]" ;;
  esac
}

# wait_for WHAT COMMAND...: retries COMMAND every 2 s until it succeeds, printing why not when the
# reason changes or every 30 s; gives up after CLUSTER_WAIT_SECONDS with the last reason.
wait_for() {
  what=$1; shift
  deadline=$(( $(date +%s) + WAIT_SECONDS ))
  last_reason= last_said=0
  until "$@"; do
    reason=$(why_failed)
    now=$(date +%s)
    if [ "$reason" != "$last_reason" ] || [ $(( now - last_said )) -ge 30 ]; then
      say "waiting for $what: $reason"
      last_reason=$reason last_said=$now
    fi
    [ "$now" -lt "$deadline" ] || die "gave up waiting for $what after ${WAIT_SECONDS}s: $reason (raise CLUSTER_WAIT_SECONDS to wait longer)"
    sleep 2 & wait $!
  done
}

valid_onion() { printf '%s\n' "$1" | grep -Eqx '[a-z2-7]{56}\.onion'; }

# --- join: a backend learns the master address ------------------------------------------------
read_master() {
  master=$(sql "SELECT master_onion FROM registry_frontend WHERE id = 1") || return 1
  if [ -z "$master" ]; then
    echo "registry_frontend has no row yet: the frontend publishes it once it runs (docker compose logs frontend)" >"$ERR_FILE"
    return 1
  fi
  valid_onion "$master" || { echo "registry_frontend holds \"$master\", which is not a v3 onion address" >"$ERR_FILE"; return 1; }
}

join() {
  [ "${1:-}" = --out ] && [ -n "${2:-}" ] || die "usage: cluster join --out FILE"
  out=$2
  ERR_FILE=$(dirname "$out")/.psql.err
  database_setup
  wait_for "the frontend's master onion address (registry_frontend)" read_master
  printf 'MASTER_ONION_ADDRESS=%s\n' "$master" >"$out.tmp" || die "cannot write $out.tmp: mount a volume writable by $(id -un) at $(dirname "$out")"
  chmod 0644 "$out.tmp"
  mv "$out.tmp" "$out"
  say "wrote $out: this backend serves the master onion $master"
}

# --- frontend ---------------------------------------------------------------------------------
# The master key: made once (onionbalance-config), then kept. Its address is computed from the
# key at every start, so the key file is the only thing to back up.
ensure_master_key() {
  [ -w "$KEY_DIR" ] || die "$KEY_DIR is not writable by $(id -un) (uid $(id -u)): fix the frontend-master-key volume's owner (chown -R $(id -u):$(id -g))"
  if [ ! -f "$KEY_DIR/master.key" ]; then
    say "no master key in $KEY_DIR: making one (the cluster's onion address; back up this volume)"
    rm -rf "$RUN_DIR/keygen"
    onionbalance-config --hs-version v3 -n 1 --no-interactive --output "$RUN_DIR/keygen" >"$RUN_DIR/keygen.log" 2>&1 \
      || { cat "$RUN_DIR/keygen.log" >&2; die "onionbalance-config could not make a master key (its messages above)"; }
    made=$(find "$RUN_DIR/keygen" -name '*.key' | head -n 1)
    [ -n "$made" ] || die "onionbalance-config wrote no *.key file into $RUN_DIR/keygen"
    (umask 077 && cp "$made" "$KEY_DIR/master.key.tmp")
    mv "$KEY_DIR/master.key.tmp" "$KEY_DIR/master.key"
    rm -rf "$RUN_DIR/keygen" "$RUN_DIR/keygen.log"
  fi
  MASTER=$(python3 -c '
import sys
from cryptography.hazmat.primitives import serialization
from stem.descriptor.hidden_service import HiddenServiceDescriptorV3
key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), password=None)
raw = key.public_key().public_bytes(encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)
print(HiddenServiceDescriptorV3.address_from_identity_key(raw))' "$KEY_DIR/master.key" 2>"$ERR_FILE") \
    || die "$KEY_DIR/master.key is not an ed25519 private key in PEM: restore it from your backup ($(tr '\n' ' ' <"$ERR_FILE" | cut -c1-200))"
  valid_onion "$MASTER" || die "$KEY_DIR/master.key gives \"$MASTER\", not a v3 onion address"
  say "master onion: $MASTER"
}

start_tor() {
  cat >"$RUN_DIR/torrc" <<TORRC
DataDirectory /var/lib/tor
Log notice stdout
SocksPort 0
ControlPort $CONTROL_PORT
CookieAuthentication 1
CookieAuthFile $RUN_DIR/control.authcookie
PidFile $RUN_DIR/tor.pid
%include /etc/tor/torrc.d/*.conf
TORRC
  tor --verify-config --hush -f "$RUN_DIR/torrc" >"$RUN_DIR/verify.log" 2>&1 \
    || { cat "$RUN_DIR/verify.log" >&2; die "tor rejected the frontend's configuration (messages above; check the files in /etc/tor/torrc.d)"; }
  tor -f "$RUN_DIR/torrc" &
  TOR_PID=$!
  deadline=$(( $(date +%s) + 60 ))
  until [ -s "$RUN_DIR/control.authcookie" ]; do
    alive "$TOR_PID" || die "tor stopped during its start (its log above)"
    [ "$(date +%s)" -lt "$deadline" ] || die "tor wrote no control cookie within 60 s (its log above)"
    sleep 1
  done
}

# alive PID: the child runs (a zombie, ended but not yet reaped, does not count).
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1)" != Z ]; }

# stop_child PID: SIGTERM, then SIGKILL after 10 s (onionbalance may hang in a loop that ignores TERM).
stop_child() {
  kill -TERM "$1" 2>/dev/null || return 0
  n=0
  while alive "$1" && [ "$n" -lt 20 ]; do sleep 0.5; n=$(( n + 1 )); done
  if alive "$1"; then kill -KILL "$1" 2>/dev/null || true; fi
  wait "$1" 2>/dev/null || true
}

publish_master() { sql "INSERT INTO registry_frontend (id, master_onion, updated_at) VALUES (1, '$MASTER', now())
  ON CONFLICT (id) DO UPDATE SET master_onion = EXCLUDED.master_onion, updated_at = now()" >/dev/null; }

# Sets BACKENDS: the onions seen in the last day, at most MAX_BACKENDS (the most recently seen).
read_backends() {
  rows=$(sql "SELECT onion FROM (SELECT onion FROM registry_backends WHERE last_seen > now() - interval '1 day'
    ORDER BY last_seen DESC LIMIT $(( MAX_BACKENDS + 1 ))) AS recent ORDER BY onion") || return 1
  BACKENDS= count=0
  for onion in $rows; do
    case $onion in *.onion) ;; *) onion=$onion.onion ;; esac
    if ! valid_onion "$onion"; then say "ignoring \"$onion\" in registry_backends: not a v3 onion address"; continue; fi
    count=$(( count + 1 ))
    if [ "$count" -gt "$MAX_BACKENDS" ]; then
      say "more than $MAX_BACKENDS backends were seen in the last day: onionbalance serves $MAX_BACKENDS of them (remove old ones: README, Cluster)"
      break
    fi
    BACKENDS="$BACKENDS $onion"
  done
  BACKENDS=${BACKENDS# }
}

write_onionbalance_config() {
  {
    echo "# Written by tor/cluster.sh from registry_backends; rewritten when the backends change."
    echo "services:"
    echo "  - key: $KEY_DIR/master.key"
    echo "    instances:"
    i=0
    for onion in $BACKENDS; do i=$(( i + 1 )); echo "      - {address: $onion, name: backend-$i}"; done
  } >"$RUN_DIR/config.yaml.tmp"
  mv "$RUN_DIR/config.yaml.tmp" "$RUN_DIR/config.yaml"
}

OB_PID=
start_onionbalance() {
  write_onionbalance_config
  onionbalance --hs-version v3 -i "${CONTROL_PORT%:*}" -p "${CONTROL_PORT#*:}" -c "$RUN_DIR/config.yaml" &
  OB_PID=$!
  printf '%s\n' "$BACKENDS" >"$RUN_DIR/backends"
  say "onionbalance started for $MASTER with $(echo "$BACKENDS" | wc -w) backend(s): $BACKENDS"
}

shutdown() {
  say "stopping"
  if [ -n "$OB_PID" ]; then stop_child "$OB_PID"; fi
  stop_child "$TOR_PID"
  exit 0
}

frontend() {
  [ -w "$RUN_DIR" ] || die "$RUN_DIR is not writable: compose.cluster.yaml mounts a tmpfs there"
  ERR_FILE=$RUN_DIR/psql.err
  rm -f "$RUN_DIR/backends" "$RUN_DIR/status.sock" "$RUN_DIR/control.authcookie"
  export ONIONBALANCE_STATUS_SOCKET_LOCATION=$RUN_DIR/status.sock
  database_setup
  ensure_master_key
  start_tor
  trap shutdown TERM INT
  wait_for "the registry_frontend table, to publish the master address" publish_master
  say "published the master address in registry_frontend: backends can join"
  current= started_at=0
  while :; do
    alive "$TOR_PID" || { [ -z "$OB_PID" ] || stop_child "$OB_PID"; die "tor stopped (its log above); the container restarts"; }
    if read_backends && publish_master; then
      if [ -z "$BACKENDS" ]; then
        [ -n "$current" ] || say "no backend has registered in registry_backends yet: waiting (a backend's registry adds itself once its onion exists)"
      elif [ "$BACKENDS" != "$current" ] || [ -z "$OB_PID" ] || ! alive "$OB_PID"; then
        if [ -n "$OB_PID" ]; then
          if alive "$OB_PID"; then say "the backends changed: restarting onionbalance"; else say "onionbalance stopped: starting it again"; fi
          stop_child "$OB_PID"
          # A crash loop must not spin: at most one start every 10 s.
          while [ $(( $(date +%s) - started_at )) -lt 10 ]; do sleep 1; done
        fi
        current=$BACKENDS started_at=$(date +%s)
        start_onionbalance
      fi
    else
      say "cannot read the backends now: $(why_failed); onionbalance keeps running with the last set"
    fi
    sleep "$POLL_SECONDS" & wait $!
  done
}

# What onionbalance's status socket says (JSON), or a failure with the reason on stderr.
read_status() {
  python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(3)
s.connect(sys.argv[1])
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(data.decode())' "$RUN_DIR/status.sock"
}

status() {
  [ -S "$RUN_DIR/status.sock" ] || die "onionbalance is not running yet (no status socket): docker compose logs frontend"
  read_status
}

# --- health -----------------------------------------------------------------------------------
health() {
  [ -S "$RUN_DIR/status.sock" ] || { echo "unhealthy: onionbalance is not running yet (no backends known, or it is starting)"; exit 1; }
  local answer
  answer=$(read_status 2>&1) || { echo "unhealthy: onionbalance does not answer on its status socket (${answer##*$'\n'})"; exit 1; }
  STATUS_JSON=$answer exec python3 - <<'PY'
import datetime, json, os, sys
try:
    status = json.loads(os.environ['STATUS_JSON'])
except Exception as e:
    print('unhealthy: onionbalance answered no JSON on its status socket (%s)' % e)
    sys.exit(1)
for service in status.get('services', []):
    with_descriptor = [i for i in service['instances'] if i.get('descriptorReceived') or i.get('received')]
    attempt = service.get('publishAttemptFirstDescriptor')
    if not with_descriptor:
        print('unhealthy: no backend descriptor fetched yet (%d backend(s) configured)' % len(service['instances']))
        sys.exit(1)
    if attempt is None:
        print('unhealthy: the master descriptor is not published yet')
        sys.exit(1)
    age = (datetime.datetime.utcnow() - datetime.datetime.strptime(attempt, '%Y-%m-%d %H:%M:%S')).total_seconds()
    if age > 3 * 3600:
        print('unhealthy: the master descriptor was last published %ds ago' % age)
        sys.exit(1)
    print('healthy: serving %s with %d of %d backend(s) (published %ds ago)' % (service['onionAddress'], len(with_descriptor), len(service['instances']), age))
    sys.exit(0)
print('unhealthy: onionbalance reports no service')
sys.exit(1)
PY
}

case $ROLE in
  frontend) frontend ;;
  join) shift; join "$@" ;;
  health) health ;;
  status) status ;;
  *) die "unknown command $ROLE (frontend, join --out FILE, health or status)" ;;
esac
