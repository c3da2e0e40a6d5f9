#!/usr/bin/env bash
# Make this Debian machine able to check the monitoring files (make test-monitoring): promtool, from
# Debian's prometheus package (2.42 on bookworm). Idempotent. Run as root. The package's own
# service is not needed, and none is started here (apt-install.sh).
#
#   bash .ci/install-prometheus.sh
set -euo pipefail

say() { printf '[install-prometheus] %s\n' "$*"; }
die() { printf '[install-prometheus] error: %s\n' "$*" >&2; exit 1; }

if command -v promtool >/dev/null; then
  say "already installed: $(promtool --version 2>&1 | head -n 1)"
  exit 0
fi
[ "$(id -u)" = 0 ] || die "run as root"

say "apt-get install prometheus (for promtool)"
bash "$(dirname "$0")/apt-install.sh" prometheus
command -v promtool >/dev/null || die "prometheus installed, but there is no promtool"
say "installed: $(promtool --version 2>&1 | head -n 1)"
