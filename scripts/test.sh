#!/usr/bin/env bash
# test.sh: the whole test suite, from a fresh Debian 12 clone, in one command.
#
#   scripts/test.sh [CTEST_ARGS...]      e.g. scripts/test.sh -L pg, scripts/test.sh -R e2e
#
# Installs what is needed (scripts/deps.sh), builds (scripts/build.sh), starts a throwaway
# PostgreSQL for the tests under .dev/pg-test on 127.0.0.1:55433 (each test makes its own
# database or schema in it), runs ctest (unit, PostgreSQL, end-to-end and buf lint tests),
# stops PostgreSQL, and exits with ctest's code. Environment: FLEETCA_TEST_PG_PORT
# (default 55433).
set -euo pipefail
cd "$(dirname "$0")/.."

pg_dir=.dev/pg-test
pg_port=${FLEETCA_TEST_PG_PORT:-55433}

bash scripts/deps.sh
bash scripts/build.sh

bash scripts/pg.sh start "$pg_dir" "$pg_port"
trap 'bash scripts/pg.sh stop "$pg_dir"' EXIT

FLEETCA_TEST_DATABASE_URL=$(bash scripts/pg.sh url "$pg_port")
FLEETCA_SOURCE_DIR=$(pwd)
export FLEETCA_TEST_DATABASE_URL FLEETCA_SOURCE_DIR

status=0
ctest --test-dir build --output-on-failure -j2 --timeout 900 "$@" || status=$?
# The whole suite (no ctest arguments) then runs the sanitizer step: the unit and PostgreSQL
# tests again, built with clang under AddressSanitizer and UndefinedBehaviorSanitizer, and
# each libFuzzer target for 15 s (scripts/sanitize.sh ci, in build-fuzz; the long fuzz, TSan
# and end-to-end sanitizer runs are documented in docs/reliability.md). FLEETCA_SANITIZE_STEP=0
# skips it.
if [ $# -eq 0 ] && [ "${FLEETCA_SANITIZE_STEP:-1}" != 0 ]; then
  bash scripts/sanitize.sh ci || status=$?
fi
exit "$status"
