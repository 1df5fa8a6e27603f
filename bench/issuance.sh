#!/usr/bin/env bash
# bench/issuance.sh: SignDeviceCsr throughput and latency of the real fleetca-server (every
# certificate committed) on a throwaway PostgreSQL (fsync and synchronous commit on, as
# scripts/pg.sh sets them), with the references measured in the same run:
#  - a plain in-process OpenSSL loop (parse, verify, build, sign, encode) on 1 and 2 threads
#    (by issuance_bench itself, after the load);
#  - PostgreSQL's own commit rate on the same cluster (pgbench, 16 clients, one small insert
#    per transaction), free and under one transaction-scoped advisory lock, as fleetca's
#    change-log/audit lock (fleetca_log_lock) is held to commit: the ceiling that lock puts
#    on any writer, issuance included.
#
#   bench/issuance.sh [issuance_bench flags]
#     e.g. bench/issuance.sh --clients=32 --seconds=60      (the defaults)
#
# Environment: FLEETCA_DB_MAX_CONNECTIONS (server pool, default the server's), BENCH_PG_PORT
# (default 55478), BENCH_GRPC_PORT (default 50078), BENCH_SYNCHRONOUS_COMMIT (default on; off
# is a diagnostic only, to see what the WAL flush costs: certificates are then not durable
# when the reply is sent, which the issue's target does not allow).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${BENCH_PG_PORT:-55478}
grpc_port=${BENCH_GRPC_PORT:-50078}

scripts/build.sh fleetca-server issuance_bench >/dev/null
source bench/lib.sh
bench_setup issuance "$port"
sync_commit=${BENCH_SYNCHRONOUS_COMMIT:-on}
if [ "$sync_commit" != on ]; then
  psql -X -q "$url" -c "ALTER DATABASE fleetca SET synchronous_commit = '$sync_commit'"
fi
# Plaintext on loopback, as before TLS came: the clients hold long-lived connections, so TLS
# would add one handshake per connection, not per certificate.
server_cmd=(build/server/fleetca-server serve --insecure_plaintext --database_url="$url" --listen=127.0.0.1:$grpc_port
            --log_level=warning)
"${server_cmd[@]}" &
server_pid=$!

bench_header
echo "== server: ${server_cmd[*]} (FLEETCA_DB_MAX_CONNECTIONS=${FLEETCA_DB_MAX_CONNECTIONS:-default})"
bench_cmd=(build/bench/issuance_bench --target=127.0.0.1:$grpc_port "$@")
echo "== bench: ${bench_cmd[*]}"
# CPU seconds (user + system, cpu_of in bench/lib.sh) of the server, and of PostgreSQL
# (postmaster, its live processes and those it has reaped): a per-certificate cost that a
# noisy, shared machine disturbs less than the rate.
pg_cpu() {
  local pm total=0
  pm=$(head -n 1 "$dir/data/postmaster.pid")
  for p in $pm $(pgrep -P "$pm"); do total=$(awk -v a="$total" -v b="$(cpu_of "$p")" 'BEGIN {print a + b}'); done
  echo "$total"
}
server_cpu0=$(cpu_of "$server_pid"); pg_cpu0=$(pg_cpu)
"${bench_cmd[@]}" | tee "$dir.out"
server_cpu1=$(cpu_of "$server_pid"); pg_cpu1=$(pg_cpu)
requests=$(awk '/in all:/ {print $NF}' "$dir.out"); rm -f "$dir.out"
if [ -n "$requests" ] && [ "$requests" -gt 0 ]; then
  awk -v s0="$server_cpu0" -v s1="$server_cpu1" -v p0="$pg_cpu0" -v p1="$pg_cpu1" -v n="$requests" \
    'BEGIN {printf "== CPU per certificate over all %d requests: fleetca-server %.0f us, PostgreSQL %.0f us\n", n, (s1 - s0) * 1e6 / n, (p1 - p0) * 1e6 / n}'
fi
echo "== reference: PostgreSQL commits/s on the same cluster (pgbench -c 16 -j 2 -T 10, one insert of 500 bytes per transaction)"
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
psql -X -q "$url" -c "CREATE TABLE bench_ref (id bigserial PRIMARY KEY, v text)"
scripts=$(mktemp -d)
printf 'BEGIN;\nINSERT INTO bench_ref (v) VALUES (repeat(%s, 500));\nCOMMIT;\n' "'x'" >"$scripts/free.sql"
printf 'BEGIN;\nSELECT pg_advisory_xact_lock(42);\nINSERT INTO bench_ref (v) VALUES (repeat(%s, 500));\nCOMMIT;\n' "'x'" \
  >"$scripts/locked.sql"
for variant in free locked; do
  tps=$("$pg_bin/pgbench" -n -c 16 -j 2 -T 10 -f "$scripts/$variant.sql" "$url" 2>&1 |
        awk '/^tps/ {printf "%.0f", $3} /latency average/ {lat = $4} END {printf " commits/s, latency average %s ms", lat}')
  echo "reference PostgreSQL, $( [ $variant = free ] && echo "no shared lock" || echo "under one advisory xact lock held to commit"): $tps"
done
rm -rf "$scripts"
echo "== certificates committed in PostgreSQL (warm-up included): $(psql_q "SELECT count(*) FROM certificates WHERE status = 'issued'")" \
     "(left reserved: $(psql_q "SELECT count(*) FROM certificates WHERE status = 'reserved'"))"
# Certificates stored by one transaction share its start time (created_at = now()).
echo "== group commits: $(psql_q "SELECT count(*) || ' transactions, ' || round(avg(n), 1) || ' certificates per transaction on average, largest ' || max(n) FROM (SELECT count(*) AS n FROM certificates GROUP BY created_at) t")"
