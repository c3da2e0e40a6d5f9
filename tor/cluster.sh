#!/bin/sh
# The cluster's tor side (compose.cluster.yaml), in the frontend image (tor/frontend.Dockerfile):
#
#   cluster frontend     run the frontend: tor (a ControlPort, no onion service of its own) and
#                        onionbalance (tor/onionbalance-frontend), which publishes the master
#                        onion's descriptor built from the backends' introduction points. The
#                        backends are read from PostgreSQL every CLUSTER_POLL_SECONDS: those whose
#                        registry holds a live lease (registry_backends, written by each registry
#                        at every lease renewal), within CLUSTER_LEASE_GRACE_SECONDS, and that are
#                        not drained. When that set changes onionbalance reloads (SIGHUP).
#                        The master address is published to registry_frontend for the backends.
#   cluster join --out FILE
#                        a backend's one-shot before its tor starts: waits for the frontend's
#                        master address in registry_frontend and writes MASTER_ONION_ADDRESS=<addr>
#                        to FILE (tor/entrypoint.sh then writes ob_config into the onion's folder)
#   cluster health       the frontend's HEALTHCHECK: onionbalance runs, knows a backend's
#                        descriptor and has published the master descriptor
#   cluster status       onionbalance's own status (JSON): each backend's descriptor and when its
#                        introduction points last changed, the master descriptor's last publication
#                        (times in UTC).
#   cluster backends     every backend the database knows: serving, in its grace, lapsed or
#                        drained, its registry instance, and whether onionbalance serves it now
#   cluster drain ONION [--reason TEXT] [--wait] [--force]
#                        takes a backend out of the master descriptor (its registry goes on serving
#                        whoever still reaches it) and returns once the frontend published without
#                        it, saying until when peers may still hold a descriptor that lists it;
#                        --wait waits for that too. --force drains the last serving backend.
#   cluster undrain ONION
#                        brings a drained backend back; returns once it is published again
#   cluster forget ONION removes a backend from the database (after its registry stopped for good;
#                        a registry that runs announces itself again)
#
# Environment:
#   CLUSTER_DATABASE_URL            postgres://user@host:port/database (required; no password in it)
#   CLUSTER_DATABASE_PASSWORD_FILE  a file holding the password (else PGPASSWORD, or none)
#   CLUSTER_POLL_SECONDS            how often the frontend re-reads the backends (10)
#   CLUSTER_LEASE_GRACE_SECONDS     how long past its lease a backend stays served (30): a registry
#                                   upgrade (a few seconds away) never leaves the descriptor
#   CLUSTER_PUBLISH_WAIT_SECONDS    how long drain and undrain wait for the publication (300)
#   CLUSTER_WAIT_SECONDS            how long a wait for the database, its tables or the master
#                                   address may take before giving up with the reason (600)
# The master key lives in /var/lib/onionbalance/master.key (the frontend-master-key volume), made
# at the first start and never again: it IS the cluster's address. Back it up.
set -eu

KEY_DIR=/var/lib/onionbalance
RUN_DIR=/run/frontend
CONTROL_PORT=127.0.0.1:9051
POLL_SECONDS=${CLUSTER_POLL_SECONDS:-10}
WAIT_SECONDS=${CLUSTER_WAIT_SECONDS:-600}
GRACE_SECONDS=${CLUSTER_LEASE_GRACE_SECONDS:-30}
PUBLISH_WAIT_SECONDS=${CLUSTER_PUBLISH_WAIT_SECONDS:-300}
# SQL: a registry_backends row whose registry holds its lease, or lost it within the grace.
LEASED="lease_until > now() - make_interval(secs => $GRACE_SECONDS)"
# onionbalance 0.2.2 takes two introduction points per backend; tor's 50,000-byte descriptor
# limit leaves room for 8 backends (~2.7 KB per introduction point).
MAX_BACKENDS=8
ROLE=${1:-frontend}

say() { printf 'cluster %s: %s\n' "$ROLE" "$*"; }
die() { printf 'cluster %s: error: %s\n' "$ROLE" "$*" >&2; exit 1; }

for setting in CLUSTER_POLL_SECONDS=$POLL_SECONDS CLUSTER_LEASE_GRACE_SECONDS=$GRACE_SECONDS CLUSTER_PUBLISH_WAIT_SECONDS=$PUBLISH_WAIT_SECONDS; do
  case ${setting#*=} in
    '' | *[!0-9]*) die "${setting%%=*} must be a whole number of seconds, got \"${setting#*=}\": fix it in the frontend's environment" ;;
  esac
done

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

# Sets BACKENDS: the backends to serve, sorted (a stable config): those whose registry holds a
# live lease or lost it less than GRACE_SECONDS ago, not drained; at most MAX_BACKENDS, the most
# recently renewed first (a stale row never pushes out a live backend).
read_backends() {
  rows=$(sql "SELECT onion FROM registry_backends
    WHERE drained_at IS NULL AND $LEASED
    ORDER BY lease_until DESC, onion") || return 1
  BACKENDS= count=0
  for onion in $rows; do
    case $onion in *.onion) ;; *) onion=$onion.onion ;; esac
    if ! valid_onion "$onion"; then say "ignoring \"$onion\" in registry_backends: not a v3 onion address"; continue; fi
    count=$(( count + 1 ))
    if [ "$count" -gt "$MAX_BACKENDS" ]; then
      say "more than $MAX_BACKENDS backends are serving: onionbalance serves the $MAX_BACKENDS renewed last (a descriptor holds no more; drain one: docs/CLUSTER.md)"
      break
    fi
    BACKENDS="$BACKENDS $onion"
  done
  BACKENDS=$(printf '%s\n' $BACKENDS | sort | tr '\n' ' ')
  BACKENDS=${BACKENDS% }
  BACKENDS=${BACKENDS# }
}

# what_changed OLD NEW: "+onion" for each backend added, "-onion" for each left out.
what_changed() {
  out=
  for o in $2; do case " $1 " in *" $o "*) ;; *) out="$out +$o" ;; esac; done
  for o in $1; do case " $2 " in *" $o "*) ;; *) out="$out -$o" ;; esac; done
  printf '%s' "${out# }"
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
  printf '%s\n' "$BACKENDS" >"$RUN_DIR/backends"   # what `cluster backends` calls published
}

OB_PID=
start_onionbalance() {
  write_onionbalance_config
  onionbalance-frontend --hs-version v3 -i "${CONTROL_PORT%:*}" -p "${CONTROL_PORT#*:}" -c "$RUN_DIR/config.yaml" &
  OB_PID=$!
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
  printf '%s\n' "$$" >"$RUN_DIR/frontend.pid"
  # `cluster drain` and `undrain` poke the loop (SIGUSR1) so that it reads the backends at once.
  trap : USR1
  current= started_at=0 warned_empty=
  while :; do
    alive "$TOR_PID" || { [ -z "$OB_PID" ] || stop_child "$OB_PID"; die "tor stopped (its log above); the container restarts"; }
    if read_backends && publish_master; then
      if [ -z "$BACKENDS" ]; then
        if [ -z "$current" ]; then
          say "no backend serves yet (none with a live lease in registry_backends): waiting (a backend's registry adds itself once its onion exists)"
        elif [ "$warned_empty" != 1 ]; then
          say "no backend holds a live lease now: onionbalance keeps publishing the last set ($current) rather than nothing (are the registries or their database down? docker compose logs)"
          warned_empty=1
        fi
      elif [ -n "$OB_PID" ] && alive "$OB_PID"; then
        warned_empty=
        if [ "$BACKENDS" != "$current" ]; then
          say "the backends changed ($(what_changed "$current" "$BACKENDS")): onionbalance reloads and publishes the new set"
          write_onionbalance_config
          current=$BACKENDS
          date +%s >"$RUN_DIR/reloaded-at"
          kill -HUP "$OB_PID"
        fi
      else
        warned_empty=
        if [ -n "$OB_PID" ]; then
          say "onionbalance stopped: starting it again"
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
    sleep "$POLL_SECONDS" & wait $! || true
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

# --- operator commands: backends, drain, undrain, forget ---------------------------------------
operator_setup() {
  ERR_FILE=$(mktemp)
  trap 'rm -f "$ERR_FILE"' EXIT
  database_setup
}

need_onion() {
  [ -n "${1:-}" ] || die "usage: cluster $ROLE ONION (the backend's own onion address: cluster backends lists them)"
  case $1 in *.onion) onion=$1 ;; *) onion=$1.onion ;; esac
  valid_onion "$onion" || die "\"$1\" is not a v3 onion address: give the backend's own onion (cluster backends lists them)"
}

backends() {
  operator_setup
  served=$(cat "$RUN_DIR/backends" 2>/dev/null || true)
  rows=$(sql "SELECT onion, CASE WHEN drained_at IS NOT NULL THEN 'drained' WHEN lease_until > now() THEN 'serving'
      WHEN $LEASED THEN 'grace' ELSE 'lapsed' END,
      coalesce(instance_id, '-'), coalesce(round(extract(epoch FROM lease_until - now()))::text, '-'),
      coalesce(to_char(drained_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '-'), coalesce(drain_reason, '')
    FROM registry_backends ORDER BY onion") || die "cannot read registry_backends: $(why_failed)"
  printf '%-62s %-8s %-9s %-36s %-6s %s\n' ONION STATE PUBLISHED INSTANCE LEASE DRAINED
  printf '%s\n' "$rows" | while IFS='|' read -r o state instance lease drained reason; do
    [ -n "$o" ] || continue
    case " $served " in *" $o "*) published=yes ;; *) published=no ;; esac
    printf '%-62s %-8s %-9s %-36s %-6s %s\n' "$o" "$state" "$published" "$instance" "${lease}s" "$drained${reason:+ ($reason)}"
  done
}

# poke_frontend: the frontend loop reads the backends now instead of at its next poll.
poke_frontend() {
  pid=$(cat "$RUN_DIR/frontend.pid" 2>/dev/null || true)
  [ -n "$pid" ] && kill -USR1 "$pid" 2>/dev/null || say "the frontend loop is not running here: the change takes effect when it runs (docker compose logs frontend)"
}

# published_since EPOCH WANT GONE: onionbalance published both master descriptors after EPOCH with
# WANT among its backends (or GONE not among them).
published_since() {
  [ -S "$RUN_DIR/status.sock" ] || return 1
  answer=$(read_status 2>/dev/null) || return 1
  STATUS_JSON=$answer python3 - "$1" "$2" "$3" <<'PY'
import datetime, json, os, sys
since, want, gone = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def epoch(t):
    return None if t is None else datetime.datetime.strptime(t, '%Y-%m-%d %H:%M:%S').replace(tzinfo=datetime.timezone.utc).timestamp()
for service in json.loads(os.environ['STATUS_JSON']).get('services', []):
    onions = [i['onionAddress'] for i in service['instances']]
    first, second = epoch(service.get('publishAttemptFirstDescriptor')), epoch(service.get('publishAttemptSecondDescriptor'))
    if want and want not in onions or gone and gone in onions:
        sys.exit(1)
    if first is None or second is None or first < since or second < since:
        sys.exit(1)
    print(int(max(first, second)))
    sys.exit(0)
sys.exit(1)
PY
}

# wait_published WANT GONE: until the frontend published after now without GONE / with WANT.
wait_published() {
  since=$(date +%s)
  deadline=$(( since + PUBLISH_WAIT_SECONDS ))
  until PUBLISHED_AT=$(published_since "$since" "$1" "$2"); do
    [ "$(date +%s)" -lt "$deadline" ] || die "the frontend has not published the change within ${PUBLISH_WAIT_SECONDS}s: see docker compose logs frontend (the change stays in the database and is published when the frontend can)"
    sleep 2
  done
}

# next_time_period EPOCH: when tor's time period after EPOCH begins, plus one consensus interval
# (tor measures a cached descriptor's age by its consensus, which may be that late). The real
# network: 24 h periods starting 12:00 UTC, consensus every hour; the private test network
# (ONIONBALANCE_TESTNET=1): 8 minutes from minute 4, every 20 s.
next_time_period() {
  if [ "${ONIONBALANCE_TESTNET:-}" = 1 ]; then length=8 offset=4 interval=20; else length=1440 offset=720 interval=3600; fi
  minutes=$(( $1 / 60 - offset ))
  echo $(( ((minutes / length + 1) * length + offset) * 60 + interval ))
}

utc() { date -u -d "@$1" '+%Y-%m-%d %H:%M:%S UTC'; }

drain() {
  reason= wait_expiry= force=
  need_onion "${1:-}"; shift
  while [ $# -gt 0 ]; do
    case $1 in
      --reason) [ $# -ge 2 ] || die "--reason needs a text"; reason=$2; shift 2 ;;
      --wait) wait_expiry=1; shift ;;
      --force) force=1; shift ;;
      *) die "unknown option $1 (cluster drain ONION [--reason TEXT] [--wait] [--force])" ;;
    esac
  done
  operator_setup
  others=$(sql "SELECT count(*) FROM registry_backends WHERE onion <> '$onion' AND drained_at IS NULL
    AND $LEASED") || die "cannot read registry_backends: $(why_failed)"
  if [ "$others" = 0 ] && [ -z "$force" ]; then
    die "$onion is the only backend serving: draining it would leave the master onion with nothing to publish (the frontend keeps the last set). Start another backend first, or add --force"
  fi
  quoted=$(printf '%s' "$reason" | sed "s/'/''/g")
  done_row=$(sql "UPDATE registry_backends SET drained_at = coalesce(drained_at, now()), drain_reason = NULLIF('$quoted', '') WHERE onion = '$onion' RETURNING onion") \
    || die "cannot write registry_backends: $(why_failed)"
  [ -n "$done_row" ] || die "no backend $onion in registry_backends: cluster backends lists the backends the database knows"
  say "$onion is drained in the database: waiting for the frontend to publish without it"
  poke_frontend
  wait_published "" "$onion"
  until_ts=$(next_time_period "$PUBLISHED_AT")
  say "published without $onion at $(utc "$PUBLISHED_AT"). Peers whose tor fetched the master descriptor before then may use $onion's introduction points until $(utc "$until_ts") (tor keeps a descriptor until the next time period begins), or until they all fail. Its registry keeps serving them; stopping its tor before then makes those peers try another backend's introduction points (docs/CLUSTER.md: drain)."
  if [ -n "$wait_expiry" ]; then
    while [ "$(date +%s)" -lt "$until_ts" ]; do
      say "waiting until $(utc "$until_ts") ($(( until_ts - $(date +%s) ))s)"
      left=$(( until_ts - $(date +%s) )); [ "$left" -gt 60 ] && left=60
      [ "$left" -gt 0 ] && sleep "$left"
    done
    say "no peer's tor holds a descriptor that lists $onion any more: its tor can stop"
  fi
}

undrain() {
  need_onion "${1:-}"
  [ $# -le 1 ] || die "usage: cluster undrain ONION"
  operator_setup
  done_row=$(sql "UPDATE registry_backends SET drained_at = NULL, drain_reason = NULL WHERE onion = '$onion'
    RETURNING $LEASED") || die "cannot write registry_backends: $(why_failed)"
  [ -n "$done_row" ] || die "no backend $onion in registry_backends: cluster backends lists the backends the database knows"
  if [ "$done_row" != t ]; then
    say "$onion is no longer drained, but its registry holds no live lease: it is published once its registry runs again"
    return 0
  fi
  say "$onion is no longer drained: waiting for the frontend to publish it"
  poke_frontend
  wait_published "$onion" ""
  say "published with $onion at $(utc "$PUBLISHED_AT")"
}

forget() {
  need_onion "${1:-}"
  [ $# -le 1 ] || die "usage: cluster forget ONION"
  operator_setup
  state=$(sql "SELECT $LEASED FROM registry_backends WHERE onion = '$onion'") \
    || die "cannot read registry_backends: $(why_failed)"
  [ -n "$state" ] || die "no backend $onion in registry_backends: cluster backends lists the backends the database knows"
  [ "$state" = f ] || die "$onion's registry still holds a lease: stop its registry first (it would announce itself again), then forget it"
  sql "DELETE FROM registry_backends WHERE onion = '$onion'" >/dev/null || die "cannot write registry_backends: $(why_failed)"
  poke_frontend
  say "forgot $onion"
}

# --- health -----------------------------------------------------------------------------------
health() {
  [ -S "$RUN_DIR/status.sock" ] || { echo "unhealthy: onionbalance is not running yet (no backends known, or it is starting)"; exit 1; }
  local answer
  answer=$(read_status 2>&1) || { echo "unhealthy: onionbalance does not answer on its status socket (${answer##*$'\n'})"; exit 1; }
  STATUS_JSON=$answer RUN_DIR=$RUN_DIR exec python3 - <<'PY'
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
        # A reload (the backends changed) starts onionbalance's services afresh: the descriptor
        # published before stays on the HSDirs until the new one replaces it within a minute.
        try:
            reloaded = os.path.getmtime(os.environ['RUN_DIR'] + '/reloaded-at')
        except OSError:
            reloaded = 0
        if datetime.datetime.now().timestamp() - reloaded < 180:
            print('healthy: serving %s, publishing a changed set of %d backend(s)' % (service['onionAddress'], len(service['instances'])))
            sys.exit(0)
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
  backends) backends ;;
  drain) shift; drain "$@" ;;
  undrain) shift; undrain "$@" ;;
  forget) shift; forget "$@" ;;
  *) die "unknown command $ROLE (frontend, join --out FILE, health, status, backends, drain, undrain or forget)" ;;
esac
