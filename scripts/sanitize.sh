#!/usr/bin/env bash
# sanitize.sh: build a sanitizer or fuzzing preset (CMakePresets.json) and run its tests.
#
#   scripts/sanitize.sh ci [CTEST_ARGS...]     the step scripts/test.sh, and so CI, runs: the
#                                              clang build of the fuzz preset (ASan + UBSan +
#                                              libFuzzer coverage) in build-fuzz; the unit and
#                                              PostgreSQL tests (label unit|pg) under it, then
#                                              each fuzz target for FUZZ_SECONDS (default 15);
#                                              with SANITIZE_E2E=1 the e2e tests in between
#   scripts/sanitize.sh asan [CTEST_ARGS...]   ASan+UBSan (GCC) build in build-asan; the unit
#                                              and PostgreSQL tests (label unit|pg); with
#                                              SANITIZE_E2E=1 the e2e tests too
#   scripts/sanitize.sh tsan [CTEST_ARGS...]   ThreadSanitizer (GCC) build in build-tsan with the
#                                              shims of tests/sanitizers; the unit and pg tests it
#                                              builds (label unit|pg), e2e with SANITIZE_E2E=1
#   scripts/sanitize.sh fuzz [CTEST_ARGS...]   the clang build in build-fuzz; replays each
#                                              target's seeds, then fuzzes each target for
#                                              FUZZ_SECONDS (default 20; FUZZ_SECONDS=600 for
#                                              the long run)
#
# docs/reliability.md ("Sanitizers and fuzzing") says what each one covers and what it costs. Two
# build jobs, niced. Any sanitizer report fails the test that produced it (no recovery),
# so the exit code is ctest's. PostgreSQL (ci, asan, tsan): a throwaway cluster under
# .dev/pg-sanitize on 127.0.0.1:${FLEETCA_SANITIZE_PG_PORT:-55434}, stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

preset=${1:-}
[ $# -gt 0 ] && shift
case "$preset" in
  ci|asan|tsan|fuzz) ;;
  *) echo "usage: scripts/sanitize.sh ci|asan|tsan|fuzz [CTEST_ARGS...]" >&2; exit 2 ;;
esac

t0=$(date +%s)
stamp() { echo "sanitize.sh: $1 ($(( $(date +%s) - t0 )) s since start)"; }

configure_args=()
build_preset=$preset
if [ "$preset" = ci ] || [ "$preset" = fuzz ]; then
  build_preset=fuzz
  if ! command -v clang++-14 >/dev/null; then
    # scripts/deps.sh installs them; this is for a machine set up before it did.
    sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      clang-14 libclang-rt-14-dev
  fi
  default_seconds=20; [ "$preset" = ci ] && default_seconds=15
  configure_args+=("-DFLEETCA_FUZZ_SECONDS=${FUZZ_SECONDS:-$default_seconds}")
fi
cmake --preset "$build_preset" "${configure_args[@]}" >/dev/null
if [ "$preset" = ci ]; then
  nice -n 10 cmake --build build-fuzz -j2   # everything: tests and fuzz targets
else
  nice -n 10 cmake --build --preset "$preset"
fi
stamp "built $preset"

status=0
start_pg() {
  pg_dir=.dev/pg-sanitize
  pg_port=${FLEETCA_SANITIZE_PG_PORT:-55434}
  bash scripts/pg.sh start "$pg_dir" "$pg_port"
  trap 'bash scripts/pg.sh stop "$pg_dir"' EXIT
  FLEETCA_TEST_DATABASE_URL=$(bash scripts/pg.sh url "$pg_port")
  FLEETCA_SOURCE_DIR=$(pwd)
  export FLEETCA_TEST_DATABASE_URL FLEETCA_SOURCE_DIR
}
case "$preset" in
  ci)
    start_pg
    # Each test binary runs its tests in one process (ctest would start one process per
    # test: about 500 sanitizer start-ups, 2.5 times slower), the long ones split into gtest
    # shards, four processes at a time (the pg tests mostly wait on PostgreSQL). Logs under
    # build-fuzz/sanitize-logs; a failing shard's log is printed.
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1
    export LSAN_OPTIONS="suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$PWD/tests/sanitizers/ubsan.supp"
    logs=build-fuzz/sanitize-logs
    rm -rf "$logs" && mkdir -p "$logs"
    runs=()
    for t in storage_pgtest:4 api_pgtest:2 pki_test:2 ca_pgtest:2 plugin/plugin_test:1 \
             sync_agent/sync_agent_test:1 auth_test:1 policy_pgtest:1 cli/cli_test:1 acl_test:1 \
             common_test:1 registry_test:1 storage_test:1; do
      for ((i = 0; i < ${t#*:}; i++)); do runs+=("${t%:*} ${t#*:} $i"); done
    done
    run_shard() {  # binary shards index
      local name; name=$(basename "$1")-$3
      if (cd "build-fuzz/tests/$(dirname "$1")" && GTEST_TOTAL_SHARDS=$2 GTEST_SHARD_INDEX=$3 \
            "./$(basename "$1")" --gtest_brief=1) >"$logs/$name.log" 2>&1; then
        echo "sanitize.sh: $name passed: $(grep -o '[0-9]* tests\?\.' "$logs/$name.log" | tail -n 1)"
      else
        echo "sanitize.sh: $name FAILED:"; cat "$logs/$name.log"; return 1
      fi
    }
    # Every gtest binary of the build must be in the list above.
    for b in $(cd build-fuzz/tests && find . -maxdepth 2 -type f -executable \( -name '*_test' -o -name '*_pgtest' \) | sed 's|^\./||'); do
      if ! printf '%s\n' "${runs[@]}" | grep -q "^$b "; then
        echo "sanitize.sh: test binary $b is not in scripts/sanitize.sh's list" >&2; status=1
      fi
    done
    export -f run_shard; export logs
    printf '%s\n' "${runs[@]}" | xargs -P 4 -L 1 bash -c 'run_shard "$@"' _ || status=$?
    if [ ! -x build-fuzz/tests/acl_test ]; then echo "sanitize.sh: test binaries missing" >&2; status=1; fi
    stamp "unit and pg tests under ASan+UBSan (clang): exit $status"
    if [ "${SANITIZE_E2E:-0}" = 1 ]; then
      # The e2e tests against this build's server, CLI, fleetca-sync and plugin (mosquitto
      # preloads the ASan runtime). Reports go to files, so that one in a process whose exit
      # status no test looks at (a server stopped at the end of a test) still fails the run.
      mkdir -p "$PWD/$logs/e2e" && chmod 1777 "$PWD/$logs/e2e"   # mosquitto drops to its own user
      (export ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$PWD/$logs/e2e/asan" \
              UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$PWD/$logs/e2e/ubsan"
       cd build-fuzz && ctest -L e2e -j2 --timeout 1800 --output-on-failure "$@") || status=$?
      if grep -l -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$logs"/e2e/* 2>/dev/null; then
        echo "sanitize.sh: sanitizer reports in the e2e run (files above)" >&2; status=1
      fi
      stamp "e2e tests under ASan+UBSan (clang): exit $status"
    fi
    ctest --preset fuzz "$@" || status=$?
    stamp "fuzz targets (${FUZZ_SECONDS:-15} s each): exit $status"
    ;;
  asan)
    start_pg
    ctest --preset asan "$@" || status=$?
    stamp "unit and pg tests under ASan+UBSan: exit $status"
    if [ "${SANITIZE_E2E:-0}" = 1 ]; then
      # The preset's label filter is replaced: e2e only, same sanitizer options.
      ctest --preset asan -L e2e "$@" || status=$?
      stamp "e2e tests under ASan+UBSan: exit $status"
    fi
    ;;
  tsan)
    start_pg
    ctest --preset tsan "$@" || status=$?
    stamp "unit and pg tests under TSan (self-test, plugin, plugin threads, sync agent, storage, API): exit $status"
    if [ "${SANITIZE_E2E:-0}" = 1 ]; then
      # Reports go to files (some e2e servers are killed, not stopped), and any file fails
      # the run. test_plugin needs a TSan mosquitto, test_cli the CLI (not built here).
      reports=$(mktemp -d)
      supp=$PWD/tests/sanitizers/tsan.supp
      (cd build-tsan && TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:suppressions=$supp:log_path=$reports/tsan" \
        ctest -L e2e -E '^e2e\.test_(plugin|cli)$' --output-on-failure "$@") || status=$?
      if ls "$reports"/tsan.* >/dev/null 2>&1; then cat "$reports"/tsan.*; status=1; fi
      stamp "e2e tests under TSan: exit $status"
    fi
    ;;
  fuzz)
    ctest --preset fuzz "$@" || status=$?
    stamp "fuzz targets (${FUZZ_SECONDS:-20} s each): exit $status"
    ;;
esac
exit "$status"
