#!/usr/bin/env bash
# bench.sh: every benchmark of tests/bench, one after the other (make bench),
# each starting and stopping what it needs; their figure lines as they come,
# then one summary table of every figure with its ratio and target.
#
#   scripts/bench.sh            the full runs (several minutes each)
#   BENCH_SMOKE=1 scripts/bench.sh
#                               seconds each, small counts: that every
#                               benchmark still runs to its figure line (the
#                               check ctest makes, scripts.test_bench); the
#                               figures of a smoke run say nothing
# A benchmark never asserts a speed: this fails only when one of them failed
# (its work went wrong) or printed no figure line.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
out=${BENCH_OUT:-$root/build/bench-all}
mkdir -p "$out"

if [ "${BENCH_SMOKE:-0}" = 1 ]; then
    export P1_MESSAGES=${P1_MESSAGES:-200} P1_WORKERS=${P1_WORKERS:-2} P1_CLAIM_BATCH=${P1_CLAIM_BATCH:-4}
    export P2_MESSAGES=${P2_MESSAGES:-200} P2_DURATION=${P2_DURATION:-1}
    export P3_DURATION=${P3_DURATION:-1} P3_WARMUP=${P3_WARMUP:-1}
    export AN_ROWS=${AN_ROWS:-20000} AN_RUNS=${AN_RUNS:-20}
    p5_args=(--seconds 0.2)
else
    p5_args=()
fi

# name | command | the figure line's start
benches=(
    "P1|tests/bench/p1_email.sh|P1 email:"
    "P2|tests/bench/p2_delivery.sh|P2 sms delivery:"
    "P3|tests/bench/p3_intake.sh|P3 intake:"
    "P5|tests/bench/p5_policy.sh ${p5_args[*]}|P5 policy:"
    "analytics|tests/bench/analytics_summary.sh|analytics: summary, 30 days "
)
failed=()
declare -A figure
for b in "${benches[@]}"; do
    IFS='|' read -r name cmd mark <<<"$b"
    echo "bench: $name ($cmd)"
    # shellcheck disable=SC2086
    if ! $cmd >"$out/$name.log" 2>&1; then
        tail -n 20 "$out/$name.log"
        failed+=("$name")
        continue
    fi
    line=$(grep -F -- "$mark" "$out/$name.log" | tail -n 1)
    if [ -z "$line" ]; then
        tail -n 20 "$out/$name.log"
        failed+=("$name: no figure line")
        continue
    fi
    echo "$line"
    figure[$name]=$line
done

echo
echo "bench: summary$([ "${BENCH_SMOKE:-0}" = 1 ] && echo ' (smoke run: the figures mean nothing)')"
printf '%-10s %-12s %s\n' benchmark target figure
printf '%-10s %-12s %s\n' P1 '>= 0.5' "${figure[P1]:-failed}"
printf '%-10s %-12s %s\n' P2 '>= 0.5' "${figure[P2]:-failed}"
printf '%-10s %-12s %s\n' P3 '>= 2.5' "${figure[P3]:-failed}"
printf '%-10s %-12s %s\n' P4 'p99 <= 25ms' "not built yet (tests/bench/README.md)"
printf '%-10s %-12s %s\n' P5 '>= 250k/s' "${figure[P5]:-failed}"
printf '%-10s %-12s %s\n' P6 '>= 0.9' "not built yet (tests/bench/README.md)"
printf '%-10s %-12s %s\n' analytics '< 200ms' "${figure[analytics]:-failed}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "bench: FAILED: ${failed[*]} (logs in $out/)"
    exit 1
fi
