#!/usr/bin/env bash
# sanitize.sh: build a sanitizer or fuzzing preset (CMakePresets.json) and run its tests.
#
#   scripts/sanitize.sh asan [CTEST_ARGS...]   ASan+UBSan (GCC) build in build-asan; the unit
#                                              and PostgreSQL tests (label unit|pg); with
#                                              SANITIZE_E2E=1 the e2e tests too
#   scripts/sanitize.sh asan-unit             the same ASan+UBSan build, but only the unit-test
#                                              binaries that need no generated protobuf code
#                                              (acl, common, pki: about 2 minutes): the step
#                                              scripts/test.sh, and so CI, runs
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
  asan|asan-unit|tsan|fuzz) ;;
  *) echo "usage: scripts/sanitize.sh asan|asan-unit|tsan|fuzz [CTEST_ARGS...]" >&2; exit 2 ;;
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
if [ "$preset" = asan-unit ]; then
  # The preset's settings and environment, three targets, run directly (no PostgreSQL).
  asan_unit_tests=(acl_test common_test pki_test)
  cmake --preset asan >/dev/null
  nice -n 10 cmake --build build-asan -j2 $(printf -- '--target %s ' "${asan_unit_tests[@]}")
  stamp "built ${asan_unit_tests[*]} with ASan+UBSan"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1
  export LSAN_OPTIONS="suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$PWD/tests/sanitizers/ubsan.supp"
  status=0
  for t in "${asan_unit_tests[@]}"; do
    (cd build-asan/tests && "./$t" --gtest_brief=1) || status=$?
  done
  stamp "unit tests under ASan+UBSan: exit $status"
  exit "$status"
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
