#!/usr/bin/env bash
# bench/sync.sh: BrokerSyncService.Watch (build/bench/sync_bench: its header says what it
# measures) over gRPC on loopback (plaintext), on a throwaway PostgreSQL holding
# BENCH_DEVICES devices (default 100000, bench-<i>, in group line-<i % 10>, attribute
# site=s<i % 10>), each with one unexpired certificate (a row with a stand-in DER: the
# stream never parses it), put in with SQL before the server starts, and a broker
# "bench-broker".
#
#   bench/sync.sh [sync_bench flags]      e.g. --watchers=100 --rate=50 --seconds=20
#
# Environment: BENCH_DEVICES, BENCH_PG_PORT (default 55481), BENCH_GRPC_PORT (default 50082).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${BENCH_PG_PORT:-55481}
grpc_port=${BENCH_GRPC_PORT:-50082}
devices=${BENCH_DEVICES:-100000}

scripts/build.sh fleetca-server sync_bench >/dev/null
source bench/lib.sh
bench_setup sync "$port"

bench_fleet "$devices"
psql_q "INSERT INTO brokers (name) VALUES ('bench-broker')"
bench_serve "$grpc_port"

bench_header
echo "== server: ${server_cmd[*]}"
bench=(build/bench/sync_bench --target=127.0.0.1:$grpc_port --devices="$devices"
       --server_pid="$server_pid" "$@")
echo "== bench: ${bench[*]}"
cpu0=$(cpu_of "$server_pid")
pg0=$(pg_cpu)
"${bench[@]}"
cpu1=$(cpu_of "$server_pid")
pg1=$(pg_cpu)
echo "PostgreSQL: $(awk -v a="$pg0" -v b="$pg1" 'BEGIN {printf "%.1f", b - a}') CPU seconds during the run"
echo "fleetca-server: $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {printf "%.1f", b - a}') CPU seconds during the run;" \
     "$(awk '/VmRSS|VmHWM/ {printf "%s %.0f MiB  ", $1, $2 / 1024}' "/proc/$server_pid/status")"
