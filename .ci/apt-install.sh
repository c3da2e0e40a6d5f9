#!/usr/bin/env bash
# Installs Debian packages from the configured archive without starting their services: while apt
# runs, /usr/sbin/policy-rc.d answers 101 ("not allowed"), as CI has no service manager and the
# tests start what they need themselves. Shared by install-postgres.sh and install-prometheus.sh.
# Run as root.
#
#   bash .ci/apt-install.sh PACKAGE...
set -euo pipefail

[ "$#" -gt 0 ] || { echo 'usage: bash .ci/apt-install.sh PACKAGE...' >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo '[apt-install] error: run as root' >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && created_policy=1
fi
trap 'if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "$@" >/dev/null
