#!/usr/bin/env bash
# bench/plugin_revocation.sh: revocation (and suspension) to disconnect, through the real
# chain: fleetca's API -> PostgreSQL's change log -> the Watch stream -> the fleetca_auth
# plugin's sync thread -> its snapshot -> mosquitto's TICK -> the client's connection closed.
#  - one throwaway PostgreSQL and one fleetca-server over TLS (bench/plugin_lib.sh), broker
#    mqtt-1 with its identity and TLS certificate, 2 x BENCH_CLIENTS devices (default 200
#    each way) with a certificate each (build/bench/plugin_fleet);
#  - one mosquitto with the plugin (stream mode, configured as tests/e2e/test_plugin.py
#    does, heartbeat and cache intervals 10 s as deploy/mosquitto-plugin.conf);
#  - build/bench/plugin_revocation_bench: all 2 x BENCH_CLIENTS devices connected and
#    subscribed; the first half's certificates revoked (RevokeCertificate), then the second
#    half suspended (SetDeviceStatus SUSPENDED), BENCH_CONCURRENCY at a time (default 1);
#    the time from each RPC's OK to the device's connection closed, p50/p90/p99/max.
#
#   bench/plugin_revocation.sh [plugin_revocation_bench flags]   e.g. --gap_ms=0
#
# Environment: BENCH_CLIENTS, BENCH_CONCURRENCY, FLEETCA_BUILD_DIR (default build),
# BENCH_PG_PORT (default 55483), BENCH_GRPC_PORT (default 50084), BENCH_MQTT_PORT (default
# 58885).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${BENCH_PG_PORT:-55483}
grpc_port=${BENCH_GRPC_PORT:-50084}
mqtt_port=${BENCH_MQTT_PORT:-58885}
clients=${BENCH_CLIENTS:-200}
concurrency=${BENCH_CONCURRENCY:-1}

FLEETCA_BUILD_DIR=${FLEETCA_BUILD_DIR:-build} scripts/build.sh fleetca-server fleetca_auth_plugin \
  plugin_fleet plugin_revocation_bench >/dev/null
source bench/lib.sh
source bench/plugin_lib.sh
plugin_setup plugin-revocation "$port" "$grpc_port" $((2 * clients))
mosq_start m "$mqtt_port" plugin

bench_header
echo "== mosquitto $(/usr/sbin/mosquitto -h 2>/dev/null | awk 'NR == 1 {print $3}') with fleetca_auth.so (stream mode) on 127.0.0.1:$mqtt_port; fleetca-server over TLS on 127.0.0.1:$grpc_port"
bench=("$bin/bench/plugin_revocation_bench" --target=localhost:$grpc_port --cacert="$work/ca.pem"
       --credential="$work/admin.pem" --fleet="$fleet" --port="$mqtt_port" --revoke="$clients"
       --suspend="$clients" --concurrency="$concurrency" "$@")
echo "== bench: ${bench[*]}"
touch .bench_running
cpu0=$(cpu_of "$mosq_pid_m")
scpu0=$(cpu_of "$server_pid")
"${bench[@]}"
cpu1=$(cpu_of "$mosq_pid_m")
scpu1=$(cpu_of "$server_pid")
rm -f .bench_running
echo "mosquitto: $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {printf "%.1f", b - a}') CPU seconds during the run;" \
     "fleetca-server: $(awk -v a="$scpu0" -v b="$scpu1" 'BEGIN {printf "%.1f", b - a}') CPU seconds"
kicked=$(grep -c "disconnecting client" "$work/m/mosquitto.log" || true)
echo "mosquitto's log: $kicked clients disconnected by the plugin"
