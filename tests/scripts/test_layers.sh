#!/bin/sh
# The layer check itself: clean on the tree as it is, and on a copy where
# the engine includes the API, or runs a statement itself, it fails, naming
# the file and the line.
set -eu
src=${CRIER_SOURCE_DIR:?}
check=$src/scripts/layers.sh
"$check" "$src/src" || { echo "FAIL: the tree itself breaks its layers"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R "$src/src" "$work/src"
f=$work/src/engine/delivery.c
line=$(($(wc -l <"$f") + 1))
echo '#include "api/comms.h"' >>"$f"
if out=$("$check" "$work/src" 2>&1); then
    echo "FAIL: an engine file including api/ passed the check"
    exit 1
fi
want="src/engine/delivery.c:$line: engine may not include api/comms.h (api is above engine)"
case $out in
*"$want"*) ;;
*) echo "FAIL: expected \"$want\", got:"; echo "$out"; exit 1 ;;
esac

# Sideways: http and template share a line, and neither may include the
# other.
echo '#include "template/mustache.h"' >>"$work/src/http/answer.c"
out=$("$check" "$work/src" 2>&1 || true)
case $out in
*"http may not include template/mustache.h (template is beside http)"*) ;;
*) echo "FAIL: a sideways include was not reported:"; echo "$out"; exit 1 ;;
esac
# SQL outside store/ and queue/: a statement run from the engine is named;
# the same words in a comment or a string are not a call.
fresh=$work/fresh
cp -R "$src/src" "$fresh"
f=$fresh/engine/callbacks.c
line=$(($(wc -l <"$f") + 2))
cat >>"$f" <<'EOC'
/* db_exec(conn, ...) named in a comment is no call */
static int cb_scratch(PGconn *conn) { PGresult *r = PQexec(conn, "SELECT 1"); PQclear(r); return 0; }
static const char cb_scratch_text[] = "db_query(";
EOC
if out=$("$check" "$fresh" 2>&1); then
    echo "FAIL: an engine file calling PQexec passed the check"
    exit 1
fi
want="src/engine/callbacks.c:$line: engine may not call PQexec (SQL lives in store/ and queue/)"
case $out in
*"$want"*) ;;
*) echo "FAIL: expected \"$want\", got:"; echo "$out"; exit 1 ;;
esac
if [ "$(printf '%s\n' "$out" | wc -l)" -ne 1 ]; then
    echo "FAIL: a comment or a string was taken for a call:"; echo "$out"; exit 1
fi
# the store itself may run statements
echo 'static void db_scratch(PGconn *c) { PQclear(PQexec(c, "SELECT 1")); }' \
    >>"$work/src/store/db.c"
out=$("$check" "$work/src" 2>&1 || true)
case $out in
*"store may not call"*) echo "FAIL: the store was refused SQL:"; echo "$out"; exit 1 ;;
esac
echo "ok: the layers hold; an upward include, a sideways one and SQL outside store/ and queue/ are named"
