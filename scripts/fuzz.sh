#!/usr/bin/env bash
# fuzz.sh: builds the libFuzzer harnesses of tests/fuzz/ with clang and runs
# each for a while (what `make fuzz` runs):
#   1. configure FUZZ_DIR (build-fuzz/) with CC=clang and -DCRIER_FUZZ=ON when
#      it has no cache yet, and build the harnesses only (target fuzz_all)
#   2. for every tests/fuzz/fuzz_<name>.c, copy the seed corpus
#      tests/fuzz/corpus/<name>/ into FUZZ_DIR/corpus/<name>/ (the committed
#      corpus is only read; what a run adds stays in the copy) and run the
#      harness on it for FUZZ_SECONDS seconds
#   3. print one line a harness: its name, how many inputs it executed
#      (libFuzzer's stat::number_of_executed_units) and whether it crashed
# A crashing input is written to FUZZ_DIR/artifacts/<name>/ and the run's
# output to FUZZ_DIR/logs/<name>.log. The exit status is non-zero when any
# harness crashed (or did not build or run).
#
#   FUZZ_SECONDS=60 FUZZ_DIR=build-fuzz JOBS=2 FUZZ_CC=clang scripts/fuzz.sh [NAME...]
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1

FUZZ_DIR=${FUZZ_DIR:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_CC=${FUZZ_CC:-clang}
JOBS=${JOBS:-2}

if [ ! -f "$FUZZ_DIR/CMakeCache.txt" ]; then
    CC=$FUZZ_CC cmake -S . -B "$FUZZ_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCRIER_FUZZ=ON \
        >/dev/null || exit 1
fi
cmake --build "$FUZZ_DIR" -j"$JOBS" --target fuzz_all >"$FUZZ_DIR/build.log" 2>&1 || {
    tail -n 40 "$FUZZ_DIR/build.log"
    echo "fuzz: the harnesses did not build" >&2
    exit 1
}

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for src in tests/fuzz/fuzz_*.c; do
        n=$(basename "$src" .c)
        names+=("${n#fuzz_}")
    done
fi

# Leaks fail a run like any other error; a caller's own settings win.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

mkdir -p "$FUZZ_DIR/logs"
crashed=0
printf '%-12s %14s  %s\n' harness executions result
for name in "${names[@]}"; do
    bin=$FUZZ_DIR/tests/fuzz/fuzz_$name
    corpus=$FUZZ_DIR/corpus/$name
    artifacts=$FUZZ_DIR/artifacts/$name
    log=$FUZZ_DIR/logs/$name.log
    mkdir -p "$corpus" "$artifacts"
    if [ -d "tests/fuzz/corpus/$name" ]; then
        cp -n tests/fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null || true
    fi
    if [ ! -x "$bin" ]; then
        printf '%-12s %14s  %s\n' "$name" - "missing ($bin)"
        crashed=1
        continue
    fi
    "$bin" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 -timeout=25 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$')
    if [ "$rc" -eq 0 ]; then
        result="ok"
    else
        artifact=$(grep -o "Test unit written to [^ ]*" "$log" | tail -n 1 | sed 's/.* to //')
        result="CRASHED (exit $rc${artifact:+, input $artifact}; see $log)"
        crashed=1
    fi
    printf '%-12s %14s  %s\n' "$name" "${execs:-?}" "$result"
done
exit "$crashed"
