#!/bin/sh
# The stand-in's start (see Dockerfile): initialise PGDATA at the first start, then run postgres.
set -eu
PGDATA=${PGDATA:-/var/lib/postgresql/data}
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}

die() { printf 'postgres-standin: error: %s\n' "$*" >&2; exit 1; }

if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ -w "$PGDATA" ] || die "$PGDATA is not writable by $(id -un): give the volume to uid $(id -u)"
  pwfile=$(mktemp)
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    [ -r "$POSTGRES_PASSWORD_FILE" ] || die "cannot read POSTGRES_PASSWORD_FILE $POSTGRES_PASSWORD_FILE"
    cat "$POSTGRES_PASSWORD_FILE" >"$pwfile"
  elif [ -n "${POSTGRES_PASSWORD:-}" ]; then
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  else
    die "set POSTGRES_PASSWORD_FILE (or POSTGRES_PASSWORD): the superuser's password"
  fi
  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo 'host all all all scram-sha-256' >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    printf 'CREATE DATABASE "%s" OWNER "%s"\n' "$db" "$user" | postgres --single -D "$PGDATA" postgres >/dev/null
  fi
  echo "postgres-standin: initialised $PGDATA (user $user, database $db)"
fi
if [ "${1:-}" = postgres ]; then
  shift
  exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
fi
exec "$@"
