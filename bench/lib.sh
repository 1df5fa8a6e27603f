# bench/lib.sh: what every server benchmark does first; sourced by bench/*.sh (from the
# repository root, with `set -euo pipefail`).
#
# Binaries come from FLEETCA_BUILD_DIR (default build), as scripts/build.sh puts them.
#
#   bench_setup NAME PG_PORT   a throwaway PostgreSQL in .dev/pg-bench-NAME (fsync and
#                              synchronous commit on, as scripts/pg.sh sets them), a fresh
#                              KEK in the environment only, `fleetca-server init` on it.
#                              Sets: dir, url, work (a temporary directory), server_pid ("").
#                              At exit: the server stopped, PostgreSQL stopped and removed.
#   bench_header               the machine, its load, PostgreSQL's settings.
#   bench_fleet N              N devices bench-<i> (group line-<i % 10>, attribute
#                              site=s<i % 10>), each with one unexpired certificate (a
#                              stand-in DER = its serial, the first 16 bytes of SHA-256 of i
#                              as 8 big-endian bytes: the index and the stream never parse
#                              it), put in with SQL; prints how long it took.
#   bench_serve PORT           fleetca-server serve (plaintext gRPC on 127.0.0.1:PORT, no
#                              HTTP) in the background, waits for its policy index to load
#                              and prints the load line. Sets server_pid, server_cmd.
#   psql_q SQL                 one query, unaligned output.
#   cpu_of PID                 CPU seconds (user + system) of a process and of the children
#                              it has reaped.

bench_setup() {
  dir=.dev/pg-bench-$1
  rm -rf "$dir"
  scripts/pg.sh start "$dir" "$2"
  url=$(scripts/pg.sh url "$2")
  work=$(mktemp -d)
  server_pid=
  trap bench_cleanup EXIT
  # A fresh KEK for this run only (in the environment: it never touches the disk).
  FLEETCA_KEK=$("${FLEETCA_BUILD_DIR:-build}/server/fleetca-server" gen-kek --kek_id="bench-$(date +%s)")
  export FLEETCA_KEK
  unset FLEETCA_KEK_FILE FLEETCA_PREVIOUS_KEK_FILES
  "${FLEETCA_BUILD_DIR:-build}/server/fleetca-server" init --database_url="$url" --log_level=warning \
    --admin_credential_file="$work/admin.pem"
}

bench_cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true; fi
  scripts/pg.sh stop "$dir"
  rm -rf "$dir" "$work"
}

bench_fleet() {
  local start
  start=$(date +%s)
  psql -X -q -v ON_ERROR_STOP=1 "$url" <<SQL
INSERT INTO devices (comm_id, attributes, groups)
SELECT 'bench-' || g, jsonb_build_object('site', 's' || (g % 10)), ARRAY['line-' || (g % 10)]
FROM generate_series(0, $1 - 1) g;
INSERT INTO certificates (serial, issuer_id, kind, comm_id, subject, key_algorithm, status,
                          not_before, not_after, der, fingerprint_sha256, request_id)
SELECT s, (SELECT id FROM issuers WHERE purpose = 'devices' AND state = 'active'), 'device',
       'bench-' || g, 'CN=bench-' || g, 'ecdsa-p256', 'issued', now() - interval '1 day',
       now() + interval '365 days', s, sha256(s), 'bench-' || g
FROM (SELECT g, substr(sha256(int8send(g)), 1, 16) AS s FROM generate_series(0, $1 - 1) g) x;
ANALYZE;
SQL
  echo "== put $1 devices and certificates in the database in $(( $(date +%s) - start )) s"
}

bench_serve() {
  server_cmd=("${FLEETCA_BUILD_DIR:-build}/server/fleetca-server" serve --insecure_plaintext --database_url="$url"
              --listen=127.0.0.1:$1 --http_listen=off)
  "${server_cmd[@]}" 2>"$work/server.log" &
  server_pid=$!
  for _ in $(seq 1 1200); do
    grep -q '"policy index loaded"' "$work/server.log" && break
    sleep 0.5
  done
  grep '"policy index loaded"' "$work/server.log" | python3 -c '
import json, sys
r = json.loads(sys.stdin.readline())
print("== server: policy index loaded: %s devices, %s certificates, %s profiles, %s assignments in %s ms"
      % (r["devices"], r["certificates"], r["profiles"], r["assignments"], r["ms"]))'
}

psql_q() { psql -X -qtA -v ON_ERROR_STOP=1 "$url" -c "$1"; }

cpu_of() {
  awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15 + $16 + $17) / t}' "/proc/$1/stat" 2>/dev/null || echo 0
}

bench_header() {
  local cpu
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
  echo "== machine: $(nproc) cores ($cpu), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
  echo "== load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "== PostgreSQL $(psql_q 'SHOW server_version'): synchronous_commit=$(psql_q 'SHOW synchronous_commit')" \
       "fsync=$(psql_q 'SHOW fsync') shared_buffers=$(psql_q 'SHOW shared_buffers')" \
       "max_connections=$(psql_q 'SHOW max_connections') (same machine, data in $dir)"
}

# pg_cpu: CPU seconds of the benchmark's PostgreSQL processes (its server and the backends
# alive now; backends that ended are not counted).
pg_cpu() {
  local total=0 pid postmaster
  postmaster=$(head -1 "$dir/data/postmaster.pid" 2>/dev/null || echo 0)
  for pid in $postmaster $(pgrep -P "$postmaster" 2>/dev/null); do
    total=$(awk -v t="$total" -v c="$(cpu_of "$pid")" 'BEGIN {print t + c}')
  done
  echo "$total"
}
