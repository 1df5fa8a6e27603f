#!/usr/bin/env bash
# bench/policy.sh: BrokerAuthService.CheckTopic, answered from the server's in-memory policy
# index, over gRPC on loopback (plaintext), on a throwaway PostgreSQL:
#  - BENCH_DEVICES devices (default 100000), bench-<i> in group line-<i % 10> with attribute
#    site=s<i % 10>, each with one certificate (a stand-in DER: see policy_bench's header),
#    put in with SQL before the server starts (the index loads them: the load time is
#    printed from the server's "policy index loaded" line);
#  - a profile "site-alerts" (READ sites/%{site}/alerts/#) assigned to each group, beside
#    the built-in "device" profile every device has;
#  - build/bench/policy_bench: the calls and their figures (see its header);
#  - the server's CPU time and memory over the run.
#
#   bench/policy.sh [policy_bench flags]      e.g. --channels=2 --inflight=16 --seconds=15
#                                             --method=AuthorizeConnect
#
# Environment: BENCH_DEVICES, BENCH_PG_PORT (default 55480), BENCH_GRPC_PORT (default 50081).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${BENCH_PG_PORT:-55480}
grpc_port=${BENCH_GRPC_PORT:-50081}
devices=${BENCH_DEVICES:-100000}

scripts/build.sh fleetca-server policy_bench >/dev/null
source bench/lib.sh
bench_setup policy "$port"

bench_fleet "$devices"
psql -X -q -v ON_ERROR_STOP=1 "$url" <<SQL
INSERT INTO acl_profiles (name, description, rules) VALUES
  ('site-alerts', 'bench', '[{"pattern": "sites/%{site}/alerts/#", "access": "read"}]');
INSERT INTO acl_assignments (profile_name, subject_type, subject)
SELECT 'site-alerts', 'group', 'line-' || g FROM generate_series(0, 9) g;
SQL
bench_serve "$grpc_port"

bench_header
echo "== server: ${server_cmd[*]}"
bench=(build/bench/policy_bench --target=127.0.0.1:$grpc_port --devices="$devices" "$@")
echo "== bench: ${bench[*]}"
cpu0=$(cpu_of "$server_pid")
"${bench[@]}"
cpu1=$(cpu_of "$server_pid")
echo "fleetca-server: $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {printf "%.1f", b - a}') CPU seconds during the run;" \
     "$(awk '/VmRSS|VmHWM/ {printf "%s %.0f MiB  ", $1, $2 / 1024}' "/proc/$server_pid/status")"
