#!/usr/bin/env bash
# compose-bootstrap.sh: the broker-bootstrap job of deploy/compose.yaml. With the admin
# credential written by `fleetca-server init`, it makes fleetca know the broker and writes
# everything mosquitto and its fleetca_auth.so plugin need (deploy/mosquitto-container.conf):
#
#   $OUT_DIR/fleetca-server-ca.pem  verifies fleetca's server certificate (init's ca.pem)
#   $OUT_DIR/mqtt-1.pem             the broker's API identity: key, certificate, chain (0600)
#   $OUT_DIR/broker.key, broker.pem the broker's TLS server key (0600) and certificate + chain
#   $OUT_DIR/clients-ca.pem         the client-auth trust bundle (devices and operators CAs)
#
# Safe to run again: the broker, its identity and a server certificate with more than 30 days
# left are kept; the trust bundle and fleetca's CA file are fetched again every time (run it
# after a CA rotation, then send mosquitto SIGHUP). Every fleetca CLI call of the compose
# setup is in this file, in the functions below.
#
# It runs as root in the bootstrap image (deploy/Dockerfile, target bootstrap): it reads the
# admin credential (owned by the fleetca user, 10001) and gives the broker's files to
# mosquitto's user (10002). The broker's private keys are made here and never leave it: the
# server key with openssl (fleetca signs only its CSR), the identity key by fleetca (the
# IssueIdentity response carries it once, over the TLS connection).
#
# Environment (compose.yaml sets it):
#   FLEETCA_ADDRESS   fleetca's gRPC address (fleetca:50051)
#   SECRETS_DIR       init's volume: admin.pem and ca.pem (/secrets)
#   OUT_DIR           the broker's TLS volume, /etc/mosquitto/fleetca in mosquitto (/out)
#   BROKER_ID         the broker's id, also its identity's name (mqtt-1)
#   BROKER_DNS_NAMES  comma-separated names of its server certificate (mosquitto,localhost)
#   BROKER_IPS        comma-separated IP addresses of it (none)
#   BROKER_UID, BROKER_GID  mosquitto's user in the broker image (10002)
set -euo pipefail

FLEETCA_ADDRESS=${FLEETCA_ADDRESS:-fleetca:50051}
SECRETS_DIR=${SECRETS_DIR:-/secrets}
OUT_DIR=${OUT_DIR:-/out}
BROKER_ID=${BROKER_ID:-mqtt-1}
BROKER_DNS_NAMES=${BROKER_DNS_NAMES:-mosquitto,localhost}
BROKER_IPS=${BROKER_IPS:-}
BROKER_UID=${BROKER_UID:-10002}
BROKER_GID=${BROKER_GID:-10002}

log() { echo "compose-bootstrap: $*" >&2; }

# --- the fleetca CLI calls ----------------------------------------------------------------
# Connection: TLS to $FLEETCA_ADDRESS (its certificate names "fleetca"), verified with init's
# ca.pem, authenticated with the admin credential (key and certificate in one file).
fleetca_cli() {
  fleetca --address "$FLEETCA_ADDRESS" --cacert "$SECRETS_DIR/ca.pem" \
    --credential "$SECRETS_DIR/admin.pem" "$@"
}

# cli_reachable: any cheap authenticated call (also proves the admin credential works).
cli_reachable() { fleetca_cli ca list >/dev/null; }

# cli_broker_get: exit 0 when registered, 3 (NOT_FOUND) when not, anything else an error.
cli_broker_get() { fleetca_cli broker get "$BROKER_ID" >/dev/null; }

cli_broker_register() {
  local args=() n
  IFS=, read -ra names <<<"$BROKER_DNS_NAMES"
  for n in "${names[@]}"; do [ -n "$n" ] && args+=(--dns "$n"); done
  IFS=, read -ra ips <<<"$BROKER_IPS"
  for n in "${ips[@]}"; do [ -n "$n" ] && args+=(--ip "$n"); done
  fleetca_cli broker register "$BROKER_ID" "${args[@]}"
}

# cli_identity_issue FILE: a new BROKER identity named after the broker; the server makes
# the key; FILE gets key, certificate and chain (mode 0600).
cli_identity_issue() { fleetca_cli identity issue "$BROKER_ID" --role broker --out "$1"; }

# cli_identity_renew FILE: the identity exists but its credential file was lost (exit code 4,
# a conflict, from issue).
cli_identity_renew() { fleetca_cli identity renew "$BROKER_ID" --out "$1"; }

# cli_broker_sign CSR: the broker's server certificate (SignBrokerCsr; names: all its
# allowed ones), PEM with its chain after it, on stdout.
cli_broker_sign() { fleetca_cli cert sign-broker "$BROKER_ID" --csr "$1" -o pem; }

# cli_client_bundle FILE: the TRUST_BUNDLE_SCOPE_CLIENT_AUTH bundle (PEM).
cli_client_bundle() { fleetca_cli ca bundle --scope client-auth --out "$1"; }
# -------------------------------------------------------------------------------------------

[ -r "$SECRETS_DIR/admin.pem" ] || { log "no $SECRETS_DIR/admin.pem: did fleetca-init run?"; exit 1; }
[ -r "$SECRETS_DIR/ca.pem" ] || { log "no $SECRETS_DIR/ca.pem: did fleetca-init run?"; exit 1; }
mkdir -p "$OUT_DIR"
chmod 0755 "$OUT_DIR"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# put SRC NAME MODE: move a finished file into OUT_DIR atomically, owned by mosquitto.
put() {
  chown "$BROKER_UID:$BROKER_GID" "$1"
  chmod "$3" "$1"
  mv -f "$1" "$OUT_DIR/.$2.tmp"
  mv -f "$OUT_DIR/.$2.tmp" "$OUT_DIR/$2"
}

# fleetca is healthy before this job starts (compose depends_on); allow it a minute anyway.
for i in $(seq 1 30); do
  cli_reachable && break
  [ "$i" = 30 ] && { log "fleetca at $FLEETCA_ADDRESS did not answer"; exit 1; }
  sleep 2
done

rc=0
cli_broker_get 2>/dev/null || rc=$?
case $rc in
  0) log "broker $BROKER_ID already registered" ;;
  3) log "registering broker $BROKER_ID (names: $BROKER_DNS_NAMES${BROKER_IPS:+, $BROKER_IPS})"
     cli_broker_register >/dev/null ;;
  *) cli_broker_get || true; exit 1 ;;
esac

if [ -s "$OUT_DIR/$BROKER_ID.pem" ]; then
  log "identity credential $BROKER_ID.pem already there"
else
  log "issuing the BROKER identity $BROKER_ID"
  rc=0
  (umask 077; cli_identity_issue "$work/identity.pem" >/dev/null) || rc=$?
  if [ "$rc" = 4 ]; then  # ALREADY_EXISTS: issued before, its credential file lost
    log "identity $BROKER_ID exists: renewing it for a new credential"
    (umask 077; cli_identity_renew "$work/identity.pem" >/dev/null)
  elif [ "$rc" != 0 ]; then
    exit "$rc"
  fi
  put "$work/identity.pem" "$BROKER_ID.pem" 0600
fi

if [ -s "$OUT_DIR/broker.pem" ] && [ -s "$OUT_DIR/broker.key" ] &&
   openssl x509 -in "$OUT_DIR/broker.pem" -noout -checkend $((30 * 86400)) >/dev/null; then
  log "server certificate broker.pem valid for 30 days or more: kept"
else
  log "signing a new server certificate for $BROKER_ID"
  (umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/broker.key")
  # fleetca wants the CN to be one of the certificate's names: the first DNS name.
  openssl req -new -key "$work/broker.key" -subj "/CN=${BROKER_DNS_NAMES%%,*}" -out "$work/broker.csr"
  cli_broker_sign "$work/broker.csr" >"$work/broker.pem"
  grep -q 'BEGIN CERTIFICATE' "$work/broker.pem" || { log "no certificate in the answer"; exit 1; }
  put "$work/broker.key" broker.key 0600
  put "$work/broker.pem" broker.pem 0644
fi

cli_client_bundle "$work/clients-ca.pem"
grep -q 'BEGIN CERTIFICATE' "$work/clients-ca.pem" || { log "empty client trust bundle"; exit 1; }
put "$work/clients-ca.pem" clients-ca.pem 0644
cp "$SECRETS_DIR/ca.pem" "$work/fleetca-server-ca.pem"
put "$work/fleetca-server-ca.pem" fleetca-server-ca.pem 0644

log "done: $(cd "$OUT_DIR" && ls | tr '\n' ' ')"
