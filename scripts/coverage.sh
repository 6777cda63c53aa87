#!/usr/bin/env bash
# coverage.sh: the line coverage of src/ over the whole suite (make coverage).
#   1. install what is missing (scripts/deps.sh: gcovr among it)
#   2. build build-cov/ with gcov counters (-DCRIER_COVERAGE=ON, -O0) and
#      clear the counters of an earlier run
#   3. start a private PostgreSQL and Redis under build-cov/services
#   4. run every test with ctest in build-cov/ (a failing test is reported,
#      and its lines still count: coverage says what ran, not what passed)
#   5. gcovr over src/: the total printed, the whole table in
#      build-cov/coverage.txt, and every file under LOW_PCT (60) % named
# Exit status: 0 when the report was made and every test passed; 1 otherwise.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1

COV_DIR=${COV_DIR:-build-cov}
JOBS=${JOBS:-2}
TEST_JOBS=${TEST_JOBS:-3}
LOW_PCT=${LOW_PCT:-60}
SERVICES_DIR=$COV_DIR/services

say() {
    echo "coverage: $*"
}

scripts/deps.sh || exit 1

if [ ! -f "$COV_DIR/CMakeCache.txt" ]; then
    cmake -S . -B "$COV_DIR" -DCMAKE_BUILD_TYPE=Debug -DCRIER_COVERAGE=ON >/dev/null || exit 1
fi
cmake --build "$COV_DIR" -j"$JOBS" >"$COV_DIR/build.log" 2>&1 || {
    tail -n 40 "$COV_DIR/build.log"
    exit 1
}
# counters accumulate across runs: start from none
find "$COV_DIR" -name '*.gcda' -delete

trap 'scripts/services.sh stop "$SERVICES_DIR" >/dev/null 2>&1 || true' EXIT
scripts/services.sh start "$SERVICES_DIR" || exit 1
eval "$(scripts/services.sh env "$SERVICES_DIR")" || exit 1

say "running the suite in $COV_DIR/ ($TEST_JOBS at once)"
tests_ok=1
ctest --test-dir "$COV_DIR" -j"$TEST_JOBS" --output-on-failure --timeout 900 \
    >"$COV_DIR/ctest.log" 2>&1 || tests_ok=0
grep -E "tests passed|\(Failed\)|\(Timeout\)|\*\*\*Failed" "$COV_DIR/ctest.log" || true

gcovr --root . --object-directory "$COV_DIR" --filter 'src/' \
    --txt "$COV_DIR/coverage.txt" --json-summary "$COV_DIR/coverage.json" \
    >/dev/null 2>"$COV_DIR/gcovr.log" || {
    tail -n 20 "$COV_DIR/gcovr.log"
    exit 1
}
/usr/bin/python3 - "$COV_DIR/coverage.json" "$LOW_PCT" <<'EOF'
import json
import sys

report = json.load(open(sys.argv[1]))
low = float(sys.argv[2])
print("coverage: lines of src/: %.1f %% (%d of %d)"
      % (report["line_percent"], report["line_covered"], report["line_total"]))
under = sorted((f["line_percent"], f["filename"], f["line_covered"], f["line_total"])
               for f in report["files"] if f["line_percent"] < low)
for pct, name, covered, total in under:
    print("coverage: under %g %%: %-40s %5.1f %% (%d of %d)" % (low, name, pct, covered, total))
EOF
say "per file: $COV_DIR/coverage.txt"
[ "$tests_ok" = 1 ]
