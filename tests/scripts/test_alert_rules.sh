#!/bin/sh
# The Prometheus alert rules crier ships (config/alerts.yml) are rules
# Prometheus loads: promtool checks their syntax, their PromQL and their
# templates. A copy with a broken expression must fail the same check, so
# this test cannot pass by checking nothing.
set -eu
src=${CRIER_SOURCE_DIR:?}
rules=$src/config/alerts.yml
command -v promtool >/dev/null || {
    echo "FAIL: promtool not found (Debian package prometheus: run scripts/deps.sh)"
    exit 1
}
out=$(promtool check rules "$rules" 2>&1) || {
    echo "FAIL: promtool check rules $rules:"
    echo "$out"
    exit 1
}
case $out in
*"SUCCESS: "*" rules found"*) ;;
*) echo "FAIL: promtool found no rules in $rules:"; echo "$out"; exit 1 ;;
esac
n=$(grep -c '^ *- alert:' "$rules")
case $out in
*"SUCCESS: $n rules found"*) ;;
*) echo "FAIL: $rules has $n alerts, promtool says:"; echo "$out"; exit 1 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed 's/crier_database_up == 0/crier_database_up == (0/' "$rules" >"$work/alerts.yml"
if cmp -s "$rules" "$work/alerts.yml"; then
    echo "FAIL: the broken copy is not broken (the database alert changed?)"
    exit 1
fi
if promtool check rules "$work/alerts.yml" >/dev/null 2>&1; then
    echo "FAIL: promtool passed a rule file with an unbalanced expression"
    exit 1
fi
echo "ok: $n alert rules pass promtool check rules"
