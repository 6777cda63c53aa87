#!/usr/bin/env bash
# P3 intake: how many communications per second crier accepts, each committed
# in PostgreSQL before its 202, against pgbench inserting the same rows with
# one transaction per request, on the same private PostgreSQL (fsync on) in
# the same run. See tests/bench/README.md.
#
#   tests/bench/p3_intake.sh            (or: make bench-p3)
#
# Settings (environment): P3_DURATION (s, default 10), P3_WARMUP (s, 3),
# P3_CONNECTIONS (32), P3_THREADS (2), CRIER_BIN (default build/crier),
# P3_WORKERS (crier's delivery workers, default 0: intake only), P3_BENCH_DIR
# (scratch and private services, default build/bench: two benchmarks run at
# the same time need two of them).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

DURATION=${P3_DURATION:-10}
WARMUP=${P3_WARMUP:-3}
CONNECTIONS=${P3_CONNECTIONS:-32}
THREADS=${P3_THREADS:-2}
WORKERS=${P3_WORKERS:-0}
CRIER=${CRIER_BIN:-$root/build/crier}
BENCH_DIR=${P3_BENCH_DIR:-$root/build/bench}
SERVICES_DIR=$BENCH_DIR/services
PY=/usr/bin/python3

for tool in wrk pgbench psql; do
    command -v "$tool" >/dev/null || {
        echo "p3: $tool not found (run scripts/deps.sh)" >&2
        exit 1
    }
done
[ -x "$CRIER" ] || {
    echo "p3: $CRIER not found (run make)" >&2
    exit 1
}
mkdir -p "$BENCH_DIR"
work=$(mktemp -d "$BENCH_DIR/p3.XXXXXX")

crier_pid=""
cleanup() {
    if [ -n "$crier_pid" ] && kill -0 "$crier_pid" 2>/dev/null; then
        kill -TERM "$crier_pid"
        wait "$crier_pid" 2>/dev/null || true
    fi
    scripts/services.sh stop "$SERVICES_DIR" || true
    rm -rf "$work"
}
trap cleanup EXIT

scripts/services.sh start "$SERVICES_DIR"
admin_url=$(scripts/services.sh env "$SERVICES_DIR" | sed -n 's/^export CRIER_TEST_DATABASE_URL=//p')
db_url=${admin_url%/*}/crier_bench
PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 -d "$admin_url" \
    -c 'DROP DATABASE IF EXISTS crier_bench WITH (FORCE)' -c 'CREATE DATABASE crier_bench'
if ! out=$(CRIER_DATABASE_URL=$db_url CRIER_SQL_DIR=$root/sql "$CRIER" migrate 2>&1); then
    echo "p3: crier migrate failed: $out" >&2
    exit 1
fi

port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
env -i PATH="$PATH" HOME="${HOME:-/}" \
    CRIER_DATABASE_URL="$db_url" \
    CRIER_LISTEN="127.0.0.1:$port" \
    CRIER_PUBLIC_URL="http://127.0.0.1:$port" \
    CRIER_API_TOKENS="workflow:$token" \
    CRIER_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)" \
    CRIER_TRANSPORT=sandbox \
    CRIER_OUTBOX_DIR="$work/outbox" \
    CRIER_TEMPLATES_DIR="$root/templates" \
    CRIER_RULES_DIR="$root/rules" \
    CRIER_WORKERS="$WORKERS" \
    CRIER_LOG_LEVEL=warning \
    "$CRIER" serve >"$BENCH_DIR/p3-crier.log" 2>&1 &
crier_pid=$!
for _ in $(seq 1 150); do
    curl -fsS --noproxy '*' -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break
    kill -0 "$crier_pid" 2>/dev/null || {
        echo "p3: crier serve exited:" >&2
        tail -n 20 "$BENCH_DIR/p3-crier.log" >&2
        exit 1
    }
    sleep 0.1
done

"$PY" tests/bench/p3_prepare.py body "$root" "$work/body.json"

# run_wrk SECONDS: one wrk run; prints its WRK summary line.
run_wrk() {
    local nonce
    nonce=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
    P3_TOKEN=$token timeout $(($1 + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$1s" --timeout 10s \
        -s tests/bench/p3_wrk.lua "http://127.0.0.1:$port" -- "$nonce" "$work/body.json" |
        grep '^WRK '
}

field() { # field NAME LINE
    sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" <<<"$2"
}

echo "p3: crier: ${WARMUP} s warm-up, ${DURATION} s measured, $CONNECTIONS connections, $THREADS wrk threads, $WORKERS delivery workers"
run_wrk "$WARMUP" >/dev/null
before=$(psql -X -A -t -d "$db_url" -c 'SELECT count(*) FROM communications')
line=$(run_wrk "$DURATION")
after=$(psql -X -A -t -d "$db_url" -c 'SELECT count(*) FROM communications')
requests=$(field requests "$line")
duration_us=$(field duration_us "$line")
bad=$(($(field status_errors "$line") + $(field connect "$line") + $(field read "$line") + $(field write "$line") + $(field timeout "$line")))
ok=$((requests - $(field status_errors "$line")))
committed=$((after - before))
echo "p3: crier: $requests requests, $bad errors, $committed rows committed, p50 $(($(field p50_us "$line") / 1000)) ms, p99 $(($(field p99_us "$line") / 1000)) ms"
if [ "$committed" -lt "$ok" ]; then
    echo "p3: crier answered $ok requests with 2xx but committed only $committed rows" >&2
    exit 1
fi
crier_rate=$(awk -v n="$ok" -v us="$duration_us" 'BEGIN { printf "%.0f", n / (us / 1e6) }')

# The reference: crier stops so that the database serves pgbench alone.
kill -TERM "$crier_pid"
wait "$crier_pid" 2>/dev/null || true
crier_pid=""
"$PY" tests/bench/p3_prepare.py pgbench "$db_url" "$work/insert.sql"
echo "p3: pgbench: ${WARMUP} s warm-up, ${DURATION} s measured, $CONNECTIONS clients, $THREADS threads, one transaction per request"
timeout $((WARMUP + 30)) pgbench -n -c "$CONNECTIONS" -j "$THREADS" -T "$WARMUP" -f "$work/insert.sql" "$db_url" >/dev/null 2>&1
out=$(timeout $((DURATION + 30)) pgbench -n -c "$CONNECTIONS" -j "$THREADS" -T "$DURATION" -f "$work/insert.sql" "$db_url" 2>&1)
failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
pg_rate=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' <<<"$out")
if [ -z "$pg_rate" ] || [ "${failed:-0}" != 0 ]; then
    echo "p3: pgbench failed:" >&2
    echo "$out" >&2
    exit 1
fi
pg_rate=$(awk -v r="$pg_rate" 'BEGIN { printf "%.0f", r }')

ratio=$(awk -v a="$crier_rate" -v b="$pg_rate" 'BEGIN { printf "%.2f", a / b }')
echo "P3 intake: crier $crier_rate req/s, pgbench $pg_rate tps, ratio $ratio"
