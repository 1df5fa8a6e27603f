#!/usr/bin/env bash
# bench/soak.sh: a bounded soak test (docs/reliability.md, "Soak"): does fleetca-server's
# memory level off under a steady mixed load, or grow with time?
#
#  1. a throwaway PostgreSQL (bench/lib.sh bench_setup: fsync and synchronous commit on),
#     `fleetca-server init`, then `fleetca-server serve` over TLS (its self-issued server
#     certificate, the admin credential init wrote, --issuance_rate_limit=0) with its HTTP
#     port on (GET /metrics is what is sampled);
#  2. build/bench/plugin_fleet: broker mqtt-1, its identity and TLS certificate, the trust
#     bundles, SOAK_MQTT_DEVICES devices with a certificate each; a real mosquitto with the
#     fleetca_auth.so plugin in stream mode on 127.0.0.1:SOAK_MQTT_PORT (bench/plugin_lib.sh
#     mosq_start, as the plugin benchmarks run it);
#  3. the peak: issuance_bench closed loop, SOAK_PEAK_CLIENTS clients (32) for
#     SOAK_PEAK_SECONDS (20 s), over the same mutual TLS;
#  4. the soak, SOAK_SECONDS (600 s), all at once:
#     - issuance_bench paced at SOAK_RATE_FRACTION (0.5) of the peak rate (or SOAK_RATE), 32
#       clients at most in flight, latency counted from each request's scheduled time, plus
#       SOAK_REVOKE_RATE (25) RevokeCertificate calls per second (keyCompromise, 4 clients)
#       on certificates issued earlier in the run; a progress line every 15 s. Two phases:
#       growth, then (the last SOAK_STEADY_FRACTION of the run, 0.5) steady: the same rates
#       and connections, but every issuance replays a request issued in the growth phase
#       (same request id and CSR: the stored certificate comes back) and every revocation
#       revokes again a certificate revoked then (already_revoked). The server does all of
#       a call's work but the signing and storing, and the state it keeps (every unexpired
#       client certificate in its policy index, a window of the newest 200,000 changes for
#       brokers' streams, CRL entries) stops growing;
#     - mqtt_connect_bench: SOAK_MQTT_RATE (20) TLS connections per second to the broker
#       with the fleet's device certificates (full handshake, CONNECT, CONNACK, held
#       SOAK_MQTT_HOLD_MS, DISCONNECT), SOAK_MQTT_THREADS (4) threads, for the whole run;
#     - every SOAK_SAMPLE_SECONDS (15 s): the server's RSS (process_resident_memory_bytes
#       from /metrics, and VmRSS from /proc/PID/status as a cross-check), mosquitto's VmRSS,
#       certificates issued and revoked (the server's counters), the client certificates its
#       policy index holds and the devices CRL's entries (/metrics), the rows of the
#       certificates table, the load average;
#  5. SOAK_REST_SECONDS (30 s) more samples with no load, then the table and the verdict.
#
# The verdict ("memory levels off"): over the soak's samples split in thirds by time, the
# largest server RSS of the last third (all of it in the steady phase) is at most
# SOAK_RSS_BOUND_PCT (5) percent above the largest of the middle third (which ends the
# growth phase). Exit 0 when it holds, 3 when it does not (1 for any other failure).
# mosquitto's figures are printed with the same test, for information. With
# SOAK_STEADY_FRACTION=0 the whole run issues new certificates: the RSS then grows with
# the state held whatever the code, and the verdict says so (docs/reliability.md, "Soak").
#
#   bench/soak.sh
#   SOAK_SECONDS=120 bench/soak.sh                 # a short run
#   bench/soak.sh --report FILE.tsv [SOAK_SECONDS [STEADY_AFTER]]   # the table again
#
# Environment (defaults): SOAK_SECONDS (600), SOAK_STEADY_FRACTION (0.5), SOAK_PEAK_SECONDS
# (20), SOAK_PEAK_CLIENTS (32), SOAK_RATE_FRACTION (0.5), SOAK_RATE (none: from the peak),
# SOAK_REVOKE_RATE (25), SOAK_REVOKE_CLIENTS (4), SOAK_CLIENTS (32), SOAK_DEVICES (10000,
# the issuing devices), SOAK_VALIDITY_SECONDS (0: the profile's default, a year),
# SOAK_MQTT_DEVICES (100), SOAK_MQTT_RATE (20), SOAK_MQTT_THREADS (4), SOAK_MQTT_HOLD_MS
# (100), SOAK_SAMPLE_SECONDS (15), SOAK_REST_SECONDS (30), SOAK_RSS_BOUND_PCT (5),
# SOAK_PG_PORT (55490), SOAK_GRPC_PORT (50090), SOAK_HTTP_PORT (50091), SOAK_MQTT_PORT
# (18890), SOAK_BUILD (1: build the five binaries with scripts/build.sh first; 0: use what
# is in the build directory), SOAK_SERVER (the fleetca-server binary, default the build
# directory's), SOAK_SERVER_ENV (VAR=value ... for the server alone, e.g. a heap
# profiler's LD_PRELOAD and settings), FLEETCA_BUILD_DIR (build). The samples are kept in
# SOAK_OUT (default .dev/soak-<date>.tsv).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${SOAK_PG_PORT:-55490}
grpc_port=${SOAK_GRPC_PORT:-50090}
http_port=${SOAK_HTTP_PORT:-50091}
mqtt_port=${SOAK_MQTT_PORT:-18890}
soak_seconds=${SOAK_SECONDS:-600}
peak_seconds=${SOAK_PEAK_SECONDS:-20}
peak_clients=${SOAK_PEAK_CLIENTS:-32}
fraction=${SOAK_RATE_FRACTION:-0.5}
revoke_rate=${SOAK_REVOKE_RATE:-25}
revoke_clients=${SOAK_REVOKE_CLIENTS:-4}
clients=${SOAK_CLIENTS:-32}
devices=${SOAK_DEVICES:-10000}
validity=${SOAK_VALIDITY_SECONDS:-0}
mqtt_devices=${SOAK_MQTT_DEVICES:-100}
mqtt_rate=${SOAK_MQTT_RATE:-20}
mqtt_threads=${SOAK_MQTT_THREADS:-4}
mqtt_hold=${SOAK_MQTT_HOLD_MS:-100}
every=${SOAK_SAMPLE_SECONDS:-15}
rest=${SOAK_REST_SECONDS:-30}
bound=${SOAK_RSS_BOUND_PCT:-5}
steady_fraction=${SOAK_STEADY_FRACTION:-0.5}
steady_after=$(awk -v s="$soak_seconds" -v f="$steady_fraction" 'BEGIN {printf "%d", (f > 0 ? s * (1 - f) : s)}')
export FLEETCA_BUILD_DIR=${FLEETCA_BUILD_DIR:-build}
mkdir -p .dev
out=${SOAK_OUT:-.dev/soak-$(date +%Y%m%d-%H%M%S).tsv}

# soak_report FILE SOAK_SECONDS BOUND_PCT: the table and the verdict from the samples
# (bench/soak.sh --report FILE [SOAK_SECONDS] prints them again from a kept .tsv).
soak_report() {
  local file=$1 soak=$2 steady=$3 bound=$4
  awk -F'\t' -v soak="$soak" -v steady="$steady" -v bound="$bound" '
    NR == 1 { next }
    {
      t = $1; srv = $2 / 1048576; mosq = $4 / 1024
      phase = t > soak ? "rest" : (t > steady ? "steady" : "grow")
      printf "%6d  %8.1f  %8.1f  %8.1f  %9d  %8d  %9d  %7d  %s\n", t, srv, $3 / 1024, mosq, $5, $6, $7, $8, phase
      if (t > soak) next
      third = (t <= soak / 3) ? 1 : (t <= 2 * soak / 3 ? 2 : 3)
      if (!(third in smax) || srv > smax[third]) smax[third] = srv
      if (!(third in mmax) || mosq > mmax[third]) mmax[third] = mosq
      if (t == 0) { s0 = srv; m0 = mosq; c0 = $7 }
      if (t <= steady) { s1 = srv; m1 = mosq; c1 = $7; i1 = $5; r1 = $6 }
      s2 = srv; m2 = mosq; c2 = $7; i2 = $5; r2 = $6
    }
    BEGIN {
      printf "%6s  %8s  %8s  %8s  %9s  %8s  %9s  %7s  %s\n", "t (s)", "server", "(VmRSS)", "mosq.", "issued", "revoked", "index", "CRL", "phase"
      printf "%6s  %8s  %8s  %8s  %9s  %8s  %9s  %7s\n", "", "RSS MiB", "MiB", "RSS MiB", "so far", "so far", "certs", "entries"
    }
    END {
      printf "server RSS: start %.1f MiB, at the end of the growth phase %.1f MiB, end %.1f MiB; largest per third %.1f / %.1f / %.1f MiB\n", s0, s1, s2, smax[1], smax[2], smax[3]
      printf "mosquitto RSS: start %.1f MiB, at the end of the growth phase %.1f MiB, end %.1f MiB; largest per third %.1f / %.1f / %.1f MiB\n", m0, m1, m2, mmax[1], mmax[2], mmax[3]
      if (c1 > c0) {
        printf "growth phase: +%d certificates held in the policy index; server RSS %+.1f MiB (%.0f bytes per certificate), mosquitto %+.1f MiB (%.0f bytes)\n", c1 - c0, s1 - s0, (s1 - s0) * 1048576 / (c1 - c0), m1 - m0, (m1 - m0) * 1048576 / (c1 - c0)
      }
      if (steady < soak) {
        printf "steady phase: certificates issued %+d, revoked %+d, held in the index %+d (nothing new: replays and repeated revocations); server RSS %+.1f MiB, mosquitto %+.1f MiB\n", i2 - i1, r2 - r1, c2 - c1, s2 - s1, m2 - m1
      }
      grow = smax[2] > 0 ? (smax[3] / smax[2] - 1) * 100 : 0
      mgrow = mmax[2] > 0 ? (mmax[3] / mmax[2] - 1) * 100 : 0
      printf "mosquitto: the last third peaks %+.1f%% against the middle third (for information)\n", mgrow
      if (grow <= bound) {
        printf "VERDICT: server memory levels off: the last third peaks %+.1f%% against the middle third (bound +%s%%)\n", grow, bound
        exit 0
      }
      printf "VERDICT: server memory GROWS: the last third peaks %+.1f%% against the middle third (bound +%s%%)\n", grow, bound
      exit 3
    }' "$file"
}

# The rest is one compound command, read whole before it runs: editing this file during a
# run does not change the run.
{
if [ "${1:-}" = --report ]; then
  soak_report "$2" "${3:-$soak_seconds}" "${4:-$steady_after}" "$bound"
  exit
fi

if [ "${SOAK_BUILD:-1}" = 1 ]; then
  scripts/build.sh fleetca-server fleetca_auth_plugin plugin_fleet issuance_bench \
    mqtt_connect_bench >/dev/null
fi
source bench/lib.sh
source bench/plugin_lib.sh   # bin, mosq_start, plugin_cleanup

load_pids=()
soak_cleanup() {
  local p
  for p in "${load_pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  plugin_cleanup   # mosquitto, then bench_cleanup: the server, PostgreSQL and its directory
}

# 1. PostgreSQL, init (admin credential in $work/admin.pem, the server CA in $work/ca.pem).
bench_setup soak "$port"
trap soak_cleanup EXIT
chmod 755 "$work"
# SOAK_SERVER_ENV: variables for the server alone (a heap profiler, for instance), through
# env(1), which execs: the PID sampled is the server's.
server_env=()
if [ -n "${SOAK_SERVER_ENV:-}" ]; then read -r -a server_env <<<"env $SOAK_SERVER_ENV"; fi
server_bin=${SOAK_SERVER:-$bin/server/fleetca-server}
server_cmd=("${server_env[@]}" "$server_bin" serve --database_url="$url" --listen="127.0.0.1:$grpc_port"
            --http_listen="127.0.0.1:$http_port" --tls_dir="$work/tls" --issuance_rate_limit=0
            --log_level=warning)
"${server_cmd[@]}" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 300); do
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  if (exec 3<>"/dev/tcp/127.0.0.1/$grpc_port") 2>/dev/null &&
     curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$http_port/metrics" 2>/dev/null; then
    break
  fi
  sleep 0.2
done
curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$http_port/metrics" || { tail -20 "$work/server.log" >&2; exit 1; }

# 2. The broker's credentials and the MQTT fleet, then mosquitto with the plugin.
fleet=$work/fleet
"$bin/bench/plugin_fleet" --target="localhost:$grpc_port" --cacert="$work/ca.pem" \
  --credential="$work/admin.pem" --out="$fleet" --devices="$mqtt_devices" >"$work/fleet.log"
mosq_start broker "$mqtt_port" plugin
# shellcheck disable=SC2154  # mosq_pid_broker is set by mosq_start (printf -v)
mosq_pid=$mosq_pid_broker

bench_header
echo "== mosquitto $(/usr/sbin/mosquitto -h 2>/dev/null | awk 'NR == 1 {print $3}') with fleetca_auth.so (stream mode) on 127.0.0.1:$mqtt_port, $mqtt_devices MQTT devices"
echo "== server: ${server_cmd[*]}"
tls=(--target="localhost:$grpc_port" --cacert="$work/ca.pem" --credential="$work/admin.pem")

# 3. The peak: closed loop.
echo "== peak: issuance_bench, closed loop, $peak_clients clients, $peak_seconds s (mutual TLS)"
"$bin/bench/issuance_bench" "${tls[@]}" --clients="$peak_clients" --seconds="$peak_seconds" \
  --devices=2000 --reference_seconds=0 | tee "$work/peak.out"
peak=$(awk '/^fleetca SignDeviceCsr, .* clients/ {for (i = 1; i <= NF; ++i) if ($i == "certs/s;") print $(i - 1)}' "$work/peak.out")
[ -n "$peak" ] && [ "$peak" -gt 0 ] || { echo "soak: no peak rate measured" >&2; exit 1; }
rate=${SOAK_RATE:-$(awk -v p="$peak" -v f="$fraction" 'BEGIN {printf "%d", p * f}')}
echo "== peak $peak certificates/s; soak rate $rate/s ($fraction of it unless SOAK_RATE), $revoke_rate revocations/s, $mqtt_rate MQTT connections/s, for $soak_seconds s; from $steady_after s on, the same rates replay (steady phase)"

# One sample: t, server RSS (metrics, bytes), server VmRSS (kB), mosquitto VmRSS (kB),
# issued, revoked, policy index certificates, devices CRL entries, certificate rows, load.
sample() {
  local t=$1 m srv_kb mosq_kb rows
  m=$(curl -fsS -m 5 "http://127.0.0.1:$http_port/metrics" 2>/dev/null | awk '
    /^process_resident_memory_bytes / {rss = $2}
    /^fleetca_certificates_issued_total\{/ && /outcome="issued"/ {issued += $NF}
    /^fleetca_certificates_revoked_total\{/ {revoked += $NF}
    /^fleetca_policy_index_objects\{kind="certificates"\}/ {index_certs = $NF}
    /^fleetca_crl_entries\{/ && /issuer="devices-1"/ && /kind="complete"/ {crl = $NF}
    END {printf "%.0f %.0f %.0f %.0f %.0f", rss, issued, revoked, index_certs, crl}') || m="0 0 0 0 0"
  srv_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || echo 0)
  mosq_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$mosq_pid/status" 2>/dev/null || echo 0)
  rows=$(psql_q "SELECT count(*) FROM certificates" 2>/dev/null || echo 0)
  read -r rss issued revoked index_certs crl <<<"$m"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$rss" "$srv_kb" "$mosq_kb" "$issued" \
    "$revoked" "$index_certs" "$crl" "$rows" "$(cut -d' ' -f1 /proc/loadavg)"
}

# 4. The soak.
printf 't_s\tserver_rss_bytes\tserver_vmrss_kb\tmosquitto_vmrss_kb\tissued\trevoked\tindex_certificates\tcrl_entries\tcertificate_rows\tload1\n' >"$out"
"$bin/bench/issuance_bench" "${tls[@]}" --rate="$rate" --revoke_rate="$revoke_rate" \
  --revoke_clients="$revoke_clients" --clients="$clients" --devices="$devices" --seconds="$soak_seconds" --warmup_seconds=0 \
  --validity_seconds="$validity" --progress_seconds=15 --reference_seconds=0 \
  --steady_after="$( [ "$steady_after" -lt "$soak_seconds" ] && echo "$steady_after" || echo 0)" \
  >"$work/soak.out" 2>&1 &
issue_pid=$!
load_pids+=("$issue_pid")
# issuance_bench makes its keys and CSRs and registers its devices first: the soak's clock
# starts when that is done and its paced load begins.
for _ in $(seq 1 600); do
  grep -q '^registered ' "$work/soak.out" && break
  kill -0 "$issue_pid" 2>/dev/null || { cat "$work/soak.out" >&2; exit 1; }
  sleep 0.2
done
start=$(date +%s)
sample 0 >>"$out"
"$bin/bench/mqtt_connect_bench" --port="$mqtt_port" --fleet="$fleet" --threads="$mqtt_threads" \
  --rate="$mqtt_rate" --hold_ms="$mqtt_hold" --seconds="$soak_seconds" --warmup=0 \
  --label="[mqtt] " >"$work/mqtt.out" 2>&1 &
mqtt_pid=$!
load_pids+=("$mqtt_pid")
tail -n +1 -f "$work/soak.out" --pid="$issue_pid" 2>/dev/null | sed -u 's/^/[issuance] /' &
tail_pid=$!
load_pids+=("$tail_pid")
for k in $(seq 1 $(( (soak_seconds + rest) / every ))); do
  now=$(date +%s)
  due=$(( start + k * every ))
  [ "$due" -gt "$now" ] && sleep $(( due - now ))
  sample $(( k * every )) >>"$out"
  tail -n 1 "$out" | awk -F'\t' '{printf "[sample] t=%ss server RSS %.1f MiB (VmRSS %.1f), mosquitto %.1f MiB, issued %s, revoked %s, index %s certificates, CRL %s entries, load %s\n", $1, $2 / 1048576, $3 / 1024, $4 / 1024, $5, $6, $7, $8, $10}'
done
wait "$issue_pid" || { echo "soak: issuance_bench failed" >&2; cat "$work/soak.out" >&2; exit 1; }
wait "$mqtt_pid" || { echo "soak: mqtt_connect_bench failed" >&2; cat "$work/mqtt.out" >&2; exit 1; }
wait "$tail_pid" 2>/dev/null || true
load_pids=()

cat "$work/mqtt.out"
refused=$(grep -c "connection refused\|refused" "$work/broker/mosquitto.log" || true)
echo "== mosquitto log: $refused lines mentioning a refusal; plugin errors: $(grep -ci 'fleetca_auth.*error' "$work/broker/mosquitto.log" || true)"
echo "== server log: $(grep -c '"level":"error"' "$work/server.log" || true) error lines, $(grep -c '"level":"warning"' "$work/server.log" || true) warning lines"
echo "== samples: $out"

# 5. The table and the verdict.
soak_report "$out" "$soak_seconds" "$steady_after" "$bound"
exit
}
