#!/bin/sh
# run.sh SOURCE_DIR BUILD_DIR: builds tests/helm/render from Debian's Go sources only (no
# module download, no network) and runs the chart's cases, after the checker's own test on
# a deliberately broken chart. ctest runs it as helm.render (tests/helm/CMakeLists.txt).
set -eu
src=${1:?usage: run.sh SOURCE_DIR BUILD_DIR}
out=${2:?usage: run.sh SOURCE_DIR BUILD_DIR}
gopath=/usr/share/gocode

if ! command -v go >/dev/null 2>&1; then
  echo "helm.render: FAILED: the Go compiler (go) is not installed." >&2
  echo "  Install it with scripts/deps.sh (Debian packages golang-go," >&2
  echo "  golang-github-masterminds-sprig-dev, golang-gopkg-yaml.v3-dev)." >&2
  exit 1
fi
for pkg in github.com/Masterminds/sprig gopkg.in/yaml.v2 gopkg.in/yaml.v3; do
  if [ ! -d "$gopath/src/$pkg" ]; then
    echo "helm.render: FAILED: $gopath/src/$pkg is missing: run scripts/deps.sh" >&2
    exit 1
  fi
done

mkdir -p "$out"
echo "building the renderer with $(go version)"
(cd "$src/tests/helm/render" &&
  GO111MODULE=off GOPATH=$gopath GOCACHE="$out/go-cache" GOFLAGS= GOPROXY=off CGO_ENABLED=0 \
    go build -p 1 -o "$out/render" .)

cd "$src"
echo "== the checks' own test (tests/helm/selftest) =="
"$out/render" -chart tests/helm/selftest/broken -cases tests/helm/selftest/cases -lint=false
echo "== helm/fleetca (tests/helm/cases) =="
"$out/render" -chart helm/fleetca -cases tests/helm/cases
