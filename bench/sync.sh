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

start=$(date +%s)
issuer=$(psql_q "SELECT id FROM issuers WHERE purpose = 'devices' AND state = 'active'")
psql -X -q -v ON_ERROR_STOP=1 "$url" <<SQL
INSERT INTO devices (comm_id, attributes, groups)
SELECT 'bench-' || g, jsonb_build_object('site', 's' || (g % 10)), ARRAY['line-' || (g % 10)]
FROM generate_series(0, $devices - 1) g;
INSERT INTO certificates (serial, issuer_id, kind, comm_id, subject, key_algorithm, status,
                          not_before, not_after, der, fingerprint_sha256, request_id)
SELECT s, '$issuer', 'device', 'bench-' || g, 'CN=bench-' || g, 'ecdsa-p256', 'issued',
       now() - interval '1 day', now() + interval '365 days', s, sha256(s), 'bench-' || g
FROM (SELECT g, substr(sha256(int8send(g)), 1, 16) AS s FROM generate_series(0, $devices - 1) g) x;
INSERT INTO brokers (name) VALUES ('bench-broker');
ANALYZE;
SQL
echo "== put $devices devices and certificates in the database in $(( $(date +%s) - start )) s"

server_cmd=(build/server/fleetca-server serve --insecure_plaintext --database_url="$url"
            --listen=127.0.0.1:$grpc_port --http_listen=off)
"${server_cmd[@]}" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 600); do
  grep -q '"policy index loaded"' "$work/server.log" && break
  sleep 0.5
done

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
