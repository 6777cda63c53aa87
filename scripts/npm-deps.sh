#!/bin/sh
# npm-deps.sh: installs the npm packages of one of the project's Node
# folders (tests/browser: playwright-core; examples/langgraph: LangGraph.js)
# into its node_modules with `npm ci`, at the versions its package-lock.json
# pins, when they are missing or another version. When they are there it
# does nothing and needs no network. The browser itself is Debian's
# chromium (scripts/deps.sh): playwright-core downloads none.
#
#   scripts/npm-deps.sh DIR PACKAGE   exit 0 when DIR's packages are in place;
#                                     PACKAGE is the one whose version is checked
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 2 ] || { echo "usage: scripts/npm-deps.sh DIR PACKAGE" >&2; exit 2; }
dir=$root/$1
pkg=$2

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "npm-deps: node and npm are needed (scripts/deps.sh installs them)" >&2
    exit 1
fi

locked() {
    node -e 'const l = require(process.argv[1]);
             process.stdout.write(l.packages["node_modules/" + process.argv[2]].version)' \
        "$dir/package-lock.json" "$pkg"
}

installed() {
    node -e 'process.stdout.write(require(process.argv[1]).version)' \
        "$dir/node_modules/$pkg/package.json" 2>/dev/null || true
}

want=$(locked)
if [ "$(installed)" = "$want" ]; then
    exit 0
fi

echo "npm-deps: installing $pkg $want into $1/node_modules"
log=$(mktemp "${TMPDIR:-/tmp}/crier-npm-ci.XXXXXX")
# A second try rides out a dropped connection to the registry. No usage
# reports, no update checks, no browser download (there is none in -core).
for try in 1 2; do
    if (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1); then
        rm -f "$log"
        [ "$(installed)" = "$want" ] && exit 0
        echo "npm-deps: npm ci left $pkg $(installed), not $want" >&2
        exit 1
    fi
    [ "$try" = 2 ] || sleep 2
done
tail -n 20 "$log" >&2
echo "npm-deps: npm ci failed in $1 (log: $log)" >&2
exit 1
