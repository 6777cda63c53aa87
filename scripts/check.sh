#!/usr/bin/env bash
# check.sh: everything `make check` (and so CI) runs, on a fresh machine or a
# warm one:
#   1. install the Debian packages that are missing (scripts/deps.sh)
#   2. check the layers (scripts/layers.sh) and lint the C (make lint)
#   3. build build/ (optimised), build-asan/ (AddressSanitizer + UBSan) and
#      build-tsan/ (ThreadSanitizer); build the fuzz harnesses in build-fuzz/
#      with clang and run each for FUZZ_SECONDS (1) seconds on a copy of its
#      seed corpus (scripts/fuzz.sh)
#   4. start a private PostgreSQL and Redis under build/services
#   5. lint docs/openapi.yaml with the Redocly CLI (installed into build/tools),
#      and install the browser tests' playwright-core (tests/browser)
#   6. run every test with ctest in build/, then in build-asan/, then the
#      unit tests and the integration tests that run many threads at once
#      in build-tsan/
# The services are stopped on the way out, whatever happened. The exit status
# is non-zero when any step failed; the last lines are the summary of the last
# ctest run.
set -uo pipefail

started=$(date +%s)
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1

BUILD_DIR=${BUILD_DIR:-build}
ASAN_DIR=${ASAN_DIR:-build-asan}
TSAN_DIR=${TSAN_DIR:-build-tsan}
FUZZ_DIR=${FUZZ_DIR:-build-fuzz}
# A smoke run: long enough to run every seed and some thousands of mutations
# each, short enough to keep the whole check under its time budget.
FUZZ_SECONDS=${FUZZ_SECONDS:-1}
# What the ThreadSanitizer build runs: every unit test, and the integration
# tests where threads meet (two processes and their worker threads, the
# intake pipeline, rule runners under load, the shared rate limit, the HTTP
# connection guard).
TSAN_TESTS='^unit\.|^integration\.(test_two_servers|test_pipeline|test_rules_under_load|test_ratelimit_shared|test_http_limits|test_retention|test_templates_live)$'
SERVICES_DIR=$BUILD_DIR/services
TOOLS_DIR=$BUILD_DIR/tools
# The 1.34 line runs on Debian's Node.js 18 as well as on Node.js 20; 2.x needs
# Node.js 20.19 or later.
REDOCLY_VERSION=1.34.5
JOBS=${JOBS:-2}
# Tests in flight at once: most of a test's time is waiting on a server, a
# provider stub or a retry, so one more than the cores keeps both busy.
TEST_JOBS=${TEST_JOBS:-3}

failed=()

say() {
    echo "check: $*"
}

fail() {
    say "FAILED: $*"
    failed+=("$*")
}

elapsed() {
    echo $(($(date +%s) - started))
}

# A failure here leaves nothing worth testing.
die() {
    say "FAILED: $* (after $(elapsed) s)"
    exit 1
}

say "installing missing packages"
scripts/deps.sh || die "scripts/deps.sh"

say "checking the layers"
scripts/layers.sh || fail "layer check (scripts/layers.sh)"
say "linting the C (clang-format, cppcheck)"
mkdir -p "$BUILD_DIR"
make --no-print-directory lint >"$BUILD_DIR/lint.out" 2>&1 || {
    tail -n 40 "$BUILD_DIR/lint.out"
    fail "make lint"
}

say "building $BUILD_DIR/"
make --no-print-directory build BUILD_DIR="$BUILD_DIR" JOBS="$JOBS" || die "build of $BUILD_DIR/"
say "building $ASAN_DIR/"
make --no-print-directory asan ASAN_DIR="$ASAN_DIR" JOBS="$JOBS" || die "build of $ASAN_DIR/"
say "building $TSAN_DIR/"
make --no-print-directory tsan TSAN_DIR="$TSAN_DIR" JOBS="$JOBS" || die "build of $TSAN_DIR/"

say "fuzzing in $FUZZ_DIR/ (each harness for $FUZZ_SECONDS s)"
fuzz_started=$(date +%s)
make --no-print-directory fuzz FUZZ_DIR="$FUZZ_DIR" FUZZ_SECONDS="$FUZZ_SECONDS" JOBS="$JOBS" ||
    fail "make fuzz (scripts/fuzz.sh)"
say "fuzzing took $(($(date +%s) - fuzz_started)) s"

say "starting PostgreSQL and Redis under $SERVICES_DIR/"
trap 'scripts/services.sh stop "$SERVICES_DIR" || true' EXIT
scripts/services.sh start "$SERVICES_DIR" || die "starting the services"
service_env=$(scripts/services.sh env "$SERVICES_DIR") || die "reading the service environment"
eval "$service_env"

lint_openapi() {
    local cli=$TOOLS_DIR/node_modules/.bin/redocly
    local have=""
    if [ ! -f docs/openapi.yaml ]; then
        fail "docs/openapi.yaml is missing"
        return
    fi
    if [ -f "$TOOLS_DIR/node_modules/@redocly/cli/package.json" ]; then
        have=$(node -p "require('./$TOOLS_DIR/node_modules/@redocly/cli/package.json').version" 2>/dev/null || true)
    fi
    if [ "$have" != "$REDOCLY_VERSION" ]; then
        say "installing @redocly/cli@$REDOCLY_VERSION into $TOOLS_DIR/"
        mkdir -p "$TOOLS_DIR"
        # A second try rides out a dropped connection to the registry.
        if ! npm install --prefix "$TOOLS_DIR" --no-audit --no-fund --loglevel=error \
            "@redocly/cli@$REDOCLY_VERSION" >"$TOOLS_DIR/npm-install.log" 2>&1 &&
            ! npm install --prefix "$TOOLS_DIR" --no-audit --no-fund --loglevel=error \
                "@redocly/cli@$REDOCLY_VERSION" >"$TOOLS_DIR/npm-install.log" 2>&1; then
            tail -n 20 "$TOOLS_DIR/npm-install.log"
            fail "installing the OpenAPI linter"
            return
        fi
    fi
    say "linting docs/openapi.yaml"
    # No usage reports leave the machine, and no update checks.
    REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
        "$cli" lint docs/openapi.yaml || fail "OpenAPI lint of docs/openapi.yaml"
}
lint_openapi

# The Node packages of the browser tests and of the LangGraph example (also
# the ctest fixtures setup.browser_deps and setup.example_deps): npm ci when
# missing, nothing when present.
say "installing the browser tests' and the example's packages"
scripts/npm-deps.sh tests/browser playwright-core ||
    fail "installing playwright-core into tests/browser"
scripts/npm-deps.sh examples/langgraph @langchain/langgraph ||
    fail "installing LangGraph.js into examples/langgraph"

# LeakSanitizer cannot stop the world in some sandboxes; find out once rather
# than let every test fail for a reason that is not the code's.
leaks=1
probe_dir=$ASAN_DIR/lsan-probe
mkdir -p "$probe_dir"
# Ten blocks, each dropped when the next one is taken: at most the last can
# survive as a stale register or stack value, the others must be reported.
printf '#include <stdlib.h>\nvoid *volatile probe_sink;\nint main(void)\n{\n    for (int i = 0; i < 10; i++)\n        probe_sink = malloc(64);\n    probe_sink = 0;\n    return 0;\n}\n' \
    >"$probe_dir/probe.c"
if gcc -fsanitize=address -g "$probe_dir/probe.c" -o "$probe_dir/probe" 2>/dev/null; then
    probe_out=$(ASAN_OPTIONS=detect_leaks=1 "$probe_dir/probe" 2>&1 || true)
    if ! grep -q 'detected memory leaks' <<<"$probe_out"; then
        leaks=0
        say "LeakSanitizer does not work on this machine: leak detection off"
    fi
fi

export ASAN_OPTIONS="detect_leaks=$leaks:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
if [ -f tests/lsan.supp ]; then
    export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp:print_suppressions=0"
fi

run_ctest() {
    local dir=$1 out=$2
    shift 2
    say "ctest in $dir/ $*"
    ctest --test-dir "$dir" --output-on-failure --no-tests=error -j"$TEST_JOBS" "$@" 2>&1 | tee "$out"
    return "${PIPESTATUS[0]}"
}

# The release tree runs first: it is quicker to fail there.
run_ctest "$BUILD_DIR" "$BUILD_DIR/ctest.out" || fail "ctest in $BUILD_DIR/"
first_summary=$(grep -E '^[0-9]+% tests passed' "$BUILD_DIR/ctest.out" | tail -n 1)
run_ctest "$ASAN_DIR" "$ASAN_DIR/ctest.out" || fail "ctest in $ASAN_DIR/"
asan_summary=$(grep -E '^[0-9]+% tests passed' "$ASAN_DIR/ctest.out" | tail -n 1)
# A race reported anywhere fails the test that saw it, at once.
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
run_ctest "$TSAN_DIR" "$TSAN_DIR/ctest.out" -R "$TSAN_TESTS" || fail "ctest in $TSAN_DIR/"

echo
say "$BUILD_DIR/: ${first_summary:-no summary}"
say "$ASAN_DIR/: ${asan_summary:-no summary}"
for f in "${failed[@]}"; do
    say "failed: $f"
done
say "total wall time $(elapsed) s"
echo
# ctest's own closing lines for the last run, so they end the output.
line=$(grep -n -E '^[0-9]+% tests passed' "$TSAN_DIR/ctest.out" | tail -n 1 | cut -d: -f1)
if [ -n "$line" ]; then
    tail -n +"$line" "$TSAN_DIR/ctest.out"
else
    tail -n 5 "$TSAN_DIR/ctest.out"
fi

[ ${#failed[@]} -eq 0 ]
