#!/bin/sh
# Healthchecks of the private test network's tors (test/compose.testnet.yaml).
#
#   healthcheck.sh router NICK      healthy while it has a consensus that is still valid and lists
#                                   every router of the network; for the authorities, the moment
#                                   the rest may start
#   healthcheck.sh client           healthy once tor has bootstrapped (its SocksPort works)
#   healthcheck.sh echo             healthy once the echo server listens and the onion-service
#                                   descriptor is stored on the network's directories: a client
#                                   can connect now
set -eu

state=${TESTNET_STATE:-/var/lib/tor-testnet}

bootstrapped() { grep -q 'Bootstrapped 100%' "$state/$1/notice.log"; }

case ${1:-} in
  router)
    consensus=$state/${2:?usage: healthcheck.sh router NICK}/cached-microdesc-consensus
    [ -f "$consensus" ] || exit 1
    valid_until=$(sed -n 's/^valid-until //p' "$consensus")
    [ "$(date -u -d "$valid_until" +%s)" -gt "$(date +%s)" ] &&
      [ "$(grep -c '^r ' "$consensus")" -ge "$(cat "$state/routers")" ]
    ;;
  client) bootstrapped client ;;
  echo)
    [ -s "$state/echo/hs/hostname" ] &&
      grep -q 'HS descriptor stored successfully' "$state/echo/rend.log" &&
      perl -MIO::Socket::INET -e 'IO::Socket::INET->new("127.0.0.1:7007") or exit 1'
    ;;
  *) echo 'usage: healthcheck.sh router NICK | client | echo' >&2; exit 2 ;;
esac
