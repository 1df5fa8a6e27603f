#!/usr/bin/env bash
# pg.sh: a throwaway local PostgreSQL for development and tests, kept under a folder of
# the repository, run as a non-root user, listening on 127.0.0.1 only.
#
#   scripts/pg.sh start DATADIR PORT   create the cluster if needed, start it, create db "fleetca"
#   scripts/pg.sh stop DATADIR         stop it (fast shutdown)
#   scripts/pg.sh url PORT [DB]        print the connection URL
#
# Authentication is "trust" for 127.0.0.1 and the cluster's own socket: this cluster is for
# one developer's machine or one CI run, never for production (see docs/operations.md).
set -euo pipefail

PG_BINDIR=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
PG_OS_USER=${PG_OS_USER:-fleetca}
DB_USER=fleetca

die() { echo "pg.sh: $*" >&2; exit 1; }

# as_pg_user CMD...: run CMD as the PostgreSQL OS user (initdb refuses root).
as_pg_user() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$PG_OS_USER" -- "$@"
  else
    "$@"
  fi
}

ensure_os_user() {
  [ "$(id -u)" = 0 ] || return 0
  id -u "$PG_OS_USER" >/dev/null 2>&1 ||
    useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_OS_USER"
}

cmd=${1:-}; shift || true
case "$cmd" in
  start)
    [ $# -eq 2 ] || die "usage: pg.sh start DATADIR PORT"
    datadir=$(realpath -m "$1"); port=$2
    [ -x "$PG_BINDIR/initdb" ] || die "PostgreSQL server binaries not found (install postgresql)"
    ensure_os_user
    mkdir -p "$datadir"
    if [ "$(id -u)" = 0 ]; then chown "$PG_OS_USER" "$datadir"; fi
    chmod 700 "$datadir"
    if [ ! -f "$datadir/data/PG_VERSION" ]; then
      as_pg_user "$PG_BINDIR/initdb" -D "$datadir/data" -U "$DB_USER" --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >"$datadir/initdb.log" 2>&1 ||
        { cat "$datadir/initdb.log" >&2; die "initdb failed"; }
    fi
    mkdir -p "$datadir/run"
    if [ "$(id -u)" = 0 ]; then chown "$PG_OS_USER" "$datadir/run"; fi
    if as_pg_user "$PG_BINDIR/pg_ctl" -D "$datadir/data" status >/dev/null 2>&1; then
      echo "pg.sh: already running in $datadir" >&2
    else
      as_pg_user "$PG_BINDIR/pg_ctl" -D "$datadir/data" -l "$datadir/postgresql.log" -w -t 60 \
        -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$datadir/run -c max_connections=200 -c fsync=on -c synchronous_commit=on" \
        start >/dev/null || {
          tail -n 20 "$datadir/postgresql.log" >&2
          if tail -n 20 "$datadir/postgresql.log" | grep -q "Address already in use"; then
            die "PostgreSQL did not start: port $port is in use by another program (choose another port: FLEETCA_DEV_PG_PORT for dev.sh, FLEETCA_TEST_PG_PORT for test.sh)"
          fi
          die "PostgreSQL did not start"
        }
    fi
    if ! as_pg_user "$PG_BINDIR/psql" -h 127.0.0.1 -p "$port" -U "$DB_USER" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'fleetca'" | grep -q 1; then
      as_pg_user "$PG_BINDIR/createdb" -h 127.0.0.1 -p "$port" -U "$DB_USER" fleetca
    fi
    ;;
  stop)
    [ $# -eq 1 ] || die "usage: pg.sh stop DATADIR"
    datadir=$(realpath -m "$1")
    [ -f "$datadir/data/PG_VERSION" ] || exit 0
    as_pg_user "$PG_BINDIR/pg_ctl" -D "$datadir/data" -m fast -w stop >/dev/null 2>&1 || true
    ;;
  url)
    [ $# -ge 1 ] || die "usage: pg.sh url PORT [DB]"
    echo "postgresql://$DB_USER@127.0.0.1:$1/${2:-fleetca}"
    ;;
  *)
    die "usage: pg.sh start DATADIR PORT | stop DATADIR | url PORT [DB]"
    ;;
esac
