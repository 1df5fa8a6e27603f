#!/usr/bin/env bash
# bench/registry_batch.sh: batch registration rate (devices/s for batches of 10,000) of the
# real fleetca-server on a throwaway PostgreSQL (synchronous commit on), with a reference
# measured in the same run: psql COPY of the same number of rows into a bare table (the
# floor of what PostgreSQL itself costs for the rows, without indexes, checks, change log
# or audit).
#   bench/registry_batch.sh [BATCHES]     (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
batches=${1:-10}
port=55477
grpc_port=50077
dir=.dev/pg-bench

scripts/build.sh >/dev/null
rm -rf "$dir"
scripts/pg.sh start "$dir" "$port"
url=$(scripts/pg.sh url "$port")
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  scripts/pg.sh stop "$dir"
}
trap cleanup EXIT

FLEETCA_KEK=$(build/server/fleetca-server gen-kek --kek_id=bench)
export FLEETCA_KEK
build/server/fleetca-server --insecure_plaintext --database_url="$url" --listen=127.0.0.1:$grpc_port \
  --log_level=warning &
server_pid=$!

echo "== machine: $(nproc) cores, $(uname -r); PostgreSQL $(psql --version | awk '{print $3}')"
echo "== fleetca (gRPC, one transaction per batch: a change-log revision per device, one audit entry)"
build/bench/registry_batch_bench --target=127.0.0.1:$grpc_port --batches="$batches" \
  --batch_size=10000 --prefix="run$$"

echo "== reference: psql COPY of 10,000 rows into a bare table, same server"
psql -q "$url" -c "CREATE TABLE ref_devices (comm_id text, attributes jsonb, groups text[])"
rows=$(mktemp)
for i in $(seq 350000000000000 350000000009999); do
  printf 'ref-%s\t{"site": "lyon"}\t{line-2}\n' "$i"
done >"$rows"
for r in 1 2 3; do
  psql -q "$url" -c "TRUNCATE ref_devices"
  start=$(date +%s.%N)
  psql -q "$url" -c "\\copy ref_devices FROM '$rows'"
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" -v r="$r" \
    'BEGIN { printf "reference COPY run %d: %.0f rows/s (includes psql start-up)\n", r, 10000 / (e - s) }'
done
rm -f "$rows"
