#!/bin/sh
# Render /etc/tor/torrc.template into /run/tor/torrc, check it, then run tor in its place.
#
# Template variables (the only ones substituted; any other ${NAME} is an error):
#   HIDDEN_SERVICE_PORT  the onion's virtual port: config.ini [HiddenService] HiddenServicePort,
#                        or REGISTRY_HIDDENSERVICE_HIDDENSERVICEPORT when set (the environment
#                        wins, as it does for the server).
# Files (all overridable through the environment, for tests):
#   REGISTRY_CONFIG  /etc/p2p-registry/config.ini  the operator's config.ini, mounted read-only
#   TORRC_TEMPLATE   /etc/tor/torrc.template       the operator's torrc.template, mounted read-only
#   TOR_RUN_DIR      /run/tor                      rendered torrc, pid file, bootstrap log
set -eu

REGISTRY_CONFIG=${REGISTRY_CONFIG:-/etc/p2p-registry/config.ini}
TORRC_TEMPLATE=${TORRC_TEMPLATE:-/etc/tor/torrc.template}
TOR_RUN_DIR=${TOR_RUN_DIR:-/run/tor}
TORRC=$TOR_RUN_DIR/torrc

say() { printf 'tor-entrypoint: %s\n' "$*"; }
die() { printf 'tor-entrypoint: error: %s\n' "$*" >&2; exit 1; }

# ini_get FILE SECTION KEY: the value, or nothing. Sections and keys match case-insensitively;
# whole-line ; and # comments are skipped, as are inline ones after whitespace; spaces and
# surrounding quotes are trimmed.
ini_get() {
  awk -v want_section="$2" -v want_key="$3" '
    function trim(s) { sub(/^[ \t\r]+/, "", s); sub(/[ \t\r]+$/, "", s); return s }
    BEGIN { want_section = tolower(want_section); want_key = tolower(want_key) }
    /^[ \t]*[;#]/ { next }
    /^[ \t]*\[/ {
      section = $0
      sub(/^[ \t]*\[/, "", section); sub(/\].*$/, "", section)
      section = tolower(trim(section))
      next
    }
    section == want_section && index($0, "=") > 0 {
      key = tolower(trim(substr($0, 1, index($0, "=") - 1)))
      if (key != want_key) next
      value = substr($0, index($0, "=") + 1)
      sub(/[ \t]+[;#].*$/, "", value)
      value = trim(value)
      if (value ~ /^".*"$/ || value ~ /^\047.*\047$/) value = substr(value, 2, length(value) - 2)
      found = value
    }
    END { if (found != "") print found }
  ' "$1"
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

[ -r "$TORRC_TEMPLATE" ] || die "cannot read $TORRC_TEMPLATE: mount the repository's torrc.template there (compose.yaml does)"

HIDDEN_SERVICE_PORT=${REGISTRY_HIDDENSERVICE_HIDDENSERVICEPORT:-}
if [ -z "$HIDDEN_SERVICE_PORT" ]; then
  [ -r "$REGISTRY_CONFIG" ] || die "cannot read $REGISTRY_CONFIG: create config.ini next to compose.yaml (cp config.ini.example config.ini; \`make up\` does it for you)"
  HIDDEN_SERVICE_PORT=$(ini_get "$REGISTRY_CONFIG" HiddenService HiddenServicePort)
  [ -n "$HIDDEN_SERVICE_PORT" ] || die "config.ini has no [HiddenService] HiddenServicePort: set it to the onion's port (e.g. 80), as in config.ini.example"
fi
case $HIDDEN_SERVICE_PORT in
  ''|*[!0-9]*) die "[HiddenService] HiddenServicePort is '$HIDDEN_SERVICE_PORT': it must be a port number from 1 to 65535" ;;
esac
if [ "$HIDDEN_SERVICE_PORT" -lt 1 ] || [ "$HIDDEN_SERVICE_PORT" -gt 65535 ]; then
  die "[HiddenService] HiddenServicePort is $HIDDEN_SERVICE_PORT: it must be a port number from 1 to 65535"
fi
export HIDDEN_SERVICE_PORT

# Volumes made by another image version, or bind mounts, may carry another owner: say how to fix it
# rather than let tor fail with a bare "Permission denied".
for dir in /var/lib/tor /var/lib/tor/hidden_service "$TOR_RUN_DIR"; do
  if [ ! -w "$dir" ]; then
    die "$dir is not writable by $(id -un) (uid $(id -u)). Fix the volume's owner, e.g.
  docker run --rm -v <volume>:/v debian:bookworm-slim chown -R $(id -u):$(id -g) /v
(see README, troubleshooting: permission problems on the volume)"
  fi
done

# A restarted container keeps /run/tor when it is not a tmpfs: start from a clean slate.
rm -f "$TOR_RUN_DIR/tor.pid" "$TOR_RUN_DIR/bootstrap.log"

render "$TORRC_TEMPLATE" > "$TORRC.tmp"
mv "$TORRC.tmp" "$TORRC"
say "rendered $TORRC from $TORRC_TEMPLATE (HiddenServicePort $HIDDEN_SERVICE_PORT)"

# Plumbing the healthcheck relies on is given here, not in the template, so editing the template
# cannot break it: a pid file, and bootstrap progress (tor's control-domain notices) in a small file.
set -- -f "$TORRC" --PidFile "$TOR_RUN_DIR/tor.pid" +Log "[control]notice file $TOR_RUN_DIR/bootstrap.log" "$@"

if ! tor --verify-config --hush "$@" >"$TOR_RUN_DIR/verify.log" 2>&1; then
  cat "$TOR_RUN_DIR/verify.log" >&2
  die "tor rejected the configuration rendered from $TORRC_TEMPLATE (messages above)"
fi
say "configuration verified; starting $(tor --version | head -n 1)"
exec tor "$@"
