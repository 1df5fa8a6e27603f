#!/usr/bin/env bash
# image.sh: build fleetca's container images from deploy/Dockerfile with podman or docker.
#
#   scripts/image.sh [TARGET...]      # default targets: runtime broker bootstrap
#
# Images (the names deploy/compose.yaml uses):
#   runtime   -> fleetca:dev            fleetca-server (entrypoint), fleetca, fleetca-sync
#   broker    -> fleetca-broker:dev     mosquitto 2.0 with fleetca_auth.so
#   bootstrap -> fleetca-bootstrap:dev  the fleetca CLI with openssl (compose's broker-bootstrap job)
#
# The C++ build inside the image takes 10 to 20 minutes on 2 cores; the three targets share
# it (layer cache). Not part of CI: run it by hand. Anyone with docker can equally run
#   docker build -f deploy/Dockerfile -t fleetca:dev .
#
# Environment:
#   ENGINE      podman or docker (default: podman if installed, else docker)
#   BASE        the Debian 12 base image (default: debian:12 if it can be pulled, else a local
#               localhost/debian:12 made here with debootstrap, as root, and imported)
#   TAG         image tag (default dev)
#   JOBS        parallel compile jobs in the image (default 2)
#   ISOLATION   podman only: --isolation for RUN steps (default chroot, which works where the
#               OCI runtime cannot start containers, e.g. inside another container)
#   DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR  for the local base (default: this machine's apt
#               sources, else deb.debian.org)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "image.sh: $*" >&2; }

ENGINE=${ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}
command -v "$ENGINE" >/dev/null || { log "neither podman nor docker found (apt-get install podman)"; exit 1; }
TAG=${TAG:-dev}
JOBS=${JOBS:-2}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(runtime broker bootstrap)

image_exists() {
  if [ "$ENGINE" = podman ]; then podman image exists "$1"; else docker image inspect "$1" >/dev/null 2>&1; fi
}

# The first "URIs:" (deb822) or "deb" line of this machine's apt sources naming a Debian
# archive, else deb.debian.org.
host_mirror() {
  local want=$1 uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/{print $2}' |
        grep -E "/${want}/?\$" | head -n1 || true)
  [ -n "$uri" ] || uri=$(awk '$1=="deb"{for(i=2;i<=NF;i++) if ($i ~ /^(https?|file):/) print $i}' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        grep -E "/${want}/?\$" | head -n1 || true)
  echo "${uri:-http://deb.debian.org/${want}}"
}

# make_local_base IMAGE: a minimal Debian 12 root file system (debootstrap minbase) with the
# same apt sources as the official image, imported as IMAGE.
make_local_base() {
  local image=$1 mirror security dir
  [ "$(id -u)" = 0 ] || { log "making a local base needs root (debootstrap); or set BASE"; exit 1; }
  command -v debootstrap >/dev/null || { log "debootstrap is missing: apt-get install debootstrap"; exit 1; }
  mirror=${DEBIAN_MIRROR:-$(host_mirror debian)}
  security=${DEBIAN_SECURITY_MIRROR:-$(host_mirror debian-security)}
  dir=$(mktemp -d /var/tmp/fleetca-base.XXXXXX)
  trap 'rm -rf "$dir"' EXIT
  log "debootstrap --variant=minbase bookworm from $mirror (a few minutes)"
  nice -n 19 debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$dir.log" 2>&1 ||
    { tail -n 20 "$dir.log" >&2; exit 1; }
  rm -f "$dir.log" "$dir/etc/apt/sources.list"
  cat >"$dir/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb
  tar -C "$dir" --numeric-owner -c . | "$ENGINE" import --change 'CMD ["bash"]' - "$image" >/dev/null
  rm -rf "$dir"
  trap - EXIT
  log "imported $image"
}

if [ -z "${BASE:-}" ]; then
  if image_exists docker.io/library/debian:12 ||
     timeout 120 "$ENGINE" pull -q docker.io/library/debian:12 >/dev/null 2>&1; then
    BASE=docker.io/library/debian:12
  else
    BASE=localhost/debian:12
    log "docker.io/library/debian:12 cannot be pulled: using a local base, $BASE"
    image_exists "$BASE" || make_local_base "$BASE"
  fi
fi

build_flags=(--build-arg "BASE=$BASE" --build-arg "JOBS=$JOBS"
             --build-arg "REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)")
if [ "$ENGINE" = podman ]; then
  # docker format: OCI images drop HEALTHCHECK.
  build_flags+=(--format docker --isolation "${ISOLATION:-chroot}")
fi

for target in "${targets[@]}"; do
  case "$target" in
    runtime) name=fleetca ;;
    broker) name=fleetca-broker ;;
    bootstrap) name=fleetca-bootstrap ;;
    *) log "unknown target $target (runtime, broker, bootstrap)"; exit 2 ;;
  esac
  log "building $name:$TAG (target $target, base $BASE)"
  nice -n 19 "$ENGINE" build "${build_flags[@]}" -f deploy/Dockerfile --target "$target" \
    -t "$name:$TAG" .
done

"$ENGINE" images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "fleetca(-broker|-bootstrap)?:$TAG " >&2 || true
