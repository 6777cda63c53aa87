#!/bin/sh
# Every benchmark still runs (make bench, scripts/bench.sh) in a smoke run
# of seconds each, into this build tree: it must reach each figure line,
# and its summary must list every benchmark. The figures are not judged.
set -eu
src=${CRIER_SOURCE_DIR:?}
build=${CRIER_BUILD_DIR:?}
out=$build/bench-smoke
rm -rf "$out"
log=$build/bench-smoke.log
if ! BENCH_SMOKE=1 BENCH_OUT=$out CRIER_BIN=$build/crier P5_BUILD_DIR=$build \
    P1_BENCH_DIR=$out/p1 P2_BENCH_DIR=$out/p2 P3_BENCH_DIR=$out/p3 AN_BENCH_DIR=$out/an \
    "$src/scripts/bench.sh" >"$log" 2>&1; then
    echo "FAIL: scripts/bench.sh (smoke):"
    tail -n 40 "$log"
    exit 1
fi
for b in P1 P2 P3 P4 P5 P6 analytics; do
    grep -q "^$b " "$log" || { echo "FAIL: the summary has no $b line"; cat "$log"; exit 1; }
done
for f in "P1 email:" "P2 sms delivery:" "P3 intake:" "P5 policy:" "analytics: summary, 30 days"; do
    grep -q "^$f" "$log" || { echo "FAIL: no '$f' figure"; cat "$log"; exit 1; }
done
cat "$log"
