#!/usr/bin/env bash
# bench/sync_agent.sh: fleetca-sync at fleet scale. A throwaway PostgreSQL with DEVICES
# devices (default 1000000; groups, attribute site), the real server (plaintext gRPC on
# loopback) and the real fleetca-sync following it (no broker to signal): the time to its
# first files (snapshot, render, validation, atomic writes), the acl_file's size and the
# agent's memory; then one device suspended (a change that alters the acl_file): the time
# until the new acl_file is written and the agent's CPU for it.
#
#   DEVICES=100000 bench/sync_agent.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh fleetca-server fleetca-sync >/dev/null
source bench/lib.sh
bench_setup sync-agent "${BENCH_PG_PORT:-55496}"
devices=${DEVICES:-1000000}
bench_fleet "$devices"
psql_q "INSERT INTO brokers (name) VALUES ('bench-broker')"
bench_serve "${BENCH_GRPC_PORT:-50098}"
mkdir -p "$work/m"
t0=$(date +%s.%N)
build/sync_agent/fleetca-sync --server=127.0.0.1:${BENCH_GRPC_PORT:-50098} --insecure_plaintext --broker_id=bench-broker \
  --cafile="$work/m/ca" --crlfile="$work/m/crl" --acl_file="$work/m/acl" 2>"$work/agent.log" &
agent=$!
for _ in $(seq 1 600); do grep -q '"files published"' "$work/agent.log" && break; sleep 0.2; done
t1=$(date +%s.%N)
echo "first files after $(echo "$t1 - $t0" | bc) s; acl_file $(wc -c < "$work/m/acl") bytes; agent RSS $(awk '/VmRSS/ {print $2/1024 " MiB"}' /proc/$agent/status)"
# One change: how long until the acl_file holds it. (A direct UPDATE writes no change-log
# row: the revision is appended as the stores do, with fleetca_append_changes.)
psql -X -q "$url" -c "UPDATE devices SET status = 'suspended' WHERE comm_id = 'bench-7'" >/dev/null
t2=$(date +%s.%N)
psql -X -q "$url" -c "SELECT fleetca_append_changes('device', ARRAY['bench-7'], 'upsert')" >/dev/null
cpu0=$(cpu_of $agent)
for _ in $(seq 1 600); do [ "$(grep -c '"files published"' "$work/agent.log")" -ge 2 ] && break; sleep 0.05; done
t3=$(date +%s.%N)
echo "one change rendered and written after $(echo "$t3 - $t2" | bc) s; agent CPU for it $(awk -v a=$cpu0 -v b=$(cpu_of $agent) 'BEGIN{print b-a}') s"
kill $agent
wait $agent || true
