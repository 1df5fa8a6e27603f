#!/usr/bin/env bash
# bench/plugin_connect.sh: TLS connections per second to mosquitto with the fleetca_auth
# plugin against the same broker without it, side by side, on one machine:
#  - one throwaway PostgreSQL and one fleetca-server over TLS (bench/plugin_lib.sh), a
#    broker mqtt-1 with its identity and TLS certificate, BENCH_DEVICES devices (default
#    200) with a certificate each, made through the API (build/bench/plugin_fleet);
#  - two mosquitto brokers on loopback, the same configuration (deploy/mosquitto-plugin.conf's
#    shape: TLS 1.2, client certificate required against fleetca's client CAs, log types
#    error to information): A without the plugin and with use_identity_as_username true
#    (mosquitto's own certificate-as-username), B with the plugin in stream mode
#    (use_identity_as_username false, plugin_opt_* as tests/e2e/test_plugin.py has them);
#  - build/bench/mqtt_connect_bench against A, B, A, B ... (BENCH_ROUNDS pairs, default 2),
#    BENCH_SECONDS each (default 15): every connection a full TLS handshake with a device
#    certificate, CONNECT, CONNACK, DISCONNECT (its header says more);
#  - per run: connections/s, CONNECT latency p50/p99, failures, and the broker's CPU time
#    per connection (from /proc: mosquitto is single-threaded; the plugin's sync thread is
#    idle here and counted in it too); then the totals of A and B and the ratio B/A.
#
# mosquitto handles every connection on one thread and the machines have two cores: the
# generator uses BENCH_THREADS threads (default 2: one core's worth of client TLS beside
# the broker's core; 1 leaves the broker idle while the client works).
#
#   bench/plugin_connect.sh [mqtt_connect_bench flags]
#
# Environment: BENCH_DEVICES, BENCH_ROUNDS, BENCH_SECONDS, BENCH_THREADS, FLEETCA_BUILD_DIR
# (default build), BENCH_PG_PORT (default 55482), BENCH_GRPC_PORT (default 50083),
# BENCH_MQTT_PORT_A/B (default 58883/58884).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${BENCH_PG_PORT:-55482}
grpc_port=${BENCH_GRPC_PORT:-50083}
port_a=${BENCH_MQTT_PORT_A:-58883}
port_b=${BENCH_MQTT_PORT_B:-58884}
devices=${BENCH_DEVICES:-200}
rounds=${BENCH_ROUNDS:-2}
seconds=${BENCH_SECONDS:-15}
threads=${BENCH_THREADS:-2}

FLEETCA_BUILD_DIR=${FLEETCA_BUILD_DIR:-build} scripts/build.sh fleetca-server fleetca_auth_plugin \
  plugin_fleet mqtt_connect_bench >/dev/null
source bench/lib.sh
source bench/plugin_lib.sh
plugin_setup plugin-connect "$port" "$grpc_port" "$devices"
mosq_start a "$port_a" noplugin
mosq_start b "$port_b" plugin

bench_header
echo "== mosquitto $(/usr/sbin/mosquitto -h 2>/dev/null | awk 'NR == 1 {print $3}'), OpenSSL $(openssl version | awk '{print $2}')"
echo "== A: 127.0.0.1:$port_a without the plugin (use_identity_as_username true); B: 127.0.0.1:$port_b with fleetca_auth.so (stream mode)"
echo "== $devices devices; generator: $threads thread(s), ${seconds} s per run, A/B alternated $rounds times"

results=$work/results
: >"$results"
touch .bench_running
for r in $(seq 1 "$rounds"); do
  for side in a b; do
    if [ "$side" = a ]; then p=$port_a; pid=$mosq_pid_a; else p=$port_b; pid=$mosq_pid_b; fi
    label="[$side round $r] "
    cpu0=$(cpu_of "$pid")
    line=$("$bin/bench/mqtt_connect_bench" --port="$p" --fleet="$fleet" --threads="$threads" \
             --seconds="$seconds" --label="$label" "$@")
    cpu1=$(cpu_of "$pid")
    n=$(echo "$line" | head -1 | sed -E 's/.*\(([0-9]+) in .*/\1/')
    all=$(echo "$line" | head -1 | sed -E 's/.*, ([0-9]+) with the warm-up.*/\1/')
    echo "$line"
    echo "$side $n $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {print b - a}') $seconds $all" >>"$results"
    echo "${label}broker CPU $(awk -v a="$cpu0" -v b="$cpu1" -v n="$all" 'BEGIN {printf "%.2f s, %.0f us per connection (all %d of the run, warm-up included)", b - a, (n > 0 ? (b - a) * 1e6 / n : 0), n}')"
  done
done
rm -f .bench_running

awk '
  { n[$1] += $2; cpu[$1] += $3; s[$1] += $4; all[$1] += $5 }
  END {
    ra = n["a"] / s["a"]; rb = n["b"] / s["b"]
    printf "A without the plugin: %.1f connections/s (%d connections in %d s)\n", ra, n["a"], s["a"]
    printf "B with the plugin:    %.1f connections/s (%d connections in %d s)\n", rb, n["b"], s["b"]
    printf "ratio B/A: %.3f (the issue asks for at least 0.90)\n", rb / ra
    printf "broker CPU per connection: A %.0f us, B %.0f us (ratio A/B %.3f)\n",
           cpu["a"] * 1e6 / all["a"], cpu["b"] * 1e6 / all["b"], (cpu["a"] / all["a"]) / (cpu["b"] / all["b"])
  }' "$results"
echo "mosquitto B (plugin) memory: $(awk '/VmRSS|VmHWM/ {printf "%s %.1f MiB  ", $1, $2 / 1024}' "/proc/$mosq_pid_b/status");" \
     "A: $(awk '/VmRSS|VmHWM/ {printf "%s %.1f MiB  ", $1, $2 / 1024}' "/proc/$mosq_pid_a/status")"
refused=$(grep -c "connection refused" "$work/b/mosquitto.log" || true)
echo "B's log: $refused connections refused by the plugin"
