#!/bin/sh
# The layers of src/, bottom first, and the check that every #include
# points down. A module is a folder of src/ (or, for a file at the top of
# src/, its name without extension). A module may include itself and any
# module on a lower line; a module on its own line only where ALLOW names
# the pair. docs/architecture.md ("Layers") explains the order.
#
# A second check keeps SQL where the data model is: only the modules in
# SQL_MODULES may run a statement, i.e. call one of libpq's query functions
# (PQexec, PQexecParams, PQprepare, PQexecPrepared, PQsendQuery...) or the
# store's db_query / db_exec. Comments and string literals are not code.
#
#   scripts/layers.sh [SRC_DIR]     exit 0 when clean, 1 naming each
#                                   offending file and line
set -eu

LAYERS='
util
config crypto tz
validate
channel
http template report store ratelimit circuit metrics webhook
request
queue policy transport prefcache
driver
engine app sim
api
cli
main
'
# Sideways includes allowed within a line: "from:to".
ALLOW='engine:app'
# The modules that may run SQL statements.
SQL_MODULES='store queue'

src=${1:-$(dirname "$0")/../src}
if [ ! -d "$src" ]; then
    echo "layers: $src: no such directory" >&2
    exit 2
fi

rank_file=$(mktemp)
sql_file=$(mktemp)
trap 'rm -f "$rank_file" "$sql_file"' EXIT
echo "$LAYERS" | awk 'NF { n++; for (i = 1; i <= NF; i++) print $i, n }' >"$rank_file"

bad=0

# One line per include: file, line number, included path.
find "$src" -name '*.[ch]' | LC_ALL=C sort | while read -r f; do
    awk -v f="$f" '/^[ \t]*#[ \t]*include[ \t]*"/ {
        p = $0; sub(/^[^"]*"/, "", p); sub(/".*$/, "", p); print f, FNR, p }' "$f"
done | awk -v src="$src" -v allow="$ALLOW" -v ranks="$rank_file" '
function module(path,    m) {
    if (index(path, "/") == 0) { m = path; sub(/\.[ch]$/, "", m); return m }
    m = path; sub(/\/.*$/, "", m); return m
}
BEGIN {
    while ((getline line < ranks) > 0) { split(line, a, " "); rank[a[1]] = a[2] }
    n = split(allow, pairs, " ")
    for (i = 1; i <= n; i++) ok[pairs[i]] = 1
    bad = 0
}
{
    file = $1; rel = file; sub("^" src "/", "", rel)
    from = module(rel); to = module($3)
    where = "src/" rel ":" $2
    if (!(from in rank)) { print where ": module " from " is in no layer"; bad = 1; next }
    if (from == to) next
    if (!(to in rank)) {
        # a file of this module included without its folder, or a stray name
        print where ": \"" $3 "\" names no module of a layer"; bad = 1; next
    }
    if (rank[to] < rank[from]) next
    if (rank[to] == rank[from] && ((from ":" to) in ok)) next
    print where ": " from " may not include " $3 " (" to " is " \
        (rank[to] == rank[from] ? "beside" : "above") " " from ")"
    bad = 1
}
END { exit bad }
' || bad=1

# One line per statement call outside SQL_MODULES: file, line number, the
# function. Comments (also across lines) and string literals are blanked
# first, so that a comment naming a function is no call.
find "$src" -name '*.[ch]' | LC_ALL=C sort | while read -r f; do
    rel=${f#"$src"/}
    case $rel in */*) m=${rel%%/*} ;; *) m=${rel%.[ch]} ;; esac
    case " $SQL_MODULES " in *" $m "*) continue ;; esac
    awk -v where="src/$rel" -v m="$m" '
    BEGIN { incomment = 0 }
    {
        line = $0; out = ""
        while (length(line) > 0) {
            if (incomment) {
                e = index(line, "*/")
                if (e == 0) { line = ""; break }
                line = substr(line, e + 2); incomment = 0; continue
            }
            c = substr(line, 1, 1); two = substr(line, 1, 2)
            if (two == "/*") { incomment = 1; line = substr(line, 3); out = out " "; continue }
            if (two == "//") break
            if (c == "\"" || c == "\047") {
                # skip to the closing quote, honouring backslash escapes
                q = c; i = 2
                while (i <= length(line)) {
                    d = substr(line, i, 1)
                    if (d == "\\") { i += 2; continue }
                    if (d == q) break
                    i++
                }
                line = substr(line, i + 1); out = out q q; continue
            }
            out = out c; line = substr(line, 2)
        }
        s = out
        while (match(s, /(^|[^A-Za-z0-9_])(PQexec|PQexecParams|PQprepare|PQexecPrepared|PQsendQuery[A-Za-z]*|db_query|db_exec)[ \t]*\(/)) {
            call = substr(s, RSTART, RLENGTH)
            sub(/^[^A-Za-z_]/, "", call); sub(/[ \t]*\($/, "", call)
            print where ":" FNR ": " m " may not call " call " (SQL lives in store/ and queue/)"
            s = substr(s, RSTART + RLENGTH)
        }
    }' "$f"
done >"$sql_file"
if [ -s "$sql_file" ]; then
    cat "$sql_file"
    bad=1
fi
exit $bad
