#!/usr/bin/env bash
# Analytics: how long GET /v1/analytics/summary takes over the last 30 days
# of a table of 1,000,000 communications (spread over 90 days), through the
# real binary, and that its answer is right. See tests/bench/README.md.
#
#   tests/bench/analytics_summary.sh      (or: make bench-analytics)
#
# Settings (environment): AN_ROWS (1000000), AN_RUNS (requests per figure,
# 300), CRIER_BIN (default build/crier), AN_BENCH_DIR (scratch and private
# services, default build/bench-analytics).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

ROWS=${AN_ROWS:-1000000}
RUNS=${AN_RUNS:-300}
CRIER=${CRIER_BIN:-$root/build/crier}
BENCH_DIR=${AN_BENCH_DIR:-$root/build/bench-analytics}
SERVICES_DIR=$BENCH_DIR/services
PY=/usr/bin/python3

command -v psql >/dev/null || {
    echo "analytics: psql not found (run scripts/deps.sh)" >&2
    exit 1
}
[ -x "$CRIER" ] || {
    echo "analytics: $CRIER not found (run make)" >&2
    exit 1
}
mkdir -p "$BENCH_DIR"
work=$(mktemp -d "$BENCH_DIR/an.XXXXXX")

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
db_url=${admin_url%/*}/crier_bench_analytics
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$db_url" "$@"; }
PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 -d "$admin_url" \
    -c 'DROP DATABASE IF EXISTS crier_bench_analytics WITH (FORCE)' \
    -c 'CREATE DATABASE crier_bench_analytics'
if ! out=$(CRIER_DATABASE_URL=$db_url CRIER_SQL_DIR=$root/sql "$CRIER" migrate 2>&1); then
    echo "analytics: crier migrate failed: $out" >&2
    exit 1
fi

# The rows, made in the database (through the triggers, as the engine's own
# writes are): see analytics_rows.sql for the mix.
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
started=$(date +%s)
q -v n="$ROWS" -v now="$now" -f tests/bench/analytics_rows.sql
made=$(date +%s)
echo "analytics: $(q -c 'SELECT count(*) FROM communications') communications," \
    "$(q -c 'SELECT count(*) FROM delivery_events') events," \
    "$(q -c 'SELECT count(*) FROM inbound_messages') replies," \
    "$(q -c 'SELECT count(*) FROM communication_answers') answers made in" \
    "$((made - started)) s"

port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
env -i PATH="$PATH" HOME="${HOME:-/}" \
    CRIER_DATABASE_URL="$db_url" \
    CRIER_LISTEN="127.0.0.1:$port" \
    CRIER_PUBLIC_URL="http://127.0.0.1:$port" \
    CRIER_API_TOKENS="operator:$token" \
    CRIER_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)" \
    CRIER_TRANSPORT=sandbox \
    CRIER_OUTBOX_DIR="$work/outbox" \
    CRIER_TEMPLATES_DIR="$root/templates" \
    CRIER_RULES_DIR="$root/rules" \
    CRIER_WORKERS=0 \
    CRIER_LOG_LEVEL=warning \
    "$CRIER" serve >"$BENCH_DIR/analytics-crier.log" 2>&1 &
crier_pid=$!
for _ in $(seq 1 150); do
    curl -fsS --noproxy '*' -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break
    sleep 0.1
done

# The first figure is read before the engine has folded the deltas of the
# new rows (the waker folds every 15 s); the rest after, as a running
# service is.
from=$(date -u -d "$now - 30 days" +%Y-%m-%dT%H:%M:%SZ)
AN_URL="http://127.0.0.1:$port" AN_TOKEN=$token AN_FROM=$from AN_TO=$now AN_RUNS=$RUNS \
    AN_DB=$db_url "$PY" - <<'PYEOF'
import http.client, json, os, subprocess, sys, time, urllib.parse

url = urllib.parse.urlsplit(os.environ["AN_URL"])
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
hdrs = {"Authorization": "Bearer " + os.environ["AN_TOKEN"]}
frm, to, runs, db = os.environ["AN_FROM"], os.environ["AN_TO"], int(os.environ["AN_RUNS"]), os.environ["AN_DB"]


def psql(sql):
    return subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", ",", "-d", db, "-c", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


def get(path):
    t0 = time.perf_counter()
    conn.request("GET", path, headers=hdrs)
    r = conn.getresponse()
    body = r.read()
    ms = (time.perf_counter() - t0) * 1000
    if r.status != 200:
        sys.exit("analytics: %s answered %d: %s" % (path, r.status, body[:300]))
    return ms, json.loads(body)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


summary = "/v1/analytics/summary?" + urllib.parse.urlencode({"from": frm, "to": to})
want = psql("SELECT count(*), count(sent_at),"
            " count(*) FILTER (WHERE delivered_at IS NOT NULL OR opened_at IS NOT NULL"
            "  OR clicked_at IS NOT NULL),"
            " count(*) FILTER (WHERE opened_at IS NOT NULL OR clicked_at IS NOT NULL),"
            " count(clicked_at), count(*) FILTER (WHERE status IN ('failed', 'bounced')),"
            " count(*) FILTER (WHERE channel_attempt_base > 0)"
            " FROM communications WHERE created_at >= '%s' AND created_at < '%s'"
            " AND message_type <> 'digest'" % (frm, to)).split(",")
want_resp = psql("SELECT count(*) FROM (SELECT communication_id FROM communication_answers"
                 " UNION ALL SELECT communication_id FROM inbound_messages WHERE keyword IS NULL) r"
                 " JOIN communications c ON c.id = r.communication_id"
                 " WHERE c.created_at >= '%s' AND c.created_at < '%s'" % (frm, to))
names = ["total", "sent", "delivered", "opened", "clicked", "failed", "fallback_used"]


def check(js, when):
    got = [js[n] for n in names] + [js["responded"]]
    exp = [int(x) for x in want] + [int(want_resp)]
    if got != exp:
        sys.exit("analytics: the summary %s is wrong: %r, the rows say %r" % (when, got, exp))


ms, js = get(summary)
deltas = int(psql("SELECT count(*) FROM analytics_deltas"))
check(js, "before the fold")
print("analytics: first summary, %d deltas not yet folded: %.0f ms" % (deltas, ms))
t0 = time.time()
while int(psql("SELECT count(*) FROM analytics_deltas")) > 0:
    if time.time() - t0 > 120:
        sys.exit("analytics: the deltas were not folded within 120 s")
    time.sleep(0.5)
print("analytics: folded into %s hourly rows within %.0f s"
      % (psql("SELECT count(*) FROM analytics_hourly"), time.time() - t0))

plan = psql("SELECT plan_id FROM communications ORDER BY created_at DESC LIMIT 1")
figures = [
    ("summary, 30 days", summary),
    ("summary, 30 days, cut hours", "/v1/analytics/summary?" + urllib.parse.urlencode(
        {"from": frm[:-3] + "17Z", "to": to})),
    ("summary, all 90 days", "/v1/analytics/summary?" + urllib.parse.urlencode(
        {"from": psql("SELECT crier_iso(min(created_at)) FROM communications"), "to": to})),
    ("summary, 30 days, one plan", summary + "&plan_id=" + plan),
    ("breakdown by day, 30 days", "/v1/analytics/breakdown?by=day&" + summary.split("?")[1]),
    ("breakdown by hour, 30 days (CSV)",
     "/v1/analytics/breakdown?by=hour&format=csv&" + summary.split("?")[1]),
]
for name, path in figures:
    times = []
    conn.request("GET", path, headers=hdrs)  # one to warm up, not counted
    conn.getresponse().read()
    for _ in range(runs):
        t = time.perf_counter()
        conn.request("GET", path, headers=hdrs)
        r = conn.getresponse()
        body = r.read()
        times.append((time.perf_counter() - t) * 1000)
        if r.status != 200:
            sys.exit("analytics: %s answered %d" % (path, r.status))
    print("analytics: %-36s p50 %6.1f ms  p99 %6.1f ms  (%d requests)"
          % (name, pct(times, 50), pct(times, 99), runs))
ms, js = get(summary)
check(js, "after the fold")
print("analytics: 30-day summary: total %d, sent %d, delivery rate %.4f, open rate %.4f"
      % (js["total"], js["sent"], js["delivery_rate"], js["open_rate"]))
PYEOF
