# bench/plugin_lib.sh: what the plugin benchmarks (plugin_connect.sh, plugin_revocation.sh)
# share; sourced from the repository root with `set -euo pipefail`, after bench/lib.sh
# (psql_q, cpu_of, bench_header, bench_cleanup come from there).
#
# Binaries are taken from FLEETCA_BUILD_DIR (default build, as scripts/build.sh does).
#
#   plugin_setup NAME PG_PORT GRPC_PORT DEVICES
#       a throwaway PostgreSQL in .dev/pg-bench-NAME (as bench_setup), a fresh KEK in the
#       environment only, `fleetca-server init`, then `fleetca-server serve` over TLS (its
#       self-issued certificate, the admin credential init wrote) on 127.0.0.1:GRPC_PORT
#       with --issuance_rate_limit=0, then plugin_fleet: broker mqtt-1, its identity, its
#       TLS certificate, the trust bundles and DEVICES devices with a certificate each, in
#       $work/fleet. Sets dir, url, work, server_pid, fleet. At exit: brokers and server
#       stopped, PostgreSQL stopped and removed.
#   mosq_start NAME PORT plugin|noplugin
#       a mosquitto on 127.0.0.1:PORT configured as deploy/mosquitto-plugin.conf (TLS 1.2,
#       client certificate required, fleetca's client CAs), in $work/NAME: with the plugin
#       (use_identity_as_username false, plugin_opt_* lines as tests/e2e/test_plugin.py
#       writes them) or without it (use_identity_as_username true, no plugin, otherwise the
#       same file). Both with set_tcp_nodelay BENCH_TCP_NODELAY (default true; mosquitto's
#       default, false, makes every connection wait about 40 ms on loopback for a delayed
#       ACK between two small writes of the broker, whatever the broker's CPU: a rate near
#       45/s for any broker). Waits until it listens, and with the plugin until its first snapshot is
#       swapped in. Sets mosq_pid_NAME.
#   mosq_stop NAME

bin=${FLEETCA_BUILD_DIR:-build}
mosq_pids=()

plugin_cleanup() {
  local p
  for p in "${mosq_pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  rm -f .bench_running
  bench_cleanup
}

plugin_setup() {
  dir=.dev/pg-bench-$1
  rm -rf "$dir"
  scripts/pg.sh start "$dir" "$2"
  url=$(scripts/pg.sh url "$2")
  work=$(mktemp -d)
  chmod 755 "$work"
  server_pid=
  trap plugin_cleanup EXIT
  FLEETCA_KEK=$("$bin/server/fleetca-server" gen-kek --kek_id="bench-$(date +%s)")
  export FLEETCA_KEK
  unset FLEETCA_KEK_FILE FLEETCA_PREVIOUS_KEK_FILES
  "$bin/server/fleetca-server" init --database_url="$url" --log_level=warning \
    --admin_credential_file="$work/admin.pem"
  grpc_port=$3
  server_cmd=("$bin/server/fleetca-server" serve --database_url="$url" --listen=127.0.0.1:$grpc_port
              --http_listen=off --tls_dir="$work/tls" --issuance_rate_limit=0 --log_level=info)
  "${server_cmd[@]}" 2>"$work/server.log" &
  server_pid=$!
  for _ in $(seq 1 600); do
    grep -q '"msg":"serving"' "$work/server.log" && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.2
  done
  grep -q '"msg":"serving"' "$work/server.log" || { tail -20 "$work/server.log" >&2; exit 1; }
  fleet=$work/fleet
  "$bin/bench/plugin_fleet" --target=localhost:$grpc_port --cacert="$work/ca.pem" \
    --credential="$work/admin.pem" --out="$fleet" --devices="$4"
}

mosq_start() {
  local name=$1 port=$2 mode=$3 d=$work/$1
  mkdir -p "$d/cache"
  {
    if [ "$(id -u)" = 0 ]; then echo "user root"; fi
    cat <<CONF
per_listener_settings false
allow_anonymous false
persistence false
log_dest file $d/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
listener $port 127.0.0.1
protocol mqtt
tls_version tlsv1.2
cafile $fleet/clients-ca.pem
certfile $fleet/broker.pem
keyfile $fleet/broker.key
require_certificate true
set_tcp_nodelay ${BENCH_TCP_NODELAY:-true}
CONF
    if [ "$mode" = plugin ]; then
      cat <<CONF
use_identity_as_username false
plugin $bin/plugin/fleetca_auth.so
plugin_opt_server localhost:$grpc_port
plugin_opt_broker_id mqtt-1
plugin_opt_tls_ca $work/ca.pem
plugin_opt_tls_cert $fleet/plugin.crt
plugin_opt_tls_key $fleet/plugin.key
plugin_opt_mode stream
plugin_opt_cache_dir $d/cache
plugin_opt_cache_interval 10
plugin_opt_heartbeat_interval 10
plugin_opt_admit_without_policy false
plugin_opt_log_level info
CONF
    else
      echo "use_identity_as_username true"
    fi
  } >"$d/mosquitto.conf"
  /usr/sbin/mosquitto -c "$d/mosquitto.conf" >"$d/stdout.log" 2>&1 &
  local pid=$!
  mosq_pids+=("$pid")
  printf -v "mosq_pid_$name" '%s' "$pid"
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || { cat "$d/stdout.log" "$d/mosquitto.log" >&2 2>/dev/null; exit 1; }
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      if [ "$mode" != plugin ] || grep -q "snapshot swapped in" "$d/mosquitto.log" 2>/dev/null; then
        return 0
      fi
    fi
    sleep 0.2
  done
  echo "mosquitto $name not ready after 60 s:" >&2
  tail -20 "$d/mosquitto.log" >&2
  exit 1
}

mosq_stop() {
  local var=mosq_pid_$1
  kill "${!var}" 2>/dev/null && wait "${!var}" 2>/dev/null || true
}
