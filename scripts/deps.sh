#!/usr/bin/env bash
# deps.sh: install everything fleetca's build and tests need on Debian 12, then the npm tools
# (buf: proto lint and `buf curl`, the reflection client of the end-to-end tests).
#
#   scripts/deps.sh
#
# Idempotent and quick when everything is there: Debian packages are checked with dpkg-query
# and only the missing ones are installed; `npm ci` runs only when tools/node_modules is
# missing or older than tools/package-lock.json. Runs apt-get with sudo when not root.
# `apt-get update` runs before an install when CI=true or when the package lists are more
# than a day old (never when nothing is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libpqxx-dev libabsl-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  postgresql python3 openssl
  mosquitto mosquitto-clients mosquitto-dev libmosquitto-dev python3-paho-mqtt jq sslscan libcpp-httplib-dev curl
  libcli11-dev golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev python3-grpcio
  clang-14 libclang-rt-14-dev openjdk-17-jre-headless
  # bench/issuance.sh's cfssl references: cfssl serve, driven by wrk.
  golang-cfssl wrk
)

log() { echo "deps.sh: $*" >&2; }

SUDO=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { log "not root and sudo is missing: install ${PACKAGES[*]} by hand"; exit 1; }
  SUDO=(sudo)
fi

is_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

apt_updated=false
apt_update() {
  $apt_updated && return 0
  local lists_fresh=false
  # Package lists fetched within the last day (and not in CI) are good enough.
  if [ "${CI:-}" != true ] &&
     [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 -print -quit 2>/dev/null)" ]; then
    lists_fresh=true
  fi
  # In CI, .ci/run has just updated; lists younger than 30 minutes are reused.
  if [ "${CI:-}" = true ] &&
     [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -30 -print -quit 2>/dev/null)" ]; then
    lists_fresh=true
  fi
  if ! $lists_fresh; then
    log "apt-get update"
    "${SUDO[@]}" apt-get update -q || "${SUDO[@]}" apt-get update -q
  fi
  apt_updated=true
}

apt_install() {
  apt_update
  log "installing: $*"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

missing=()
for p in "${PACKAGES[@]}"; do
  is_installed "$p" || missing+=("$p")
done
# Node.js with npm: any recent one will do. Debian's comes as two packages (nodejs, npm);
# NodeSource's nodejs carries npm itself and conflicts with Debian's npm package, so look at
# the commands rather than the package names.
command -v node >/dev/null || missing+=(nodejs)
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
  # Debian's mosquitto package enables and starts a system broker on port 1883. The tests
  # start their own brokers on free loopback ports and need none: when this script has just
  # installed it, stop and disable that service (an installation it did not make is left alone).
  if [[ " ${missing[*]} " == *" mosquitto "* ]] && [ -d /run/systemd/system ]; then
    log "stopping and disabling the mosquitto system service (the tests run their own brokers)"
    "${SUDO[@]}" systemctl disable --now mosquitto.service >/dev/null 2>&1 || true
  fi
fi
if ! command -v npm >/dev/null; then
  apt_install npm
fi

# npm tools, pinned by tools/package-lock.json.
[ -f tools/package-lock.json ] || { log "tools/package-lock.json is missing: run 'npm install --prefix tools' and commit it"; exit 1; }
stamp=tools/node_modules/.package-lock.json
if [ ! -x tools/node_modules/.bin/buf ] || [ ! -f "$stamp" ] || [ tools/package-lock.json -nt "$stamp" ] ||
   ! tools/node_modules/.bin/buf --version >/dev/null 2>&1; then
  log "npm ci --prefix tools"
  npm ci --prefix tools --no-audit --no-fund --loglevel=error ||
    { sleep 5; npm ci --prefix tools --no-audit --no-fund --loglevel=error; }
  touch "$stamp"
fi
