#!/bin/sh
# One-shot start of the private Tor test network (test/compose.testnet.yaml, service testnet-init).
#
# Makes the keys of the directory authorities and relays, each router's torrc, and testnet.conf:
# the torrc.d file that makes any tor that includes it (ours and the stack's) a member of this
# network and never of the public one. Keys are made here, at start, and are never committed.
#
# Runs as root only to hand the two fresh volumes to debian-tor, then re-runs itself as
# debian-tor. Idempotent: while the node list is unchanged, keys are kept (so a second
# `compose up` does not pull keys from under running routers); `down -v` gives a fresh network.
#
# Environment (test/compose.testnet.yaml sets it):
#   TESTNET_AUTHORITY_<nick>=<ip>  a directory authority (also a relay); three or more
#   TESTNET_RELAY_<nick>=<ip>      a relay (no directory cache; see below); two or more
#   TESTNET_FIRST_CONSENSUS_IN     seconds from the end of this script to the first consensus
#   TESTNET_STATE                  data directories of all test-network tors (testnet-state)
#   TESTNET_TORRC_D                where testnet.conf goes (testnet-torrc, every tor's torrc.d)
set -eu

state=${TESTNET_STATE:-/var/lib/tor-testnet}
torrc_d=${TESTNET_TORRC_D:-/etc/tor/torrc.d}
# "nick=ip" words, sorted so that the same network always gives the same files.
routers_of() { env | sed -n "s/^TESTNET_$1_\([A-Za-z0-9]\{1,19\}\)=\([0-9.]\{7,15\}\)\$/\1=\2/p" | sort; }
authorities=$(routers_of AUTHORITY)
relays=$(routers_of RELAY)
or_port=9001
dir_port=9030
# Voting schedule (seconds). The first consensus becomes valid first_consensus_in seconds after
# this script ends; its vote happens vote_delay + dist_delay earlier (6 s after the routers
# start), late enough for every relay to have uploaded its descriptor. A miss costs a whole
# interval (the authorities' healthchecks then wait for the next consensus), so a slow machine
# may want a larger TESTNET_FIRST_CONSENSUS_IN. The delays are short: all votes travel on one
# host.
interval=20
vote_delay=2
dist_delay=2
first_consensus_in=${TESTNET_FIRST_CONSENSUS_IN:-10}

log() { printf 'testnet-init: %s\n' "$*"; }
count() { printf '%s\n' "$1" | grep -c . || true; }
words() { printf '%s\n' "$1" | tr '\n' ' '; }

[ "$(count "$authorities")" -ge 3 ] ||
  { log "set at least three TESTNET_AUTHORITY_<nick>=<ip> (found: $(words "$authorities"))"; exit 1; }
[ "$(count "$relays")" -ge 2 ] ||
  { log "set two or more TESTNET_RELAY_<nick>=<ip> (found: $(words "$relays"))"; exit 1; }

if [ "$(id -u)" = 0 ]; then
  chown debian-tor:debian-tor "$state" "$torrc_d"
  exec setpriv --reuid=debian-tor --regid=debian-tor --init-groups -- /bin/sh "$0" "$@"
fi
umask 077

# Makes a relay identity (RSA and ed25519 keys, and the `fingerprint` file "Nick HEX...") in data
# directory $1 for nickname $2. tor does this without touching the network; keys made now also
# make the router's first start faster.
make_relay_keys() {
  tor --ignore-missing-torrc -f /dev/null --DisableNetwork 1 --ORPort 1 --SocksPort 0 \
    --DataDirectory "$1" --Nickname "$2" --GeoIPFile /dev/null --GeoIPv6File /dev/null \
    --Log 'err stderr' --list-fingerprint
}

# Makes the v3 authority identity, signing key and certificate for $1 (nick) at address $2.
make_authority_keys() {
  dir=$state/$1
  pass=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  printf '%s\n' "$pass" | tor-gencert --create-identity-key --passphrase-fd 0 -m 12 \
    -a "$2:$dir_port" \
    -i "$dir/keys/authority_identity_key" \
    -s "$dir/keys/authority_signing_key" \
    -c "$dir/keys/authority_certificate" >/dev/null
}

spec="authorities $(words "$authorities")relays $(words "$relays")"
if [ -f "$state/spec" ] && [ "$(cat "$state/spec")" = "$spec" ] && [ -f "$torrc_d/testnet.conf" ]
then
  log "keeping the keys made earlier (docker compose down -v for a fresh network)"
  fresh=0
else
  find "$state" "$torrc_d" -mindepth 1 -delete
  fresh=1
fi

# Key generation (RSA 3072 for each authority) takes most of this script's time: one job per node.
if [ "$fresh" = 1 ]; then
  jobs=
  for entry in $authorities; do
    nick=${entry%%=*} ip=${entry#*=}
    mkdir -p "$state/$nick/keys"
    { make_authority_keys "$nick" "$ip" && make_relay_keys "$state/$nick" "$nick"; } >/dev/null &
    jobs="$jobs $!"
  done
  for entry in $relays; do
    nick=${entry%%=*}
    mkdir -p "$state/$nick"
    make_relay_keys "$state/$nick" "$nick" >/dev/null &
    jobs="$jobs $!"
  done
  for job in $jobs; do
    wait "$job" || { log "making keys failed"; exit 1; }
  done
fi

dir_authority_lines=
hsdirs=
for entry in $authorities; do
  nick=${entry%%=*} ip=${entry#*=}
  v3ident=$(sed -n 's/^fingerprint //p' "$state/$nick/keys/authority_certificate")
  fingerprint=$(cut -d' ' -f2- "$state/$nick/fingerprint" | tr -d ' ')
  dir_authority_lines="${dir_authority_lines}DirAuthority $nick orport=$or_port no-v2 v3ident=$v3ident $ip:$dir_port $fingerprint
"
  hsdirs=${hsdirs:+$hsdirs,}\$$fingerprint
done
routers=$(( $(count "$authorities") + $(count "$relays") ))

# Written to a temporary name and renamed: a tor that starts meanwhile never reads half a file.
write() { cat >"$1.tmp" && chmod 0644 "$1.tmp" && mv "$1.tmp" "$1"; }

write "$torrc_d/testnet.conf" <<CONF
# Made by test/testnet/init.sh for one run of the end-to-end tests. Including this file makes a
# tor a member of the private test network: these authorities replace the public network's
# authorities and fallback directories, so that tor never contacts the public Tor network.
TestingTorNetwork 1
UseDefaultFallbackDirs 0
${dir_authority_lines}# A test network has only a handful of routers: build circuits with two thirds of them known.
PathsNeededToBuildCircuits 0.67
# No GeoIP lookups in a test network (saves about 34 MB per tor).
GeoIPFile /dev/null
GeoIPv6File /dev/null
CONF

# The healthchecks count routers in the consensus against this.
printf '%s\n' "$routers" | write "$state/routers"

# Options of every router. Relays have no directory cache (DirCache 0): clients then fetch from
# the authorities, which have the consensus first, and nobody waits for a relay's cache to fill.
router_torrc() { # nick ip
  cat <<TORRC
%include $torrc_d/testnet.conf
Nickname $1
DataDirectory $state/$1
Log notice stdout
SocksPort 0
ORPort $2:$or_port
Address $2
AssumeReachable 1
ExitRelay 0
ExitPolicy reject *:*
ServerDNSDetectHijacking 0
ServerDNSTestAddresses
ContactInfo $1@testnet.invalid
ConnLimit 60
ShutdownWaitLength 2
TORRC
}

# The voting schedule starts at an offset chosen now, just before the authorities start, so that
# the first consensus comes first_consensus_in seconds from now. Computed once here: authorities
# whose offsets differed would never agree on a vote.
offset=$(( ($(date +%s) + first_consensus_in) % interval ))

for entry in $authorities; do
  nick=${entry%%=*} ip=${entry#*=}
  { router_torrc "$nick" "$ip"; cat <<TORRC
DirPort $ip:$dir_port
AuthoritativeDirectory 1
V3AuthoritativeDirectory 1
TestingV3AuthInitialVotingInterval $interval
TestingV3AuthInitialVoteDelay $vote_delay
TestingV3AuthInitialDistDelay $dist_delay
V3AuthVotingInterval $interval
V3AuthVoteDelay $vote_delay
V3AuthDistDelay $dist_delay
V3AuthNIntervalsValid 2
TestingV3AuthVotingStartOffset $offset
# Every router gets the flags a small network needs; only the authorities store onion-service
# descriptors (relays have no directory cache).
TestingDirAuthVoteGuard *
TestingDirAuthVoteExit *
TestingMinExitFlagThreshold 0
TestingDirAuthVoteHSDir $hsdirs
TORRC
  } | write "$state/$nick/torrc"
done
for entry in $relays; do
  nick=${entry%%=*} ip=${entry#*=}
  { router_torrc "$nick" "$ip"; echo 'DirCache 0'; } | write "$state/$nick/torrc"
done

printf '%s\n' "$spec" | write "$state/spec"
log "$routers routers; first consensus expected in ${first_consensus_in}s (voting offset $offset)"
