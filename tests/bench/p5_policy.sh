#!/usr/bin/env bash
# P5 policy cost: one full decision through the shipped Lua rules against
# the same policy written in C, on the same generated inputs, one thread, in
# the same run. Builds the benchmark if needed. See tests/bench/README.md.
#
#   tests/bench/p5_policy.sh [--seconds S] [--inputs N] [--only lua|c]
#                            (or: make bench-p5 P5_ARGS="...")
#
# Settings (environment): P5_BUILD_DIR (default build; configured as
# RelWithDebInfo when it does not exist yet, like make), P5_RULES_DIR
# (default the repository's rules/).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${P5_BUILD_DIR:-$root/build}
RULES_DIR=${P5_RULES_DIR:-$root/rules}

if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
# the build's chatter only when it fails: the figures are the output
if ! log=$(cmake --build "$BUILD_DIR" -j2 --target bench_p5_policy 2>&1); then
    printf '%s\n' "$log" >&2
    echo "p5: build failed" >&2
    exit 1
fi
exec "$BUILD_DIR/tests/bench/bench_p5_policy" --rules "$RULES_DIR" "$@"
