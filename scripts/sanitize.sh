#!/usr/bin/env bash
# sanitize.sh: build a sanitizer or fuzzing preset (CMakePresets.json) and run its tests.
#
#   scripts/sanitize.sh asan [CTEST_ARGS...]   ASan+UBSan (GCC) build in build-asan; the unit
#                                              and PostgreSQL tests (label unit|pg); with
#                                              SANITIZE_E2E=1 the e2e tests too
#   scripts/sanitize.sh tsan [CTEST_ARGS...]   ThreadSanitizer (GCC) build in build-tsan of the
#                                              plugin, sync_agent and storage unit tests; runs them
#   scripts/sanitize.sh fuzz [CTEST_ARGS...]   clang libFuzzer build in build-fuzz; replays each
#                                              target's seeds, then fuzzes each target for
#                                              FUZZ_SECONDS (default 20; FUZZ_SECONDS=600 for
#                                              the long run)
#
# docs/reliability.md ("Sanitizers and fuzzing") says what each one covers and what it costs. Two
# build jobs, niced. Any sanitizer report fails the test that produced it (no recovery),
# so the exit code is ctest's. PostgreSQL (asan): a throwaway cluster under
# .dev/pg-sanitize on 127.0.0.1:${FLEETCA_SANITIZE_PG_PORT:-55434}, stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

preset=${1:-}
[ $# -gt 0 ] && shift
case "$preset" in
  asan|tsan|fuzz) ;;
  *) echo "usage: scripts/sanitize.sh asan|tsan|fuzz [CTEST_ARGS...]" >&2; exit 2 ;;
esac

t0=$(date +%s)
stamp() { echo "sanitize.sh: $1 ($(( $(date +%s) - t0 )) s since start)"; }

configure_args=()
if [ "$preset" = fuzz ] && ! command -v clang++-14 >/dev/null; then
  # Not in scripts/deps.sh: CI does not run the fuzzers (docs/reliability.md says why).
  sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    clang-14 libclang-rt-14-dev
fi
if [ "$preset" = fuzz ]; then
  configure_args+=("-DFLEETCA_FUZZ_SECONDS=${FUZZ_SECONDS:-20}")
fi
cmake --preset "$preset" "${configure_args[@]}" >/dev/null
nice -n 10 cmake --build --preset "$preset"
stamp "built $preset"

status=0
case "$preset" in
  asan)
    pg_dir=.dev/pg-sanitize
    pg_port=${FLEETCA_SANITIZE_PG_PORT:-55434}
    bash scripts/pg.sh start "$pg_dir" "$pg_port"
    trap 'bash scripts/pg.sh stop "$pg_dir"' EXIT
    FLEETCA_TEST_DATABASE_URL=$(bash scripts/pg.sh url "$pg_port")
    FLEETCA_SOURCE_DIR=$(pwd)
    export FLEETCA_TEST_DATABASE_URL FLEETCA_SOURCE_DIR
    ctest --preset asan "$@" || status=$?
    stamp "unit and pg tests under ASan+UBSan: exit $status"
    if [ "${SANITIZE_E2E:-0}" = 1 ]; then
      # The preset's label filter is replaced: e2e only, same sanitizer options.
      ctest --preset asan -L e2e "$@" || status=$?
      stamp "e2e tests under ASan+UBSan: exit $status"
    fi
    ;;
  tsan)
    ctest --preset tsan "$@" || status=$?
    stamp "plugin, sync_agent and storage tests under TSan: exit $status"
    ;;
  fuzz)
    ctest --preset fuzz "$@" || status=$?
    stamp "fuzz targets (${FUZZ_SECONDS:-20} s each): exit $status"
    ;;
esac
exit "$status"
