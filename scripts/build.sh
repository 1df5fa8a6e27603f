#!/usr/bin/env bash
# build.sh: configure (first time only) and build fleetca into build/ with two jobs.
#
#   scripts/build.sh [TARGET...]
#
# ccache is picked up by CMakeLists.txt when installed. Environment: FLEETCA_BUILD_DIR
# (default build), CMAKE_BUILD_TYPE (default RelWithDebInfo, first configure only).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${FLEETCA_BUILD_DIR:-build}
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}"
elif [ ! -f "$build_dir/build.ninja" ] && [ ! -f "$build_dir/Makefile" ]; then
  # An earlier configure failed before generating: configure again with the cached settings.
  cmake -S . -B "$build_dir"
fi
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$build_dir" -j2 "${targets[@]}"
