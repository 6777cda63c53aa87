#!/bin/sh
# The layer check itself: clean on the tree as it is, and on a copy where
# the engine includes the API it fails, naming the file and the line.
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
echo "ok: the layers hold, an upward include and a sideways one are named"
