#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The examples README.md points users at are valid where they go (TAP):
# the disk XMLs inside a domain and the volume XML by libvirt's schemas
# (virt-xml-validate), the NBD drop-in by systemd over the packaged unit.
# That the disk XMLs are what `gfpool disk-xml` prints and the volume XML
# passes vol-create's rules: test_vol_xml, /examples/.
set -u
top=$1
ex=$top/examples
unit=$top/debian/nbdkit-plugin-gfpool.gfpool-nbd@.service
dropin=$ex/gfpool-nbd-cache-none.conf
n=0 fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
show() { sed 's/^/# /' "$1"; }

# The smallest domain libvirt's schema takes around a disk (as
# tests/testbed/guests.py's minimal_domain writes it).
domain() {
    printf "<domain type='qemu'>\n  <name>validate</name>\n  <memory unit='KiB'>65536</memory>\n"
    printf "  <os>\n    <type>hvm</type>\n  </os>\n  <devices>\n"
    cat "$1"
    printf "  </devices>\n</domain>\n"
}

for f in disk-gluster.xml disk-nbd.xml; do
    if ! command -v virt-xml-validate >/dev/null; then
        skip "$f in a domain: libvirt's schema" "virt-xml-validate not installed"
        continue
    fi
    domain "$ex/$f" > "$tmp/domain-$f"
    virt-xml-validate "$tmp/domain-$f" domain > "$tmp/out" 2>&1
    r=$?
    ok $r "$f in a domain: libvirt's schema"
    [ $r = 0 ] || show "$tmp/out"
done

if command -v virt-xml-validate >/dev/null; then
    virt-xml-validate "$ex/volume-qcow2.xml" storagevol > "$tmp/out" 2>&1
    r=$?
    ok $r "volume-qcow2.xml: libvirt's schema"
    [ $r = 0 ] || show "$tmp/out"
else
    skip "volume-qcow2.xml: libvirt's schema" "virt-xml-validate not installed"
fi

# The drop-in's command is the packaged one plus cache=none, nothing else:
# a packaged change to the command must show up here.
packaged=$(sed -n 's/^ExecStart=\(..*\)$/\1/p' "$unit")
mapfile -t execs < <(sed -n 's/^ExecStart=//p' "$dropin")
[ -n "$packaged" ] && [ ${#execs[@]} = 2 ] && [ -z "${execs[0]}" ] &&
    [ "${execs[1]}" = "$packaged cache=none" ]
r=$?
ok $r "gfpool-nbd-cache-none.conf: empty ExecStart=, then the packaged command plus cache=none"
[ $r = 0 ] || printf '# packaged: %s\n# drop-in:  %s\n' "$packaged" "${execs[*]}"
grep -qx '\[Service\]' "$dropin"
ok $? "gfpool-nbd-cache-none.conf: a [Service] section"

# systemd reads the unit with the drop-in as it would on a host; it wants
# the command's executable to exist.
if ! command -v systemd-analyze >/dev/null; then
    skip "systemd-analyze verify: unit + drop-in" "systemd-analyze not installed"
elif [ ! -x "${packaged%% *}" ]; then
    skip "systemd-analyze verify: unit + drop-in" "${packaged%% *} not installed"
else
    mkdir -p "$tmp/units/gfpool-nbd@.service.d"
    cp "$unit" "$tmp/units/gfpool-nbd@.service"
    cp "$top/debian/nbdkit-plugin-gfpool.gfpool-nbd@.socket" "$tmp/units/gfpool-nbd@.socket"
    cp "$dropin" "$tmp/units/gfpool-nbd@.service.d/"
    SYSTEMD_UNIT_PATH=$tmp/units: systemd-analyze verify --man=no gfpool-nbd@example.service > "$tmp/out" 2>&1
    r=$?
    ok $r "systemd-analyze verify: unit + drop-in"
    [ $r = 0 ] || show "$tmp/out"
fi

echo "1..$n"
[ $fails -eq 0 ]
