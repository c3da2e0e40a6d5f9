#!/usr/bin/perl
# A tiny client of tor's control socket (control-spec.txt), for the tor container. perl-base is
# part of every Debian image: no extra package. Two commands:
#
#   tor-control watch    kept running beside tor (the entrypoint starts it): subscribes to HS_DESC
#                        events and records each "HS_DESC UPLOADED" (a directory accepted our onion
#                        service's descriptor) in $TOR_RUN_DIR/hs-desc-uploaded. Tor has no GETINFO
#                        key for "my descriptor is published"; the event is the only sign. The time
#                        alone also goes to descriptor-uploaded in the onion's folder (0640), where
#                        the registry (tor's group, read-only) reads it for its metrics
#                        (registry_onion_descriptor_upload_timestamp_seconds) and `p2p-registry status`.
#   tor-control health   the Docker HEALTHCHECK: exit 0 when tor is serving the onion now, i.e.
#                        tor runs, `hostname` holds a v3 address, tor answers on its control socket,
#                        bootstrap is at 100%, tor thinks the network is up, and a descriptor was
#                        uploaded less than its lifetime (3 h) ago. With DisableNetwork 1 (offline
#                        tests) the network conditions are skipped: tor can never serve there.
#                        Prints one line: "healthy: ..." or "unhealthy: <the reason>".
#
# The control socket ($TOR_RUN_DIR/control) and its cookie are tor's only (0700 directory); the
# entrypoint configures both, so editing torrc.template cannot break this.
use strict;
use warnings;
use IO::Socket::UNIX;

my $run_dir = $ENV{TOR_RUN_DIR} // '/run/tor';
my $hostname_file = $ENV{HOSTNAME_FILE} // '/var/lib/tor/hidden_service/hostname';
my $socket_path = "$run_dir/control";
my $cookie_path = "$run_dir/control.authcookie";
my $uploaded_path = "$run_dir/hs-desc-uploaded";
my $shared_uploaded_path = $ENV{DESCRIPTOR_UPLOADED_FILE} // '/var/lib/tor/hidden_service/descriptor-uploaded';
my $watch_pid_path = "$run_dir/watch.pid";
# An onion service descriptor is valid this long (rend-spec: descriptor-lifetime 180 minutes);
# tor uploads a new one every 60-120 minutes and whenever its introduction points change.
my $descriptor_lifetime = 3 * 60 * 60;

# Opens and authenticates a control connection; dies with the reason.
sub control_connect {
  my $socket = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $socket_path)
    or die "tor does not answer on its control socket $socket_path ($!)\n";
  open(my $fh, '<:raw', $cookie_path) or die "cannot read $cookie_path ($!)\n";
  my $cookie = do { local $/; <$fh> };
  close $fh;
  die "$cookie_path is not a 32-byte cookie\n" unless defined $cookie && length($cookie) == 32;
  my @reply = command($socket, 'AUTHENTICATE ' . unpack('H*', $cookie));
  die "tor refused the control cookie: $reply[-1]\n" unless $reply[-1] =~ /^250 /;
  return $socket;
}

# Sends one command; returns its reply lines ("250-key=value" ... "250 OK"), dies on EOF.
sub command {
  my ($socket, $line) = @_;
  print {$socket} "$line\r\n" or die "writing to the control socket failed ($!)\n";
  my @lines;
  while (defined(my $reply = <$socket>)) {
    $reply =~ s/\r?\n\z//;
    push @lines, $reply;
    return @lines if $reply =~ /^\d{3} /;
  }
  die "tor closed the control connection\n";
}

# GETINFO/GETCONF answers as a hash: key => value.
sub values_of {
  my %values;
  for (@_) { $values{$1} = $2 if /^250[- ]([^=]+)=(.*)$/ }
  return %values;
}

sub pid_alive {
  my ($path) = @_;
  open(my $fh, '<', $path) or return 0;
  my $pid = <$fh> // '';
  close $fh;
  chomp $pid;
  return $pid =~ /^\d+$/ && kill(0, $pid);
}

sub write_atomically {
  my ($path, $text, $mode) = @_;
  open(my $fh, '>', "$path.tmp") or die "cannot write $path.tmp ($!)\n";
  print {$fh} $text;
  close $fh or die "cannot write $path.tmp ($!)\n";
  chmod($mode, "$path.tmp") if defined $mode;
  rename("$path.tmp", $path) or die "cannot rename $path.tmp ($!)\n";
}

sub health {
  local $SIG{ALRM} = sub { print "unhealthy: tor's control socket did not answer within 4 s\n"; exit 1 };
  alarm 4;
  my $fail = sub { print "unhealthy: $_[0]\n"; exit 1 };
  pid_alive("$run_dir/tor.pid") or $fail->("tor is not running (no live pid in $run_dir/tor.pid)");
  open(my $fh, '<', $hostname_file) or $fail->("no $hostname_file yet");
  my $onion = <$fh> // '';
  close $fh;
  chomp $onion;
  $onion =~ /^[a-z2-7]{56}\.onion$/ or $fail->("$hostname_file does not hold a v3 onion address");

  my $socket = eval { control_connect() } or $fail->($@ =~ s/\n\z//r);
  my %conf = values_of(command($socket, 'GETCONF DisableNetwork'));
  if (($conf{DisableNetwork} // '0') eq '1') {
    print "healthy: tor running, $onion (DisableNetwork 1: offline, never published)\n";
    exit 0;
  }
  my %info = values_of(command($socket, 'GETINFO status/bootstrap-phase network-liveness'));
  my $phase = $info{'status/bootstrap-phase'} // '';
  my ($progress) = $phase =~ /PROGRESS=(\d+)/;
  my ($summary) = $phase =~ /SUMMARY="([^"]*)"/;
  $progress //= 0;
  $fail->("tor bootstrap at $progress%" . (defined $summary ? " ($summary)" : '')) if $progress < 100;
  $fail->('tor thinks the network is down (network-liveness)') if ($info{'network-liveness'} // '') ne 'up';
  pid_alive($watch_pid_path) or $fail->('the descriptor upload watcher (tor-control watch) is not running');
  my @uploaded = stat($uploaded_path) or $fail->('bootstrapped; the onion descriptor is not uploaded yet');
  my $age = time() - $uploaded[9];
  $fail->(sprintf('the last descriptor upload was %d min ago, past its 3 h lifetime', $age / 60))
    if $age > $descriptor_lifetime;
  print "healthy: serving $onion (bootstrapped; descriptor uploaded ${age}s ago)\n";
  exit 0;
}

sub watch {
  # The entrypoint starts this, then execs tor in its own place: our parent is tor. Stop with it.
  my $tor = getppid();
  write_atomically($watch_pid_path, "$$\n");
  while (getppid() == $tor) {
    my $socket = eval { control_connect() };
    if (!$socket) { select(undef, undef, undef, 0.25); next }    # tor has not opened the socket yet
    my @reply = command($socket, 'SETEVENTS HS_DESC');
    die "tor-control watch: SETEVENTS refused: $reply[-1]\n" unless $reply[-1] =~ /^250 /;
    while (defined(my $line = <$socket>)) {
      # 650 HS_DESC UPLOADED <address> <auth> <hsdir> ...: one directory stored our descriptor.
      next unless $line =~ /^650 HS_DESC UPLOADED (\S+)/;
      write_atomically($uploaded_path, time() . " $1\n");
      # Best effort: the health check reads the record above; this copy only feeds the metrics.
      eval { write_atomically($shared_uploaded_path, time() . "\n", 0640) };
    }
    sleep 1;    # tor closed the connection (restarting or stopping): try again while it lives
  }
  exit 0;
}

my $mode = shift // '';
if ($mode eq 'health') { health() }
elsif ($mode eq 'watch') { watch() }
else { print STDERR "usage: tor-control health | watch\n"; exit 2 }
