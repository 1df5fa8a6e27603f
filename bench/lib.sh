# bench/lib.sh: what every server benchmark does first; sourced by bench/*.sh (from the
# repository root, with `set -euo pipefail`).
#
#   bench_setup NAME PG_PORT   a throwaway PostgreSQL in .dev/pg-bench-NAME (fsync and
#                              synchronous commit on, as scripts/pg.sh sets them), a fresh
#                              KEK in the environment only, `fleetca-server init` on it.
#                              Sets: dir, url, work (a temporary directory), server_pid ("").
#                              At exit: the server stopped, PostgreSQL stopped and removed.
#   bench_header               the machine, its load, PostgreSQL's settings.
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
  FLEETCA_KEK=$(build/server/fleetca-server gen-kek --kek_id="bench-$(date +%s)")
  export FLEETCA_KEK
  unset FLEETCA_KEK_FILE FLEETCA_PREVIOUS_KEK_FILES
  build/server/fleetca-server init --database_url="$url" --log_level=warning \
    --admin_credential_file="$work/admin.pem"
}

bench_cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true; fi
  scripts/pg.sh stop "$dir"
  rm -rf "$dir" "$work"
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
