#!/usr/bin/env bash
# demo.sh: `make demo`. Runs crier on its embedded default on this machine:
# a private PostgreSQL started here (under build/demo/), the sandbox
# transports (what would be sent is written to build/demo/outbox), and no
# credentials: the encryption key and the API token are made up for this run
# and live only in this process's environment. Every email is DKIM-signed
# with a demo key made on the first run and kept in build/demo/dkim (mode
# 0700; its TXT record beside it), which the driver checks each email
# against. Then tests/demo/driver.py plays the planning workflow for three
# sample clients.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

BUILD_DIR=${BUILD_DIR:-build}
DEMO_DIR=$root/$BUILD_DIR/demo
SERVICES_DIR=$DEMO_DIR/services
OUTBOX=$DEMO_DIR/outbox
PY=/usr/bin/python3

say() {
    echo "demo: $*"
}

say "checking packages"
scripts/deps.sh
say "building"
make --no-print-directory build BUILD_DIR="$BUILD_DIR"
CRIER=$root/$BUILD_DIR/crier

say "starting a private PostgreSQL under $BUILD_DIR/demo/services"
scripts/services.sh start "$SERVICES_DIR"
eval "$(scripts/services.sh env "$SERVICES_DIR")"
admin_url=$CRIER_TEST_DATABASE_URL
db_url=${admin_url%/*}/crier_demo
unset CRIER_TEST_DATABASE_URL CRIER_TEST_REDIS_URL

# Every run starts from an empty database and outbox: the key of the last
# run is gone, so its rows could not be read anyway.
PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 -d "$admin_url" \
    -c 'DROP DATABASE IF EXISTS crier_demo WITH (FORCE)' -c 'CREATE DATABASE crier_demo'
rm -rf "$OUTBOX"
mkdir -p "$OUTBOX"

# The demo's DKIM key outlives a run (the outbox does not), as a real key
# would: made once, its record published once.
DKIM_DIR=$DEMO_DIR/dkim
DKIM_KEY=$DKIM_DIR/demo.pem
DKIM_SELECTOR=demo
DKIM_DOMAIN=planiva.example
mkdir -p "$DKIM_DIR"
chmod 700 "$DKIM_DIR"
if [ ! -f "$DKIM_KEY" ]; then
    say "making a DKIM key for the demo ($BUILD_DIR/demo/dkim/demo.pem)"
    if ! "$CRIER" dkim keygen --selector "$DKIM_SELECTOR" --domain "$DKIM_DOMAIN" \
        --out "$DKIM_KEY" >"$DKIM_DIR/demo.txt.tmp" 2>"$DKIM_DIR/keygen.log"; then
        cat "$DKIM_DIR/keygen.log" >&2
        exit 1
    fi
    mv "$DKIM_DIR/demo.txt.tmp" "$DKIM_DIR/demo.txt"
fi
if [ ! -s "$DKIM_DIR/demo.txt" ]; then
    env -i PATH="$PATH" CRIER_DKIM_KEY_FILE="$DKIM_KEY" CRIER_DKIM_SELECTOR="$DKIM_SELECTOR" \
        CRIER_DKIM_DOMAIN="$DKIM_DOMAIN" "$CRIER" dkim record >"$DKIM_DIR/demo.txt"
fi
say "emails are DKIM-signed; the record a receiver would look up:"
sed 's/^/  /' "$DKIM_DIR/demo.txt"

say "migrating"
CRIER_DATABASE_URL=$db_url CRIER_SQL_DIR=$root/sql "$CRIER" migrate

port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
key=$(head -c 32 /dev/urandom | base64)

say "starting crier serve on 127.0.0.1:$port (sandbox transport; log in $BUILD_DIR/demo/crier.log)"
env -i PATH="$PATH" HOME="${HOME:-/}" \
    CRIER_DATABASE_URL="$db_url" \
    CRIER_LISTEN="127.0.0.1:$port" \
    CRIER_PUBLIC_URL="http://127.0.0.1:$port" \
    CRIER_API_TOKENS="workflow:$token" \
    CRIER_ENCRYPTION_KEY="$key" \
    CRIER_TRANSPORT=sandbox \
    CRIER_OUTBOX_DIR="$OUTBOX" \
    CRIER_DKIM_KEY_FILE="$DKIM_KEY" \
    CRIER_DKIM_SELECTOR="$DKIM_SELECTOR" \
    CRIER_DKIM_DOMAIN="$DKIM_DOMAIN" \
    CRIER_TEMPLATES_DIR="$root/templates" \
    CRIER_RULES_DIR="$root/rules" \
    CRIER_SQL_DIR="$root/sql" \
    CRIER_POLL_MS=200 \
    "$CRIER" serve >"$DEMO_DIR/crier.log" 2>&1 &
crier_pid=$!
unset key

stop_crier() {
    if kill -0 "$crier_pid" 2>/dev/null; then
        kill -TERM "$crier_pid"
        wait "$crier_pid" || true
    fi
}
trap stop_crier EXIT

for _ in $(seq 1 150); do
    if curl -fsS --noproxy '*' -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$crier_pid" 2>/dev/null; then
        say "crier serve exited; its log:"
        tail -n 30 "$DEMO_DIR/crier.log"
        exit 1
    fi
    sleep 0.1
done

status=0
CRIER_DEMO_TOKEN=$token "$PY" tests/demo/driver.py --url "http://127.0.0.1:$port" \
    --outbox "$OUTBOX" --attachment tests/demo/blueprint.pdf --source "$root" \
    --dkim-record "$DKIM_DIR/demo.txt" || status=$?

stop_crier
trap - EXIT
pg_port=${admin_url##*:}
pg_port=${pg_port%%/*}
cat <<EOM

demo: crier stopped; the outbox stays in $BUILD_DIR/demo/outbox.
demo: PostgreSQL is still running on 127.0.0.1:$pg_port, so the rows can be read:
  psql postgresql://crier@127.0.0.1:$pg_port/crier_demo -c 'SELECT message_type, channel, status FROM communications'
demo: stop it with: scripts/services.sh stop $BUILD_DIR/demo/services   (make clean stops it too)
EOM
exit "$status"
