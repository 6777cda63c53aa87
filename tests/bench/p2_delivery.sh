#!/usr/bin/env bash
# P2 SMS delivery throughput: crier against wrk on the same local provider
# stub, in one run (see tests/bench/README.md and p2_delivery.py).
#
#   tests/bench/p2_delivery.sh          (or: make bench-p2)
#
# Settings (environment): P2_MESSAGES (2000), P2_WORKERS (8: crier's workers
# and wrk's connections), P2_DURATION (wrk seconds, 10), CRIER_BIN (default
# build/crier), P2_BENCH_DIR (private services, default build/bench-p2).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
BENCH_DIR=${P2_BENCH_DIR:-$root/build/bench-p2}
export CRIER_BIN=${CRIER_BIN:-$root/build/crier}
export CRIER_SOURCE_DIR=$root CRIER_BUILD_DIR=$root/build
for tool in wrk psql; do
    command -v "$tool" >/dev/null || { echo "p2: $tool not found (run scripts/deps.sh)" >&2; exit 1; }
done
[ -x "$CRIER_BIN" ] || { echo "p2: $CRIER_BIN not found (run make)" >&2; exit 1; }
trap 'scripts/services.sh stop "$BENCH_DIR/services" || true' EXIT
scripts/services.sh start "$BENCH_DIR/services"
eval "$(scripts/services.sh env "$BENCH_DIR/services")"
/usr/bin/python3 tests/bench/p2_delivery.py
