#!/bin/sh
# Render /etc/tor/torrc.template into /run/tor/torrc, check it, then run tor in its place.
#
# Template variables (the only ones substituted; any other ${NAME} is an error):
#   HIDDEN_SERVICE_PORT  the onion's virtual port, from TOR_SETTINGS.
# This script never reads config.ini: the `config` one-shot of compose.yaml validates it with the
# server's own parser (`p2p-registry tor-settings`, environment overrides included) and writes
# TOR_SETTINGS, exactly one line HIDDEN_SERVICE_PORT=<digits>; anything else in it is an error.
# Files (all overridable through the environment, for tests):
#   TOR_SETTINGS     /run/registry-config/tor.env  written by the config one-shot, mounted read-only
#   TORRC_TEMPLATE   /etc/tor/torrc.template       the operator's torrc.template, mounted read-only
#   TOR_RUN_DIR      /run/tor                      rendered torrc, pid file, control socket
#   TOR_CLUSTER_SETTINGS  (unset)   a cluster backend only (compose.cluster.yaml): the file that
#                    `cluster join` wrote, exactly one line MASTER_ONION_ADDRESS=<v3>.onion. Then
#                    ob_config (MasterOnionAddress) is written into the onion's folder and
#                    HiddenServiceOnionbalanceInstance 1 added to its block, before tor starts, so
#                    that this onion serves the frontend's address too (Onionbalance v3).
set -eu

TOR_SETTINGS=${TOR_SETTINGS:-/run/registry-config/tor.env}
TORRC_TEMPLATE=${TORRC_TEMPLATE:-/etc/tor/torrc.template}
TOR_RUN_DIR=${TOR_RUN_DIR:-/run/tor}
TORRC=$TOR_RUN_DIR/torrc

say() { printf 'tor-entrypoint: %s\n' "$*"; }
die() { printf 'tor-entrypoint: error: %s\n' "$*" >&2; exit 1; }

# read_settings FILE: sets HIDDEN_SERVICE_PORT from FILE, which must hold exactly that one line
# with digits only (no ini rules, no quoting, no comments: the config one-shot wrote it).
read_settings() {
  HIDDEN_SERVICE_PORT=
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in
      HIDDEN_SERVICE_PORT=*)
        [ -z "$HIDDEN_SERVICE_PORT" ] || die "$1 sets HIDDEN_SERVICE_PORT twice"
        HIDDEN_SERVICE_PORT=${line#HIDDEN_SERVICE_PORT=}
        case $HIDDEN_SERVICE_PORT in
          ''|*[!0-9]*) die "$1: HIDDEN_SERVICE_PORT is not digits only" ;;
        esac
        ;;
      *) die "$1 has a line other than HIDDEN_SERVICE_PORT=<digits> (it is written by the config one-shot: p2p-registry tor-settings)" ;;
    esac
  done <"$1"
  [ -n "$HIDDEN_SERVICE_PORT" ] || die "$1 has no HIDDEN_SERVICE_PORT line"
  if [ "${#HIDDEN_SERVICE_PORT}" -gt 5 ] || [ "$HIDDEN_SERVICE_PORT" -lt 1 ] || [ "$HIDDEN_SERVICE_PORT" -gt 65535 ]; then
    die "$1: HIDDEN_SERVICE_PORT $HIDDEN_SERVICE_PORT is not a port number from 1 to 65535"
  fi
}

# render TEMPLATE: substitute the documented ${NAME}s from the environment; fail on any other
# ${NAME} or an empty value, naming the line.
render() {
  awk -v allowed="HIDDEN_SERVICE_PORT" '
    BEGIN { n = split(allowed, names, " "); for (i = 1; i <= n; i++) ok[names[i]] = 1 }
    {
      line = $0; out = ""
      while (match(line, /\$\{[A-Za-z_][A-Za-z0-9_]*\}/)) {
        name = substr(line, RSTART + 2, RLENGTH - 3)
        if (!(name in ok)) {
          printf "tor-entrypoint: error: %s line %d uses ${%s}, which is not a template variable (known: %s)\n", FILENAME, NR, name, allowed > "/dev/stderr"
          failed = 1; exit 1
        }
        if (ENVIRON[name] == "") {
          printf "tor-entrypoint: error: %s line %d needs ${%s}, which has no value\n", FILENAME, NR, name > "/dev/stderr"
          failed = 1; exit 1
        }
        out = out substr(line, 1, RSTART - 1) ENVIRON[name]
        line = substr(line, RSTART + RLENGTH)
      }
      print out line
    }
    END { if (failed) exit 1 }
  ' "$1"
}

HS_DIR=/var/lib/tor/hidden_service

# join_cluster SETTINGS TORRC: a cluster backend. SETTINGS must hold exactly one line
# MASTER_ONION_ADDRESS=<56 base32 characters>.onion; ob_config is written into HS_DIR and the
# Onionbalance option goes right after the HiddenServiceDir line of HS_DIR in TORRC (the options
# after a HiddenServiceDir line belong to that service).
join_cluster() {
  [ -r "$1" ] || die "cannot read $1: it is written by the backend's join one-shot (cluster join, compose.cluster.yaml), which waits for the frontend's master address; start the cluster with docker compose -f compose.cluster.yaml up"
  master=
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in
      MASTER_ONION_ADDRESS=*) [ -z "$master" ] || die "$1 sets MASTER_ONION_ADDRESS twice"; master=${line#MASTER_ONION_ADDRESS=} ;;
      *) die "$1 has a line other than MASTER_ONION_ADDRESS=<onion> (it is written by cluster join)" ;;
    esac
  done <"$1"
  printf '%s\n' "$master" | grep -Eqx '[a-z2-7]{56}\.onion' || die "$1: MASTER_ONION_ADDRESS \"$master\" is not a v3 onion address"
  grep -qx "HiddenServiceDir $HS_DIR" "$2" || die "$TORRC_TEMPLATE has no line HiddenServiceDir $HS_DIR, which a cluster backend needs"
  printf 'MasterOnionAddress %s\n' "$master" >"$HS_DIR/ob_config.tmp"
  chmod 0640 "$HS_DIR/ob_config.tmp"
  mv "$HS_DIR/ob_config.tmp" "$HS_DIR/ob_config"
  awk -v dir="HiddenServiceDir $HS_DIR" '{ print } $0 == dir { print "HiddenServiceOnionbalanceInstance 1" }' "$2" >"$2.ob"
  mv "$2.ob" "$2"
  say "cluster backend of the master onion $master (ob_config written)"
}

[ -r "$TORRC_TEMPLATE" ] || die "cannot read $TORRC_TEMPLATE: mount the repository's torrc.template there (compose.yaml does)"

[ -r "$TOR_SETTINGS" ] || die "cannot read $TOR_SETTINGS: it is written by compose.yaml's config one-shot (p2p-registry tor-settings), which tor depends on; start the stack with docker compose up (or make up)"
read_settings "$TOR_SETTINGS"
export HIDDEN_SERVICE_PORT

# Volumes made by another image version, or bind mounts, may carry another owner: say how to fix it
# rather than let tor fail with a bare "Permission denied".
for dir in /var/lib/tor /var/lib/tor/hidden_service "$TOR_RUN_DIR"; do
  if [ ! -w "$dir" ]; then
    die "$dir is not writable by $(id -un) (uid $(id -u)). Fix the volume's owner, e.g.
  docker run --rm -v <volume>:/v debian:bookworm-slim chown -R $(id -u):$(id -g) /v
(see docs/OPERATIONS.md, Troubleshooting: permission problems on the volume)"
  fi
done

# A restarted container keeps /run/tor when it is not a tmpfs: start from a clean slate.
rm -f "$TOR_RUN_DIR/tor.pid" "$TOR_RUN_DIR/watch.pid" "$TOR_RUN_DIR/hs-desc-uploaded" "$TOR_RUN_DIR/control"

render "$TORRC_TEMPLATE" > "$TORRC.tmp"
if [ -n "${TOR_CLUSTER_SETTINGS:-}" ]; then
  join_cluster "$TOR_CLUSTER_SETTINGS" "$TORRC.tmp"
else
  # Not (or no longer) a cluster backend: a leftover ob_config would make tor refuse the folder.
  rm -f "$HS_DIR/ob_config"
fi
mv "$TORRC.tmp" "$TORRC"
say "rendered $TORRC from $TORRC_TEMPLATE (HiddenServicePort $HIDDEN_SERVICE_PORT)"

# Plumbing the healthcheck relies on is given here, not in the template, so editing the template
# cannot break it: a pid file, and a control socket with cookie authentication, both in the 0700
# run directory (tor's user only; nothing outside this container can reach them).
set -- -f "$TORRC" --PidFile "$TOR_RUN_DIR/tor.pid" \
  +ControlPort "unix:$TOR_RUN_DIR/control" --CookieAuthentication 1 \
  --CookieAuthFile "$TOR_RUN_DIR/control.authcookie" "$@"

if ! tor --verify-config --hush "$@" >"$TOR_RUN_DIR/verify.log" 2>&1; then
  cat "$TOR_RUN_DIR/verify.log" >&2
  die "tor rejected the configuration rendered from $TORRC_TEMPLATE (messages above)"
fi
say "configuration verified; starting $(tor --version | head -n 1)"
# The upload watcher (tor-control watch) records when a directory accepts our descriptor, which
# the healthcheck reads. It is started first and becomes tor's child when this shell execs tor;
# it ends with tor.
/usr/local/bin/tor-control watch &
exec tor "$@"
