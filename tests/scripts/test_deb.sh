#!/bin/sh
# The Debian package: packaged from the tree ctest runs in (CPack, no new
# build: the binary is the one the other tests run), or CRIER_DEB when it
# names a .deb already made (make deb). Unpacked into a scratch root, the
# binary runs from there and checks its configuration offline against the
# rules and templates it shipped with; the unit, the conffiles, the
# migrations and the documents are where crier.service says; lintian
# reports no error.
set -eu
src=${CRIER_SOURCE_DIR:?}
build=${CRIER_BUILD_DIR:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

deb=${CRIER_DEB:-}
if [ -z "$deb" ]; then
    if ! out=$(cpack --config "$build/CPackConfig.cmake" -G DEB -B "$work/pkg" 2>&1); then
        echo "FAIL: cpack in $build:"; echo "$out"; exit 1
    fi
    deb=$(ls "$work"/pkg/crier_*.deb)
fi
[ -f "$deb" ] || { echo "FAIL: no package at \"$deb\""; exit 1; }

root=$work/root
dpkg-deb -x "$deb" "$root"
[ "$(dpkg-deb -f "$deb" Package)" = crier ] || { echo "FAIL: the package is not named crier"; exit 1; }

for f in usr/bin/crier lib/systemd/system/crier.service etc/crier/crier.conf etc/crier/crier.env \
    usr/share/crier/sql/001_init.sql usr/share/crier/rules/channels.lua \
    usr/share/crier/rules/tests/channels_cases.lua usr/share/crier/templates/email/layout.html \
    usr/share/crier/console/index.html usr/share/crier/console/app.js \
    usr/share/doc/crier/README.md usr/share/doc/crier/architecture.md usr/share/doc/crier/LICENSE \
    usr/share/doc/crier/copyright usr/share/doc/crier/changelog.Debian.gz; do
    [ -f "$root/$f" ] || { echo "FAIL: /$f is not in the package"; exit 1; }
done
# every migration and every scenario, not only the first
n_sql=$(ls "$src"/sql/*.sql | wc -l)
[ "$(ls "$root"/usr/share/crier/sql/*.sql | wc -l)" -eq "$n_sql" ] ||
    { echo "FAIL: the package does not carry all $n_sql migrations"; exit 1; }
n_sc=$(ls "$src"/rules/scenarios | wc -l)
[ "$(ls "$root"/usr/share/crier/rules/scenarios | wc -l)" -eq "$n_sc" ] ||
    { echo "FAIL: the package does not carry all $n_sc rule scenarios"; exit 1; }
# the paths the unit names are the paths the package installs
for p in /usr/bin/crier /usr/share/crier/sql /etc/crier/crier.conf /etc/crier/crier.env \
    /usr/share/crier/rules /usr/share/crier/templates /usr/share/doc/crier/README.md; do
    grep -q "$p" "$root/lib/systemd/system/crier.service" ||
        { echo "FAIL: crier.service does not name $p"; exit 1; }
    [ -e "$root$p" ] || { echo "FAIL: crier.service names $p, which the package lacks"; exit 1; }
done
mode=$(stat -c %a "$root/etc/crier/crier.env")
[ "$mode" = 600 ] || { echo "FAIL: /etc/crier/crier.env has mode $mode, not 600"; exit 1; }

dpkg-deb -e "$deb" "$work/control"
for f in /etc/crier/crier.conf /etc/crier/crier.env; do
    grep -qx "$f" "$work/control/conffiles" || { echo "FAIL: $f is not a conffile"; exit 1; }
done
grep -q 'adduser --system --group --no-create-home --home /var/lib/crier crier' \
    "$work/control/postinst" || { echo "FAIL: the postinst does not make the crier user"; exit 1; }
grep -q '/var/lib/crier/outbox' "$work/control/postinst" ||
    { echo "FAIL: the postinst does not make the outbox"; exit 1; }
grep -q 'libpq5' "$work/control/control" ||
    { echo "FAIL: the dependencies do not come from the binary's libraries"; exit 1; }

bin=$root/usr/bin/crier
v=$("$bin" version) || { echo "FAIL: crier version exits non-zero"; exit 1; }
case $v in
"crier $(dpkg-deb -f "$deb" Version | sed 's/-[^-]*$//')"*) ;;
*) echo "FAIL: crier version says \"$v\", the package $(dpkg-deb -f "$deb" Version)"; exit 1 ;;
esac
if ! out=$(cd "$work" && env -i PATH=/usr/bin:/bin \
    CRIER_RULES_DIR="$root/usr/share/crier/rules" \
    CRIER_TEMPLATES_DIR="$root/usr/share/crier/templates" \
    CRIER_OUTBOX_DIR="$work/outbox" \
    "$bin" config check --offline --config "$root/etc/crier/crier.conf" 2>&1); then
    echo "FAIL: crier config check --offline on the installed files:"; echo "$out"; exit 1
fi

lint=$(lintian "$deb" 2>&1) || true
if printf '%s\n' "$lint" | grep -q '^E:'; then
    echo "FAIL: lintian reports errors:"; echo "$lint"; exit 1
fi
printf '%s\n' "$lint" | grep '^W:' || true
echo "ok: $(basename "$deb") installs the binary, the unit, the conffiles, the migrations, the rules, the templates and the documents where the unit looks; lintian reports no error"
