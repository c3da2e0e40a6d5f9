#!/usr/bin/env bash
# Make this Debian machine able to run the PostgreSQL store tests (make test-postgres): Debian's
# postgresql package, for its server programs (initdb, pg_ctl, postgres, psql) and the postgres
# user that runs them (initdb refuses root). Idempotent. Run as root.
#
#   bash .ci/install-postgres.sh
#
# The tests start their own throw-away cluster on a unix socket (test/support/postgres.ts); the
# package's own cluster service is not needed, and none is started here.
set -euo pipefail

say() { printf '[install-postgres] %s\n' "$*"; }
die() { printf '[install-postgres] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"

have_server() {
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null
}

if have_server && getent passwd postgres >/dev/null; then
  say "already installed: $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')"
  exit 0
fi

say "apt-get install postgresql"
# The package's default cluster is not started (apt-install.sh).
bash "$(dirname "$0")/apt-install.sh" postgresql

have_server || die "postgresql installed, but no /usr/lib/postgresql/*/bin/initdb"
getent passwd postgres >/dev/null || die "postgresql installed, but there is no postgres user"
say "installed: $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')"
