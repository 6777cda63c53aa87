#!/usr/bin/env bash
# deps.sh: installs the Debian packages crier needs to build, test and run its
# demo, and nothing when they are all there already. Run as root on a fresh
# machine; as another user it prints the command to run and fails, because a
# half-provisioned machine would only fail later with a less useful message.
set -euo pipefail

# Build and unit tests.
pkgs=(build-essential cmake pkg-config liblua5.4-dev libpq-dev libhiredis-dev
      libcurl4-openssl-dev libcjson-dev libmicrohttpd-dev libssl-dev libcmocka-dev
      libsystemd-dev)
# Services the integration tests, the demo and the benchmarks start privately.
pkgs+=(postgresql postgresql-client postgresql-contrib redis-server)
# Integration tests run under Debian's /usr/bin/python3 with these modules.
pkgs+=(python3 python3-aiosmtpd python3-yaml python3-jsonschema)
# DKIM signatures are checked by an outside verifier, not by crier's own code.
pkgs+=(python3-dkim)
# Pages crier serves are tested in a real browser (driven by playwright-core).
pkgs+=(chromium)
# The fuzz harnesses (make fuzz): clang and its libFuzzer runtime.
pkgs+=(clang libclang-rt-14-dev)
# Benchmarks, time zone data for the policy tests, HTTP probes.
pkgs+=(wrk tzdata curl iproute2)
# The email benchmark's SMTP sink and reference client (smtp-sink and
# smtp-source under /usr/sbin). Only those two programs are used: postfix is
# installed unconfigured and its daemon is never started (see below).
pkgs+=(postfix)
# promtool, which checks the shipped alert rules (tests/scripts/test_alert_rules.sh).
pkgs+=(prometheus)
# make deb and its test: CPack's DEB generator (dpkg-deb, dpkg-shlibdeps for
# the dependencies, fakeroot) and lintian on the package.
pkgs+=(dpkg-dev fakeroot lintian)
# make coverage: gcovr reads the gcov counters of the instrumented build.
pkgs+=(gcovr)
# The console's PDF report is drawn with cairo; its test reads the PDF
# back with poppler's pdftoppm and pdftotext.
pkgs+=(libcairo2-dev poppler-utils)

missing=()
for p in "${pkgs[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    case "$status" in
    ii*) ;;
    *) missing+=("$p") ;;
    esac
done

# The OpenAPI linter needs Node.js and npm. A machine may carry a newer
# Node.js than Debian's, whose package already ships npm; adding Debian's npm
# on top of it would conflict, so only the commands are checked.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

install_cmd="DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing Debian packages: ${missing[*]}" >&2
    echo "deps: run as root:" >&2
    echo "  apt-get update && $install_cmd" >&2
    exit 1
fi

echo "deps: installing ${missing[*]}"
apt-get update -q
# postfix: no mail system configured ("No configuration" writes no main.cf,
# so the daemon cannot run), and no service started while installing (a
# policy-rc.d answering 101, unless the machine has its own).
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
