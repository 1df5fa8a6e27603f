#!/usr/bin/env bash
# bench/issuance.sh: SignDeviceCsr throughput and latency of the real fleetca-server (every
# certificate committed) over gRPC with mutual TLS, on a throwaway PostgreSQL on the same
# machine (fsync and synchronous commit on, as scripts/pg.sh sets them), optionally with
# millions of certificates already in the table, and in the same run the references:
#  - a plain in-process OpenSSL loop (parse, verify, build, sign, encode) on 1 and 2 threads
#    (by issuance_bench itself, after the load);
#  - fleetca's own CSR check and certificate builder in-process (pki::ParseCsr,
#    pki::BuildCertificateDer) on 1 and 2 threads (by issuance_bench): the server's crypto
#    and encoding floor per certificate;
#  - the floor of a gRPC call on the same connections (BENCH_FLOOR_SECONDS, below);
#  - PostgreSQL's own commit rate on the same cluster (pgbench, 16 clients, one small insert
#    per transaction), free and under one transaction-scoped advisory lock, as fleetca's
#    change-log/audit lock (fleetca_log_lock) is held to commit: the ceiling that lock puts
#    on any writer, issuance included;
#  - cfssl serve (Debian's golang-cfssl: cfssl 1.2.0 of 2016-08) signing P-256 CSRs with a
#    P-256 CA, driven by wrk (bench/cfssl_sign.lua: the same clients and seconds, HTTP/1.1
#    keep-alive on 127.0.0.1, a warm-up first), after fleetca's server has stopped:
#    (a) without a database, (b) with its PostgreSQL certdb (-db-config, database "cfssl" of
#    the same cluster, schema as cfssl's certdb/pg/migrations/001_CreateCertificates.sql of
#    that time, below); the rows cfssl stored are counted after (b). cfssl's database/sql
#    pool keeps Go's default of 2 idle connections (this cfssl sets no other), so with 32
#    clients it opens and closes PostgreSQL connections all the time: (b)'s line says how
#    many, as that is most of its PostgreSQL CPU.
#
#   bench/issuance.sh [issuance_bench flags]
#     e.g. bench/issuance.sh --clients=32 --seconds=60      (the defaults)
#          BENCH_PREFILL=10000000 bench/issuance.sh         (the rate at 10M certificates)
#   --clients, --seconds and --warmup_seconds (issuance_bench's defaults 32, 60 and 3) are
#   read here too: wrk runs with as many connections, as long, after as long a warm-up.
#
# Steps: build (scripts/build.sh fleetca-server issuance_bench, into FLEETCA_BUILD_DIR);
# PostgreSQL in .dev/pg-bench-issuance-PORT, shared_buffers set (ALTER SYSTEM, restart);
# `fleetca-server init` (the admin credential in $work/admin.pem, the server CA bundle in
# $work/ca.pem); the prefill; `fleetca-server serve` (TLS, client certificates,
# --issuance_rate_limit=0, no HTTP port, --access_log=errors: no log line per successful
# call, as --log_level=warning had it), waiting for its "serving" line and for its policy
# index to load (every unexpired certificate is read into it); issuance_bench; the server
# stopped; the references; a summary of the rates side by side.
#
# Environment:
#   FLEETCA_BUILD_DIR          build directory (default build), for every binary here
#   BENCH_BUILD=0              run the binaries in it as they are (a directory with
#                              server/fleetca-server and bench/issuance_bench: an A/B of
#                              two builds)
#   BENCH_PLAINTEXT=1          serve --insecure_plaintext instead of mutual TLS (a diagnostic:
#                              what TLS costs; the issue's target is over TLS)
#   BENCH_PREFILL=N            certificates put in the table before the server starts
#                              (default 0), with SQL, in transactions of 1,000,000 rows:
#                              device certificates of the active devices issuer for 100,000
#                              devices prefill-<i> (inserted too), random 16-byte serials,
#                              a 560-byte stand-in DER, its SHA-256 as fingerprint, a unique
#                              request id, created over the past year, unexpired, status
#                              'issued'. The table's indexes and keys are dropped for the load
#                              and rebuilt after it (then VACUUM ANALYZE and a checkpoint): all
#                              of them exist during the measured run. Prints how long it took
#                              and the table's and each index's size (1,000,000: 49 to 67 s
#                              on 2 shared cores, 1.2 GB of which 0.3 GB indexes).
#   BENCH_PG_SHARED_BUFFERS    PostgreSQL shared_buffers (default 1GB)
#   BENCH_PG_SETTINGS          more PostgreSQL settings, "name=value ..." (ALTER SYSTEM, set
#                              with shared_buffers), e.g. "wal_compression=lz4
#                              max_wal_size=8GB"; printed in the header and the summary
#   BENCH_SYNCHRONOUS_COMMIT   default on; off is a diagnostic only, to see what the WAL flush
#                              costs: certificates are then not durable when the reply is
#                              sent, which the issue's target does not allow
#   FLEETCA_DB_MAX_CONNECTIONS server pool (default the server's)
#   BENCH_PG_PORT              default 55478
#   BENCH_GRPC_PORT            default 50078
#   BENCH_CFSSL_PORT           cfssl serve's port for (a), the next one for (b); default 8878
#   BENCH_CFSSL=0              skip the cfssl references
#   BENCH_FLOOR_SECONDS        length of the floor loop after the timed run (default 15; 0:
#                              none): the same connections call grpc.health.v1.Health/Check,
#                              gRPC's own health service, so the CPU per call it prints (the
#                              load generator's and the server's) is what a gRPC call over
#                              this transport costs with nothing of fleetca's work in it
set -euo pipefail
cd "$(dirname "$0")/.."
port=${BENCH_PG_PORT:-55478}
grpc_port=${BENCH_GRPC_PORT:-50078}
cfssl_port=${BENCH_CFSSL_PORT:-8878}
prefill=${BENCH_PREFILL:-0}
shared_buffers=${BENCH_PG_SHARED_BUFFERS:-1GB}
sync_commit=${BENCH_SYNCHRONOUS_COMMIT:-on}
plaintext=${BENCH_PLAINTEXT:-0}
floor_seconds=${BENCH_FLOOR_SECONDS:-15}
bin=${FLEETCA_BUILD_DIR:-build}
[[ "$prefill" =~ ^[0-9]+$ ]] || { echo "issuance.sh: BENCH_PREFILL must be a number of certificates" >&2; exit 2; }
[[ "$shared_buffers" =~ ^[0-9]+[kMGT]?B?$ ]] ||
  { echo "issuance.sh: BENCH_PG_SHARED_BUFFERS: expected a size such as 1GB or 512MB" >&2; exit 2; }

# What issuance_bench will do (its defaults unless given), for wrk to do the same.
clients=32 seconds=60 warmup=3
args=("$@")
for ((i = 0; i < ${#args[@]}; ++i)); do
  case ${args[i]} in
    --clients=*) clients=${args[i]#*=} ;;
    --seconds=*) seconds=${args[i]#*=} ;;
    --warmup_seconds=*) warmup=${args[i]#*=} ;;
    --clients) clients=${args[i + 1]:-$clients} ;;
    --seconds) seconds=${args[i + 1]:-$seconds} ;;
    --warmup_seconds) warmup=${args[i + 1]:-$warmup} ;;
  esac
done

if [ "${BENCH_BUILD:-1}" = 1 ]; then
  FLEETCA_BUILD_DIR=$bin scripts/build.sh fleetca-server issuance_bench >/dev/null
fi
source bench/lib.sh   # bench_setup, psql_q, cpu_of, pg_cpu, bench_header, bench_cleanup

# 1. PostgreSQL (its own directory per port: two runs on other ports do not meet) and init
# (bench_setup, with $bin's binaries), then shared_buffers and BENCH_PG_SETTINGS with a
# restart.
export FLEETCA_BUILD_DIR=$bin
bench_setup "issuance-$port" "$port"
cfssl_pid=
issuance_cleanup() {
  if [ -n "$cfssl_pid" ]; then kill "$cfssl_pid" 2>/dev/null && wait "$cfssl_pid" 2>/dev/null || true; fi
  bench_cleanup   # the server, PostgreSQL and its directory, $work
}
trap issuance_cleanup EXIT
# apply_pg_settings: BENCH_PG_SETTINGS with ALTER SYSTEM (they take effect at the next
# reload or restart).
apply_pg_settings() {
  local setting
  for setting in ${BENCH_PG_SETTINGS:-}; do
    [[ "$setting" =~ ^[a-z_]+=[A-Za-z0-9._]+$ ]] ||
      { echo "issuance.sh: BENCH_PG_SETTINGS: expected name=value, got '$setting'" >&2; exit 2; }
    psql -X -q -v ON_ERROR_STOP=1 "$url" -c "ALTER SYSTEM SET ${setting%%=*} = '${setting#*=}'"
  done
}
psql -X -q -v ON_ERROR_STOP=1 "$url" -c "ALTER SYSTEM SET shared_buffers = '$shared_buffers'"
apply_pg_settings
scripts/pg.sh stop "$dir"
scripts/pg.sh start "$dir" "$port"
if [ "$sync_commit" != on ]; then
  psql -X -q "$url" -c "ALTER DATABASE fleetca SET synchronous_commit = '$sync_commit'"
fi

# 2. The prefill (BENCH_PREFILL).
prefill_chunk=1000000
prefill_devices=100000
prefill_certificates() {
  local n=$1 issuer t0 t1 t2 lo hi der_expr="" i
  t0=$(date +%s.%N)
  issuer=$(psql_q "SELECT id FROM issuers WHERE purpose = 'devices' AND state = 'active'")
  [ -n "$issuer" ] || { echo "issuance.sh: no active devices issuer after init" >&2; exit 1; }
  # The stand-in DER: 560 bytes of 18 SHA-256 chunks of the serial (incompressible, as a
  # certificate is; PostgreSQL would not compress a row this small anyway).
  for i in $(seq 1 18); do der_expr+="${der_expr:+ || }sha256(s || '\\x$(printf %02x "$i")'::bytea)"; done
  psql -X -q -v ON_ERROR_STOP=1 "$url" <<SQL
-- During the load only: fewer checkpoints (reset before the server starts).
ALTER SYSTEM SET max_wal_size = '32GB';
SELECT pg_reload_conf() \g /dev/null
INSERT INTO devices (comm_id, attributes, groups)
SELECT 'prefill-' || g, jsonb_build_object('site', 's' || (g % 10)), ARRAY['line-' || (g % 10)]
FROM generate_series(0, $prefill_devices - 1) g;
-- Every key and index of certificates (and the foreign keys that need them), to rebuild
-- after the load, in this order: keys, foreign keys, other indexes.
CREATE TABLE bench_prefill_ddl AS
SELECT 1 AS ord, format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname) AS drop_sql,
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname, pg_get_constraintdef(oid)) AS create_sql
  FROM pg_constraint WHERE confrelid = 'certificates'::regclass AND contype = 'f'
UNION ALL
SELECT 2, format('ALTER TABLE certificates DROP CONSTRAINT %I', conname),
       format('ALTER TABLE certificates ADD CONSTRAINT %I %s', conname, pg_get_constraintdef(oid))
  FROM pg_constraint WHERE conrelid = 'certificates'::regclass AND contype IN ('p', 'u')
UNION ALL
SELECT 3, format('DROP INDEX %s', indexrelid::regclass), pg_get_indexdef(indexrelid)
  FROM pg_index WHERE indrelid = 'certificates'::regclass
   AND indexrelid NOT IN (SELECT conindid FROM pg_constraint WHERE conrelid = 'certificates'::regclass);
SELECT drop_sql FROM bench_prefill_ddl ORDER BY ord \gexec
SQL
  for ((lo = 0; lo < n; lo += prefill_chunk)); do
    hi=$((lo + prefill_chunk < n ? lo + prefill_chunk : n))
    # One transaction per chunk. Serials: 16 bytes, positive (first bit clear), from g.
    psql -X -q -v ON_ERROR_STOP=1 "$url" <<SQL
INSERT INTO certificates (serial, issuer_id, kind, comm_id, subject, key_algorithm, status,
                          not_before, not_after, der, fingerprint_sha256, request_id, csr_sha256,
                          requester, created_at)
SELECT s, '$issuer', 'device', 'prefill-' || (g % $prefill_devices), 'CN=prefill-' || (g % $prefill_devices),
       'ecdsa-p256', 'issued', t - interval '5 minutes', t + interval '366 days', der, sha256(der),
       'prefill-r' || g,
       sha256(int8send(-g - 1)), 'admin', t
FROM (SELECT g, s, t, substr($der_expr, 1, 560) AS der
      FROM (SELECT g, set_byte(h, 0, get_byte(h, 0) & 127) AS s,
                   now() - interval '365 days' * random() AS t
            FROM (SELECT g, substr(sha256(int8send(g)), 1, 16) AS h
                  FROM generate_series($lo, $hi - 1) g) a) b
      OFFSET 0) c;   -- OFFSET 0: der computed once, not again inside sha256(der)
SQL
    echo "== prefill: $hi of $n certificates in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.0f", b - a}') s"
  done
  t1=$(date +%s.%N)
  psql -X -q -v ON_ERROR_STOP=1 "$url" <<SQL
SET maintenance_work_mem = '1GB';
SELECT create_sql FROM bench_prefill_ddl ORDER BY CASE ord WHEN 2 THEN 1 WHEN 1 THEN 2 ELSE 3 END \gexec
DROP TABLE bench_prefill_ddl;
VACUUM ANALYZE certificates;
VACUUM ANALYZE devices;
ALTER SYSTEM RESET max_wal_size;
SELECT pg_reload_conf() \g /dev/null
CHECKPOINT;
SQL
  # The load's max_wal_size is reset above: BENCH_PG_SETTINGS's own again, if it has one.
  apply_pg_settings
  psql_q "SELECT pg_reload_conf()" >/dev/null
  t2=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$n" \
    'BEGIN {printf "== prefill: %d certificates in %.0f s (rows %.0f s, keys and indexes rebuilt, VACUUM ANALYZE, checkpoint %.0f s)\n", n, c - a, b - a, c - b}'
  psql_q "SELECT '== prefill sizes: certificates ' || pg_size_pretty(pg_total_relation_size('certificates'))
                 || ' in all: table ' || pg_size_pretty(pg_relation_size('certificates'))
                 || ', TOAST and maps ' || pg_size_pretty(pg_total_relation_size('certificates') - pg_relation_size('certificates')
                                                 - pg_indexes_size('certificates'))
                 || ', indexes ' || pg_size_pretty(pg_indexes_size('certificates')) || ' ('
                 || (SELECT string_agg(c.relname || ' ' || pg_size_pretty(pg_relation_size(c.oid)), ', '
                                       ORDER BY pg_relation_size(c.oid) DESC)
                       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                      WHERE i.indrelid = 'certificates'::regclass) || ')'"
}
if [ "$prefill" -gt 0 ]; then prefill_certificates "$prefill"; fi

# 3. The server.
if [ "$plaintext" = 1 ]; then
  transport="plaintext gRPC (BENCH_PLAINTEXT=1: a diagnostic, not the issue's setting)"
  server_cmd=("$bin/server/fleetca-server" serve --insecure_plaintext --database_url="$url"
              --listen="127.0.0.1:$grpc_port" --http_listen=off --issuance_rate_limit=0
              --log_level=info --access_log=errors)
  bench_cmd=("$bin/bench/issuance_bench" --target="127.0.0.1:$grpc_port" "$@")
else
  transport="gRPC over mutual TLS (the server's self-issued certificate, the admin's client certificate; one connection per client, kept)"
  server_cmd=("$bin/server/fleetca-server" serve --database_url="$url" --listen="127.0.0.1:$grpc_port"
              --http_listen=off --tls_dir="$work/tls" --issuance_rate_limit=0
              --log_level=info --access_log=errors)
  bench_cmd=("$bin/bench/issuance_bench" --target="localhost:$grpc_port" --cacert="$work/ca.pem"
             --credential="$work/admin.pem" "$@")
fi
"${server_cmd[@]}" 2>"$work/server.log" &
server_pid=$!
# The bench reads the server's CPU itself (/proc) over its issuance loop and its floor loop.
bench_cmd=("${bench_cmd[0]}" --server_pid="$server_pid" --floor_seconds="$floor_seconds"
           "${bench_cmd[@]:1}")
# "serving", then the policy index loaded (in the background: with millions of
# certificates it takes a while, and its CPU would otherwise land in the measurement).
deadline=$((SECONDS + 3600))
for what in '"msg":"serving"' '"msg":"policy index loaded"'; do
  until grep -q "$what" "$work/server.log"; do
    kill -0 "$server_pid" 2>/dev/null || { echo "issuance.sh: the server stopped:" >&2; tail -20 "$work/server.log" >&2; exit 1; }
    [ "$SECONDS" -lt "$deadline" ] || { echo "issuance.sh: no $what line from the server in an hour:" >&2; tail -20 "$work/server.log" >&2; exit 1; }
    sleep 0.2
  done
done
index_line=$(grep -m1 '"msg":"policy index loaded"' "$work/server.log" | python3 -c '
import json, sys
r = json.loads(sys.stdin.readline())
print("policy index loaded: %s devices, %s certificates in %s ms" % (r.get("devices"), r.get("certificates"), r.get("ms")))' ||
  echo "policy index loaded")

bench_header
if [ -n "${BENCH_PG_SETTINGS:-}" ]; then
  shown=""
  for setting in $BENCH_PG_SETTINGS; do shown+=" ${setting%%=*}=$(psql_q "SHOW ${setting%%=*}")"; done
  echo "== PostgreSQL settings of BENCH_PG_SETTINGS:$shown"
fi
echo "== certificates in the table before the run: $(psql_q "SELECT count(*) FROM certificates") (BENCH_PREFILL=$prefill); $index_line"
echo "== transport: $transport"
echo "== server: ${server_cmd[*]} (FLEETCA_DB_MAX_CONNECTIONS=${FLEETCA_DB_MAX_CONNECTIONS:-default})"
echo "== bench: ${bench_cmd[*]}"
# CPU seconds (user + system, cpu_of and pg_cpu in bench/lib.sh) of the server, and of
# PostgreSQL (postmaster, its live processes and those it has reaped): a per-certificate
# cost that a noisy, shared machine disturbs less than the rate.
# And the WAL PostgreSQL wrote (pg_stat_wal): records, full-page images (a page's first
# change after a checkpoint) and bytes.
wal_sql="SELECT wal_records || ' ' || wal_fpi || ' ' || wal_bytes FROM pg_stat_wal"
server_cpu0=$(cpu_of "$server_pid"); pg_cpu0=$(pg_cpu); wal0=$(psql_q "$wal_sql")
"${bench_cmd[@]}" | tee "$work/bench.out"
server_cpu1=$(cpu_of "$server_pid"); pg_cpu1=$(pg_cpu); wal1=$(psql_q "$wal_sql")
requests=$(awk '/in all:/ {print $NF}' "$work/bench.out")
if [ -n "$requests" ] && [ "$requests" -gt 0 ]; then
  # The server's figure is the bench's own (its issuance loop only, not the floor loop
  # after it); PostgreSQL's spans the whole bench (the floor loop does not touch it).
  server_us=$(awk '/^fleetca-server CPU over the same span:/ {print $(NF - 3)}' "$work/bench.out")
  awk -v s="${server_us:-}" -v s0="$server_cpu0" -v s1="$server_cpu1" -v p0="$pg_cpu0" -v p1="$pg_cpu1" -v n="$requests" \
    'BEGIN {if (s == "") s = (s1 - s0) * 1e6 / n; printf "== CPU per certificate over all %d requests: fleetca-server %.0f us, PostgreSQL %.0f us\n", n, s, (p1 - p0) * 1e6 / n}'
  read -r r0 f0 b0 <<<"$wal0"; read -r r1 f1 b1 <<<"$wal1"
  awk -v n="$requests" -v r="$((r1 - r0))" -v f="$((f1 - f0))" -v b="$((b1 - b0))" -v cp="$(psql_q "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter")" \
    'BEGIN {printf "== WAL per certificate: %.1f records, %.2f full-page images, %.0f bytes (%d checkpoints since the cluster started)\n", r / n, f / n, b / n, cp}'
fi
# The server stops here: the references below have the machine to themselves.
kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
server_pid=
warnings=$(grep -c '"level":"\(warning\|error\)"' "$work/server.log" || true)
if [ "${warnings:-0}" -gt 0 ]; then
  echo "== server log: $warnings warnings or errors, the last ones:"
  grep '"level":"\(warning\|error\)"' "$work/server.log" | tail -n 3
fi

echo "== reference: PostgreSQL commits/s on the same cluster (pgbench -c 16 -j 2 -T 10, one insert of 500 bytes per transaction)"
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
psql -X -q "$url" -c "CREATE TABLE bench_ref (id bigserial PRIMARY KEY, v text)"
scripts=$(mktemp -d -p "$work")
printf 'BEGIN;\nINSERT INTO bench_ref (v) VALUES (repeat(%s, 500));\nCOMMIT;\n' "'x'" >"$scripts/free.sql"
printf 'BEGIN;\nSELECT pg_advisory_xact_lock(42);\nINSERT INTO bench_ref (v) VALUES (repeat(%s, 500));\nCOMMIT;\n' "'x'" \
  >"$scripts/locked.sql"
for variant in free locked; do
  tps=$("$pg_bin/pgbench" -n -c 16 -j 2 -T 10 -f "$scripts/$variant.sql" "$url" 2>&1 |
        awk '/^tps/ {printf "%.0f", $3} /latency average/ {lat = $4} END {printf " commits/s, latency average %s ms", lat}')
  echo "reference PostgreSQL, $( [ $variant = free ] && echo "no shared lock" || echo "under one advisory xact lock held to commit"): $tps" |
    tee -a "$work/references.out"
done
echo "== certificates committed in PostgreSQL (warm-up included): $(psql_q "SELECT count(*) FROM certificates WHERE status = 'issued'") issued in the table, $(psql_q "SELECT count(*) FROM certificates WHERE status = 'issued' AND coalesce(request_id, '') NOT LIKE 'prefill-r%'") of them not prefilled" \
     "(left reserved: $(psql_q "SELECT count(*) FROM certificates WHERE status = 'reserved'"))"
# Certificates stored by one transaction share its start time (created_at = now()); the
# prefill's rows (request ids prefill-r<i>) are not the server's.
echo "== group commits: $(psql_q "SELECT count(*) || ' transactions, ' || round(avg(n), 1) || ' certificates per transaction on average, largest ' || max(n) FROM (SELECT count(*) AS n FROM certificates WHERE coalesce(request_id, '') NOT LIKE 'prefill-r%' GROUP BY created_at) t")"

# 4. cfssl serve, (a) without and (b) with its PostgreSQL certdb.
# cfssl's certdb/pg/migrations/001_CreateCertificates.sql as of the cfssl this Debian binary
# is built from (1.2.0+git20160825): the columns its certdb.CertificateRecord inserts
# (serial_number, authority_key_identifier, ca_label, status, reason, expiry, revoked_at,
# pem; `strings /usr/bin/cfssl | grep 'INSERT INTO certificates'`), keyed by serial and AKI,
# and ocsp_responses (not written by sign). Later versions add created_at, issued_at,
# not_before, metadata, sans, common_name: this binary would not fill them.
cfssl_schema() {
  cat <<'SQL'
-- +goose Up
CREATE TABLE certificates (
  serial_number            bytea NOT NULL,
  authority_key_identifier bytea NOT NULL,
  ca_label                 bytea,
  status                   bytea NOT NULL,
  reason                   int,
  expiry                   timestamptz,
  revoked_at               timestamptz,
  pem                      bytea NOT NULL,
  PRIMARY KEY (serial_number, authority_key_identifier)
);

CREATE TABLE ocsp_responses (
  serial_number            bytea NOT NULL,
  authority_key_identifier bytea NOT NULL,
  body                     bytea NOT NULL,
  expiry                   timestamptz,
  PRIMARY KEY (serial_number, authority_key_identifier),
  FOREIGN KEY (serial_number, authority_key_identifier)
    REFERENCES certificates (serial_number, authority_key_identifier)
);
SQL
}

# cfssl_run LABEL PORT [DB_CONFIG]: cfssl serve on 127.0.0.1:PORT, one request checked, a
# warm-up, then the measured wrk run; prints the reference line (or why there is none).
cfssl_run() {
  local label=$1 cport=$2 dbconf=${3:-} sign_url reply c0 c1 p0 p1 s0 s1 line
  local cmd=(cfssl serve -address=127.0.0.1 -port="$cport" -ca="$cf/ca.pem" -ca-key="$cf/ca-key.pem"
             -config="$cf/config.json" -loglevel=2)
  if [ -n "$dbconf" ]; then cmd+=(-db-config="$dbconf"); fi
  echo "== cfssl, $label: ${cmd[*]}"
  "${cmd[@]}" >"$cf/serve-$cport.log" 2>&1 &
  cfssl_pid=$!
  for _ in $(seq 1 150); do
    kill -0 "$cfssl_pid" 2>/dev/null || break
    if (exec 3<>"/dev/tcp/127.0.0.1/$cport") 2>/dev/null; then break; fi
    sleep 0.2
  done
  if ! kill -0 "$cfssl_pid" 2>/dev/null || ! (exec 3<>"/dev/tcp/127.0.0.1/$cport") 2>/dev/null; then
    echo "reference cfssl serve, $label: not measured: cfssl serve did not start: $(tail -n 2 "$cf/serve-$cport.log" | tr '\n' ' ')" |
      tee -a "$work/references.out"
    cfssl_stop
    return 0
  fi
  sign_url=http://127.0.0.1:$cport/api/v1/cfssl/sign
  reply=$(curl -sS -m 10 -d @"$cf/request.json" "$sign_url" 2>&1 || true)
  if [[ "$reply" != *'"success":true'* ]]; then
    echo "reference cfssl serve, $label: not measured: a sign request failed: ${reply:0:300} $(tail -n 2 "$cf/serve-$cport.log" | tr '\n' ' ')" |
      tee -a "$work/references.out"
    cfssl_stop
    return 0
  fi
  if [ "$wrk_warmup" -gt 0 ]; then
    wrk -t"$wrk_threads" -c"$clients" -d"${wrk_warmup}s" -s bench/cfssl_sign.lua "$sign_url" -- "$cf/request.json" >/dev/null
  fi
  c0=$(cpu_of "$cfssl_pid"); p0=$(pg_cpu)
  s0=$(psql_q "SELECT coalesce(sum(sessions), 0) FROM pg_stat_database" 2>/dev/null || echo 0)
  wrk -t"$wrk_threads" -c"$clients" -d"${wrk_seconds}s" --latency -s bench/cfssl_sign.lua "$sign_url" -- "$cf/request.json" |
    tee "$cf/wrk-$cport.out"
  c1=$(cpu_of "$cfssl_pid"); p1=$(pg_cpu)
  s1=$(psql_q "SELECT coalesce(sum(sessions), 0) FROM pg_stat_database" 2>/dev/null || echo 0)
  line=$(grep '^cfssl_sign:' "$cf/wrk-$cport.out" || true)
  if [ -z "$line" ]; then
    echo "reference cfssl serve, $label: not measured: wrk printed no result" | tee -a "$work/references.out"
    cfssl_stop
    return 0
  fi
  # cfssl_sign: requests N, ok K, errors E (...), seconds D, ok/s X, p50 A ms, p99 B ms
  awk -v label="$label" -v c0="$c0" -v c1="$c1" -v p0="$p0" -v p1="$p1" -v db="${dbconf:+1}" \
      -v sessions="$((s1 - s0))" '
    {
      for (i = 1; i <= NF; ++i) {
        if ($i == "ok") ok = $(i + 1) + 0
        if ($i == "errors") errors = $(i + 1) + 0
        if ($i == "ok/s") rate = $(i + 1) + 0
        if ($i == "p50") p50 = $(i + 1)
        if ($i == "p99") p99 = $(i + 1)
      }
    }
    END {
      n = ok > 0 ? ok : 1
      printf "reference cfssl serve, %s: %.0f certs/s, p50 %s ms, p99 %s ms, errors %d; CPU per certificate: cfssl %.0f us", label, rate, p50, p99, errors, (c1 - c0) * 1e6 / n
      if (db) printf ", PostgreSQL %.0f us (%d PostgreSQL connections opened during the run)", (p1 - p0) * 1e6 / n, sessions
      printf "\n"
    }' <<<"$line" | tee -a "$work/references.out"
  cfssl_stop
}
cfssl_stop() {
  if [ -n "$cfssl_pid" ]; then kill "$cfssl_pid" 2>/dev/null && wait "$cfssl_pid" 2>/dev/null || true; fi
  cfssl_pid=
}

if [ "${BENCH_CFSSL:-1}" = 0 ]; then
  echo "== cfssl references skipped (BENCH_CFSSL=0)"
elif ! command -v cfssl >/dev/null || ! command -v wrk >/dev/null; then
  echo "reference cfssl serve: not measured: cfssl or wrk is missing (apt-get install golang-cfssl wrk)" |
    tee -a "$work/references.out"
else
  cf=$work/cfssl
  mkdir -p "$cf"
  wrk_seconds=$(awk -v s="$seconds" 'BEGIN {s = int(s + 0.5); print s < 1 ? 1 : s}')
  wrk_threads=$((clients < 2 ? clients : 2))
  wrk_warmup=$(awk -v s="$warmup" 'BEGIN {print int(s + 0.5)}')
  echo "== reference: cfssl $(cfssl version 2>/dev/null | awk '/^Version/ {print $2}') (golang-cfssl $(dpkg-query -W -f='${Version}' golang-cfssl 2>/dev/null || echo '?')) serve, plain HTTP/1.1 keep-alive on 127.0.0.1, P-256 CA and CSR, profile client (client auth, 1 year); wrk $(wrk -v 2>&1 | awk 'NR == 1 {print $2}') -t$wrk_threads -c$clients -d${wrk_seconds}s after a ${wrk_warmup} s warm-up, bench/cfssl_sign.lua"
  # The CA (P-256, self-signed: SKI, so cfssl records an AKI), the signing policy and one
  # device CSR (P-256), signed over and over (each signature draws a new random serial).
  openssl ecparam -name prime256v1 -genkey -noout -out "$cf/ca-key.pem"
  openssl req -x509 -new -key "$cf/ca-key.pem" -sha256 -days 3650 -subj "/CN=bench cfssl CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$cf/ca.pem"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$cf/device.key" \
    -subj "/CN=bench-device-1" -out "$cf/device.csr" 2>/dev/null
  cat >"$cf/config.json" <<'JSON'
{
  "signing": {
    "default": {"expiry": "8760h"},
    "profiles": {
      "client": {"usages": ["digital signature", "client auth"], "expiry": "8760h"}
    }
  }
}
JSON
  python3 -c 'import json, sys; print(json.dumps({"certificate_request": open(sys.argv[1]).read(), "profile": "client"}))' \
    "$cf/device.csr" >"$cf/request.json"

  cfssl_run "no database" "$cfssl_port"

  cfssl_help=$(cfssl serve -h 2>&1 || true)   # (it exits non-zero after its help)
  if [[ "$cfssl_help" != *-db-config* ]]; then
    echo "reference cfssl serve, PostgreSQL certdb: not measured: this cfssl has no -db-config flag" |
      tee -a "$work/references.out"
  else
    psql -X -q -v ON_ERROR_STOP=1 "$url" -c "CREATE DATABASE cfssl"
    cfssl_url=$(scripts/pg.sh url "$port" cfssl)
    cfssl_schema | psql -X -q -v ON_ERROR_STOP=1 "$cfssl_url"
    # lib/pq: no TLS on this loopback cluster (its default, sslmode=require, would fail).
    printf '{"driver": "postgres", "data_source": "%s?sslmode=disable"}\n' "$cfssl_url" >"$cf/db-config.json"
    cfssl_run "PostgreSQL certdb" "$((cfssl_port + 1))" "$cf/db-config.json"
    echo "== certificates cfssl stored in its certdb (database cfssl, warm-up and check included): $(psql -X -qtA "$cfssl_url" -c "SELECT count(*) FROM certificates")"
  fi
fi

# 5. Side by side.
echo "== summary ($transport; BENCH_PREFILL=$prefill, shared_buffers=$shared_buffers, synchronous_commit=$sync_commit${BENCH_PG_SETTINGS:+, $BENCH_PG_SETTINGS})"
grep -h '^fleetca SignDeviceCsr, \|^floor: \|^reference OpenSSL loop\|^reference fleetca pki loop' "$work/bench.out" || true
grep -h '^reference ' "$work/references.out" 2>/dev/null || true
