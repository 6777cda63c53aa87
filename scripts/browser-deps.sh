#!/bin/sh
# browser-deps.sh: installs the npm packages of the browser tests
# (tests/browser: playwright-core, at the version package-lock.json pins)
# into tests/browser/node_modules with `npm ci`, when they are missing or
# another version. When they are there it does nothing and needs no
# network. The browser itself is Debian's chromium (scripts/deps.sh):
# playwright-core downloads none.
#
#   scripts/browser-deps.sh     exit 0 when the packages are in place
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/tests/browser

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "browser-deps: node and npm are needed (scripts/deps.sh installs them)" >&2
    exit 1
fi

locked() {
    node -e 'const l = require(process.argv[1]);
             process.stdout.write(l.packages["node_modules/playwright-core"].version)' \
        "$dir/package-lock.json"
}

installed() {
    node -e 'process.stdout.write(require(process.argv[1]).version)' \
        "$dir/node_modules/playwright-core/package.json" 2>/dev/null || true
}

want=$(locked)
if [ "$(installed)" = "$want" ]; then
    exit 0
fi

echo "browser-deps: installing playwright-core $want into tests/browser/node_modules"
log=$(mktemp "${TMPDIR:-/tmp}/crier-browser-npm-ci.XXXXXX")
# A second try rides out a dropped connection to the registry. No usage
# reports, no update checks, no browser download (there is none in -core).
for try in 1 2; do
    if (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1); then
        rm -f "$log"
        [ "$(installed)" = "$want" ] && exit 0
        echo "browser-deps: npm ci left playwright-core $(installed), not $want" >&2
        exit 1
    fi
    [ "$try" = 2 ] || sleep 2
done
tail -n 20 "$log" >&2
echo "browser-deps: npm ci failed in tests/browser (log: $log)" >&2
exit 1
