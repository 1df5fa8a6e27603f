#!/usr/bin/env bash
# dev.sh: from a fresh Debian 12 clone to a running fleetca, in one command.
#
#   scripts/dev.sh
#
# Installs what is needed (scripts/deps.sh), builds (scripts/build.sh), starts a throwaway
# PostgreSQL under .dev/pg on 127.0.0.1:55432 (scripts/pg.sh; its data stays there between
# runs), runs `fleetca-server init` (migrations, CA hierarchy, and on the first run the
# admin credential in .dev/admin.pem, whose path it prints), and runs fleetca-server in the
# foreground with TLS on 127.0.0.1:50051 (FLEETCA_LISTEN overrides). Ctrl-C (or SIGTERM) stops the server
# gracefully, then PostgreSQL. Environment: FLEETCA_DEV_PG_PORT (default 55432),
# FLEETCA_LOG_LEVEL (default info).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

pg_dir=.dev/pg
pg_port=${FLEETCA_DEV_PG_PORT:-55432}
listen=${FLEETCA_LISTEN:-127.0.0.1:50051}

bash scripts/deps.sh
bash scripts/build.sh
server=build/server/fleetca-server

bash scripts/pg.sh start "$pg_dir" "$pg_port"
server_pid=
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  echo "dev.sh: stopping PostgreSQL ($pg_dir)" >&2
  bash scripts/pg.sh stop "$pg_dir"
}
trap cleanup EXIT

FLEETCA_DATABASE_URL=$(bash scripts/pg.sh url "$pg_port")
export FLEETCA_DATABASE_URL

# The key-encryption key that wraps the CA private keys in PostgreSQL: a development one,
# made on first run, kept beside the local database. Production keeps its KEK in a secret
# store (docs/security.md).
kek_file=.dev/kek
if [ ! -f "$kek_file" ]; then
  (umask 077 && "$server" gen-kek --kek_id="dev-$(date +%Y%m%d)" >"$kek_file")
  echo "dev.sh: created a development key-encryption key in $repo/$kek_file (mode 0600)." >&2
  echo "dev.sh: it encrypts the CA keys stored in .dev/pg: keep the two together." >&2
fi
export FLEETCA_KEK_FILE=$repo/$kek_file
export FLEETCA_LOG_LEVEL=${FLEETCA_LOG_LEVEL:-info}
# init: migrations, the CA hierarchy (root, devices, brokers and operators CAs, keys wrapped
# by the KEK) and, on the first run, the first admin identity, whose credential (key and
# certificate, mode 0600) it writes to .dev/admin.pem, with ca.pem (the CA that verifies
# this server) beside it. Later runs find both and change nothing.
admin=$repo/.dev/admin.pem
"$server" init --admin_credential_file="$admin"
if [ ! -f "$admin" ]; then
  echo "dev.sh: the database has an admin identity but $admin is gone; issue another with" >&2
  echo "dev.sh: an admin credential, or start afresh: rm -rf .dev/pg .dev/kek" >&2
fi
mkdir -p .dev/tls

case "$listen" in
  unix:*) url_hint="--unix-socket ${listen#unix:} https://localhost" ;;
  *) url_hint="https://localhost:${listen##*:}" ;;
esac
cat >&2 <<EOF

fleetca gRPC (TLS, client certificates required, reflection on): $listen
Admin credential (key + certificate, keep it secret): $admin
CA bundle that verifies the server:                   $repo/.dev/ca.pem
PostgreSQL: $FLEETCA_DATABASE_URL   (data in $repo/$pg_dir)
Try, from another terminal in $repo (README.md has the whole example):
  buf="tools/node_modules/.bin/buf curl --protocol grpc --cacert .dev/ca.pem --cert .dev/admin.pem --key .dev/admin.pem"
  \$buf -d '{"device":{"commId":"imei-356938035643809"}}' \\
    $url_hint/fleetca.v1.DeviceRegistryService/RegisterDevice
  \$buf $url_hint/fleetca.v1.DeviceRegistryService/ListDevices
Ctrl-C stops the server and PostgreSQL.

EOF

# The server runs as a child we wait for, so that Ctrl-C or a SIGTERM sent to this script
# reaches it as SIGTERM (graceful shutdown) before PostgreSQL is stopped.
"$server" serve --listen="$listen" --tls_dir="$repo/.dev/tls" &
server_pid=$!
trap 'kill -TERM "$server_pid" 2>/dev/null || true' INT TERM
while kill -0 "$server_pid" 2>/dev/null; do
  wait "$server_pid" || true  # returns early when a trapped signal arrives
done
status=0
wait "$server_pid" || status=$?
exit "$status"
