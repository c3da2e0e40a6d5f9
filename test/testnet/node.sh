#!/bin/sh
# Runs one tor of the private test network in the foreground (test/compose.testnet.yaml).
#
#   node.sh router NICK      an authority or relay; testnet-init wrote its torrc and keys
#   node.sh client           a client with a SocksPort at $TESTNET_SOCKS_ADDRESS:9050
#   node.sh echo             a peer's own onion service: port 7 of the onion is a TCP echo
#                            server; the address is in $TESTNET_STATE/echo/hs/hostname
set -eu

state=${TESTNET_STATE:-/var/lib/tor-testnet}
torrc_d=${TESTNET_TORRC_D:-/etc/tor/torrc.d}
role=${1:?usage: node.sh router NICK | client | echo}

die() { printf 'testnet-%s: %s\n' "$role" "$*" >&2; exit 1; }

[ -f "$torrc_d/testnet.conf" ] || die "$torrc_d/testnet.conf is missing (testnet-init has not run)"

# A network user's (client's or echo service's) data directory, and the start of its torrc. The
# log files are what the healthchecks read; they start empty on every start.
prepare_user() { # nick
  umask 077
  mkdir -p "$state/$1"
  : >"$state/$1/notice.log"
  : >"$state/$1/rend.log"
}
user_torrc() { # nick
  cat <<TORRC
%include $torrc_d/testnet.conf
Nickname $1
DataDirectory $state/$1
Log notice stdout
Log notice file $state/$1/notice.log
ConnLimit 60
TORRC
}

case $role in
  router)
    nick=${2:?usage: node.sh router NICK}
    [ -f "$state/$nick/torrc" ] || die "$state/$nick/torrc is missing (no TESTNET_AUTHORITY_$nick or TESTNET_RELAY_$nick in testnet-init's environment?)"
    exec tor -f "$state/$nick/torrc"
    ;;
  client)
    socks=${TESTNET_SOCKS_ADDRESS:?set TESTNET_SOCKS_ADDRESS to the IP address the SocksPort listens on}
    prepare_user client
    { user_torrc client; cat <<TORRC
SocksPort $socks:9050
# Onion-service client steps, for diagnosing a failed test (docker exec ... cat it).
Log [rend]info file $state/client/rend.log
# A fixed, short circuit-build timeout. Tor waits 3 x this (+1 s) for a RENDEZVOUS2 after an intro
# point acknowledged an INTRODUCE1, and meanwhile parks every new stream to that onion on the same
# circuit; with the default 60 s that is 181 s, e.g. after the stack's tor restarts and a stale
# intro point still acknowledges. Circuits on this network build in milliseconds.
LearnCircuitBuildTimeout 0
CircuitBuildTimeout 5
# Inside the container only, no authentication: the cluster e2e sends SIGNAL NEWNYM here (a fresh
# onion-service client state) once a restarted backend is in the master descriptor.
ControlPort 127.0.0.1:9051
# Reached from the host through a port published on 127.0.0.1 (docker's gateway is private).
SocksPolicy accept private:*
SocksPolicy reject *
TORRC
    } >"$state/client/torrc"
    exec tor -f "$state/client/torrc"
    ;;
  echo)
    prepare_user echo
    { user_torrc echo; cat <<TORRC
SocksPort 0
HiddenServiceDir $state/echo/hs
HiddenServicePort 7 127.0.0.1:7007
# The only trace of a stored descriptor ("HS descriptor stored successfully") is at info level.
Log [rend]info file $state/echo/rend.log
TORRC
    } >"$state/echo/torrc"
    # The echo server: one process per connection, every byte sent back. perl-base is part of
    # every Debian image. tor replaces this shell below; when tor stops, the container ends.
    perl -MIO::Socket::INET -e '
      $SIG{CHLD} = "IGNORE";
      my $l = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 7007,
                                    Listen => 16, ReuseAddr => 1) or die "echo server: $!\n";
      while (1) {
        my $c = $l->accept or next;
        my $pid = fork;
        if (!defined $pid || $pid) { close $c; next }
        close $l;
        while (sysread($c, my $buf, 4096)) { syswrite($c, $buf) or last }
        exit 0;
      }' &
    exec tor -f "$state/echo/torrc"
    ;;
  *) die "unknown role $role (router, client or echo)" ;;
esac
