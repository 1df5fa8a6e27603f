#!/usr/bin/env bash
# bench/revocation.sh: revocation at fleet scale, on the real fleetca-server and a throwaway
# PostgreSQL (fsync and synchronous commit on, as scripts/pg.sh sets them):
#  - p50/p99 of RevokeCertificate with 1k and then 1M certificates already revoked, from 4
#    clients as fast as they go, then from one client at a steady 20/s;
#  - time from a revocation to a delta CRL served over HTTP that lists it, at both sizes,
#    and to the complete CRL that lists it;
#  - the server's own CRL builds at both sizes (its "CRL published" log lines: reading the
#    changed revocations from PostgreSQL, applying them to the entries it holds, encoding
#    and signing: served; then stored in PostgreSQL for the other replicas);
#  - the server's memory (VmRSS, and its peak VmHWM) at both sizes;
#  - the reference, same run: `openssl ca -gencrl` on the same 1M entries (its index.txt
#    written from the database).
#
#   bench/revocation.sh [revocation_bench flags]
#
# The revoked certificates (and the live ones the bench revokes) are put in PostgreSQL with
# SQL, not issued one by one (1M issuances would take a quarter of an hour): one device and
# one certificate row per serial, each row holding a copy of a real certificate's DER, and a
# revocation row for the revoked ones, as fleetca writes them. Only revocation paths are
# measured, and they read serials, dates and reasons, never the DER.
#
# Environment: BENCH_REVOKED (the large size, default 1000000), BENCH_CRL_DELTAS (the
# server's --crl_deltas, default true), BENCH_PG_PORT (default 55479), BENCH_GRPC_PORT
# (default 50079), BENCH_HTTP_PORT (default 50080).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${BENCH_PG_PORT:-55479}
grpc_port=${BENCH_GRPC_PORT:-50079}
http_port=${BENCH_HTTP_PORT:-50080}
large=${BENCH_REVOKED:-1000000}
issuer=devices-1

scripts/build.sh fleetca-server revocation_bench >/dev/null
source bench/lib.sh
bench_setup revocation "$port"
deltas=${BENCH_CRL_DELTAS:-true}
server_cmd=(build/server/fleetca-server serve --insecure_plaintext --database_url="$url"
            --listen=127.0.0.1:$grpc_port --http_listen=127.0.0.1:$http_port --crl_deltas=$deltas)
"${server_cmd[@]}" 2>"$work/server.log" &
server_pid=$!

# bench_serial(G): the serial of certificate G, 16 bytes, positive, not starting with 0.
psql_q "CREATE FUNCTION bench_serial(g bigint) RETURNS bytea IMMUTABLE LANGUAGE sql AS \$\$
          SELECT set_byte(d, 0, (get_byte(d, 0) & 127) | 1) FROM decode(md5('bench' || g), 'hex') d \$\$"
# add_certificates FROM TO REVOKED: certificates FROM..TO of issuer devices-1, each with its
# device; revoked (keyCompromise and other reasons, revoked over the last day) when REVOKED
# is true. The change counter is bumped once, as one batch of revocations would.
add_certificates() {
  psql -X -q -v ON_ERROR_STOP=1 "$url" <<SQL
BEGIN;
ALTER TABLE revocations DISABLE TRIGGER revocations_count_crl_change;
INSERT INTO devices (comm_id) SELECT 'bench-' || g FROM generate_series($1, $2) g;
INSERT INTO certificates (serial, issuer_id, kind, comm_id, subject, key_algorithm, status,
                          not_before, not_after, der, fingerprint_sha256)
SELECT s.serial, '$issuer', 'device', 'bench-' || g, 'CN=bench-' || g, 'ecdsa-p256',
       CASE WHEN $3 THEN 'revoked' ELSE 'issued' END, now() - interval '1 day',
       now() + interval '365 days', t.der, sha256(s.serial)
FROM generate_series($1, $2) g
CROSS JOIN LATERAL (SELECT bench_serial(g) AS serial) s
CROSS JOIN (SELECT der FROM certificates WHERE der IS NOT NULL LIMIT 1) t;
INSERT INTO revocations (serial, issuer_id, reason, revoked_at, revision, comment)
SELECT bench_serial(g), '$issuer', (ARRAY[0, 1, 3, 4, 5])[1 + g % 5],
       now() - (g % 86400) * interval '1 second', 0, 'bench'
FROM generate_series($1, $2) g
WHERE $3;
ALTER TABLE revocations ENABLE TRIGGER revocations_count_crl_change;
INSERT INTO crl_state AS s (issuer_id, changes) VALUES ('$issuer', 1)
ON CONFLICT (issuer_id) DO UPDATE SET changes = s.changes + 1;
COMMIT;
ANALYZE devices; ANALYZE certificates; ANALYZE revocations;
SQL
}
# live_serials FROM TO FILE: the serials of certificates FROM..TO, in hex, into FILE.
live_serials() {
  psql_q "SELECT encode(bench_serial(g), 'hex') FROM generate_series($1, $2) g" >"$3"
}
# wait_for_crl ENTRIES: until the server has published a CRL of at least ENTRIES entries.
wait_for_crl() {
  for _ in $(seq 1 600); do
    if [ "$(psql_q "SELECT coalesce(max(k.revoked_count), 0) FROM crls k JOIN crl_ders USING (issuer_id, crl_number) WHERE k.issuer_id = '$issuer' AND k.base_crl_number IS NULL")" -ge "$1" ]; then
      return 0
    fi
    sleep 0.5
  done
  echo "no CRL of $1 entries after 300 s" >&2
  exit 1
}
# builds LABEL: the server's CRL builds since the last call, summarized.
builds_seen=0
builds() {
  local lines
  lines=$(grep '"msg":"CRL \(published\|stored\)"' "$work/server.log" | tail -n +$((builds_seen + 1)) || true)
  builds_seen=$(grep -c '"msg":"CRL \(published\|stored\)"' "$work/server.log" || true)
  echo "$lines" | python3 "$work/builds.py" "$1" "$issuer"
}
cat >"$work/builds.py" <<'PY'
import json, statistics, sys
label, issuer = sys.argv[1], sys.argv[2]
lines = [json.loads(l) for l in sys.stdin if l.strip() and json.loads(l)["issuer"] == issuer]
def stat(rows, k):
    v = [int(r[k]) for r in rows]
    return "median %.0f ms, max %d ms" % (statistics.median(v), max(v))
for kind in ("complete", "delta"):
    rows = [r for r in lines if r["msg"] == "CRL published" and r.get("kind", "complete") == kind]
    stores = [int(r["store_ms"]) for r in lines
              if r["msg"] == "CRL stored" and r.get("kind", "complete") == kind]
    if not rows:
        continue
    full = sum(1 for r in rows if r["read"] == "all")
    print("%sserver %s CRLs of %s: %d (%d from every entry read, %d from the changes), the "
          "last of %s entries (%.3f MiB): served after %s (read %s; apply %s; encode+sign %s)"
          % (label, kind, issuer, len(rows), full, len(rows) - full, rows[-1]["entries"],
             int(rows[-1]["bytes"]) / 1048576, stat(rows, "served_ms"), stat(rows, "read_ms"),
             stat(rows, "apply_ms"), stat(rows, "build_ms")))
    for r in rows:
        if r["read"] == "all" and int(r["entries"]) > 0:
            print("%s  the full build (every entry read from PostgreSQL, encoded, signed): %s "
                  "entries in %s ms (read %s ms, apply %s ms, encode+sign %s ms)"
                  % (label, r["entries"], r["served_ms"], r["read_ms"], r["apply_ms"],
                     r["build_ms"]))
    if stores:
        print("%s  stored in PostgreSQL for the other replicas (the newest of those built): %d, "
              "median %.0f ms, max %d ms" % (label, len(stores), statistics.median(stores),
                                             max(stores)))
PY

bench_header
echo "== server: ${server_cmd[*]}"
bench=(build/bench/revocation_bench --target=127.0.0.1:$grpc_port --http=127.0.0.1:$http_port
       --issuer=$issuer --delta=$deltas "$@")
echo "== bench: ${bench[*]}"
live=6000  # per size: warm-up, timed, paced and CRL samples (see the bench's flags)

# Size 1: 1k revoked, then the live certificates the bench revokes.
add_certificates 1 1000 true
add_certificates 1001 $((1000 + live)) false
live_serials 1001 $((1000 + live)) "$work/live-1k"
wait_for_crl 1000
builds "" >/dev/null
"${bench[@]}" --serials_file="$work/live-1k" --label="[1k revoked] "
builds "[1k revoked] "
rss() { awk '/VmRSS|VmHWM/ {printf "%s %.0f MiB  ", $1, $2 / 1024}' "/proc/$server_pid/status"; }
echo "[1k revoked] fleetca-server memory: $(rss)"

# Size 2: up to $large revoked.
start=$(date +%s)
add_certificates $((1001 + live)) $((1000 + live + large - 1000)) true
echo "== populated $((large - 1000)) more revoked certificates in $(( $(date +%s) - start )) s"
first=$((1001 + live + large - 1000))
add_certificates $first $((first + live - 1)) false
live_serials $first $((first + live - 1)) "$work/live-1m"
wait_for_crl "$large"
# The builder's first CRL after the population read every entry again (the change log does
# not hold the SQL-inserted ones): the cold full build, as at a server's start.
builds "[$large revoked, populated] " | grep 'full build' || true
"${bench[@]}" --serials_file="$work/live-1m" --label="[$large revoked] "
builds "[$large revoked] "
echo "[$large revoked] fleetca-server memory: $(rss)"

# The reference: openssl ca -gencrl on the same entries (now all revoked ones of the issuer),
# a P-256 CA like devices-1 (its key stays wrapped in the database: a new one signs here).
n=$(psql_q "SELECT count(*) FROM revocations WHERE issuer_id = '$issuer'")
# (Unaligned SELECT output, not COPY: COPY's text format would escape the tabs.)
psql_q "SELECT 'R' || E'\t' || to_char(c.not_after AT TIME ZONE 'UTC', 'YYMMDDHH24MISS') || 'Z'
              || E'\t' || to_char(r.revoked_at AT TIME ZONE 'UTC', 'YYMMDDHH24MISS') || 'Z'
              || (ARRAY['', ',keyCompromise', '', ',affiliationChanged', ',superseded',
                        ',cessationOfOperation'])[r.reason + 1]
              || E'\t' || upper(encode(r.serial, 'hex')) || E'\tunknown\t/CN=x'
              FROM revocations r JOIN certificates c USING (serial)
              WHERE r.issuer_id = '$issuer' ORDER BY r.serial" >"$work/index.txt"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=ref \
  -keyout "$work/ca.key" -out "$work/ca.pem" -days 30 2>/dev/null
echo 01 >"$work/crlnumber"
printf '[ca]\ndefault_ca = ref\n[ref]\ndatabase = %s\ncrlnumber = %s\ncertificate = %s\nprivate_key = %s\ndefault_md = sha256\ndefault_crl_days = 1\n' \
  "$work/index.txt" "$work/crlnumber" "$work/ca.pem" "$work/ca.key" >"$work/ca.cnf"
t0=$(date +%s.%N)
openssl ca -gencrl -config "$work/ca.cnf" -out "$work/ref.crl" 2>"$work/ref.err"
t1=$(date +%s.%N)
echo "reference, same run: openssl ca -gencrl on the same $n entries: $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}') s"
