#!/usr/bin/env bash
# P1 email delivery throughput: crier draining queued welcome emails over
# SMTP into postfix's smtp-sink, against postfix's smtp-source sending the
# same number of messages of the same size with as many reused sessions to
# the same sink, in the same run. See tests/bench/README.md.
#
#   tests/bench/p1_email.sh            (or: make bench-p1)
#
# Settings (environment): P1_MESSAGES (20000), P1_WORKERS (8),
# P1_CLAIM_BATCH (16), CRIER_BIN (default build/crier), P1_BENCH_DIR (the
# private services, default build/bench-p1), P1_PERF (a file: record the
# draining crier with perf into it).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
BENCH_DIR=${P1_BENCH_DIR:-$root/build/bench-p1}
export CRIER_BIN=${CRIER_BIN:-$root/build/crier}
export CRIER_SOURCE_DIR=$root CRIER_BUILD_DIR=${CRIER_BUILD_DIR:-$root/build}
for tool in psql /usr/sbin/smtp-sink /usr/sbin/smtp-source; do
    command -v "$tool" >/dev/null || { echo "p1: $tool not found (run scripts/deps.sh)" >&2; exit 1; }
done
[ -x "$CRIER_BIN" ] || { echo "p1: $CRIER_BIN not found (run make)" >&2; exit 1; }
trap 'scripts/services.sh stop "$BENCH_DIR/services" || true' EXIT
scripts/services.sh start "$BENCH_DIR/services"
eval "$(scripts/services.sh env "$BENCH_DIR/services")"
/usr/bin/python3 tests/bench/p1_email.py
