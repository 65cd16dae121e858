#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs inside a fresh user root (scripts/release-root.sh CODENAME user,
# copied; entered with scripts/in-root.sh): installs gfpool's packages as a
# user would, checks them, purges the module package and checks Debian's
# modules are back. The root holds what a hypervisor runs and nothing of
# the build or test stack, and installing the .debs adds none of it. TAP on
# stdout.
#
#   check-install.sh DEBDIR POOLXML
#   DEBDIR   gfpool's .deb files (inside the root)
#   POOLXML  a gluster pool's XML on the test cluster (inside the root)
set -u
debs=$1 poolxml=$2
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
n=0 fails=0
ok() {
    n=$((n + 1))
    if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi
}
diag() { sed 's/^/# /'; }

moddir=$(ls -d /usr/lib/*/libvirt/storage-backend | head -1)
moddir=${moddir%/storage-backend}
files="storage-backend/libvirt_storage_backend_gluster.so storage-file/libvirt_storage_file_gluster.so"
module_pkg=libvirt-daemon-driver-storage-gfpool
uri=storage:///system?socket=/run/libvirt/libvirt-sock
install_deps=$(cd "$(dirname "$0")/../.." && pwd)/scripts/install-deps.sh
rel=$(. /etc/os-release && echo "$VERSION_CODENAME")
installed() { dpkg-query -W -f='${Status} ${Package}\n' | sed -n 's/^install ok installed //p' | sort; }
# What only the build and the tests need: the -dev packages, compilers and
# build tools, test tools and servers of the test list (the rest of it,
# python3, psmisc, libvirt-daemon..., a hypervisor may well have: gfpool's
# and libvirt's dependencies pull them in).
dev_stack=$(comm -23 <("$install_deps" --test --list "$rel") <("$install_deps" --runtime --list "$rel") |
            grep -E -e '-dev$' -e '^(gcc|clang|meson|ninja-build|debhelper|dpkg-dev|lintian|fakeroot|build-essential)$' \
                    -e '^(mmdebstrap|python3-pytest|python3-libvirt|virtinst|glusterfs-server|gdb|libnbd-bin)$')

work=$(mktemp -d)
apt-get update -qq >/dev/null 2>&1
ok $? "apt-get update"

# The hypervisor before gfpool (release-root.sh's list: install-deps.sh
# --runtime, Debian's gluster modules, virsh, man-db).
installed > "$work/installed.before"
have=$(comm -12 <(echo "$dev_stack") "$work/installed.before")
[ -z "$have" ]; ok $? "the root has no build or test package"
[ -z "$have" ] || echo "$have" | diag
missing=$(comm -23 <("$install_deps" --runtime --list "$rel") "$work/installed.before")
[ -z "$missing" ]; ok $? "the root has what install-deps.sh --runtime installs"
[ -z "$missing" ] || echo "$missing" | diag

# Debian's modules as Debian's package has them, and ours as our package has them
(cd "$work" && apt-get download -qq libvirt-daemon-driver-storage-gluster >/dev/null 2>&1 &&
 dpkg-deb -x libvirt-daemon-driver-storage-gluster_*.deb debian &&
 dpkg-deb -x "$debs"/${module_pkg}_*.deb ours)
ok $? "Debian's libvirt-daemon-driver-storage-gluster downloaded, ours unpacked"
sha() { sha256sum < "$1" | cut -d' ' -f1; }
declare -A debian_sha ours_sha
for f in $files; do
    debian_sha[$f]=$(sha "$work/debian$moddir/$f")
    ours_sha[$f]=$(sha "$work/ours$moddir/$f")
    [ "$(sha "$moddir/$f")" = "${debian_sha[$f]}" ]
    ok $? "before: $f is Debian's"
done

# libvirt's hook dir as it is before gfpool, to compare after its removal
hooks_listing() { find /etc/libvirt/hooks -printf '%p %M %u\n' 2>/dev/null | sort; }
hooks_listing > "$work/hooks.before"

# -- an upgrade from a package that shipped libvirt's qemu hook ---------------
# nbdkit-plugin-gfpool 0.1.0 installed the conffile
# /etc/libvirt/hooks/qemu.d/gfpool-nbd, which execs gfpool; this stands in for
# it (the same conffile, nothing else)
hook=/etc/libvirt/hooks/qemu.d/gfpool-nbd
old=$work/old-nbdkit-plugin-gfpool
mkdir -p "$old/DEBIAN" "$old$(dirname $hook)"
printf '#!/bin/sh\nexec /usr/bin/gfpool nbd-hook "$@"\n' > "$old$hook"
chmod 0755 "$old$hook"
echo "$hook" > "$old/DEBIAN/conffiles"
cat > "$old/DEBIAN/control" <<EOF_CONTROL
Package: nbdkit-plugin-gfpool
Version: 0.1.0
Architecture: $(dpkg --print-architecture)
Maintainer: gfpool developers <gfpool@lists.gfpool.org>
Description: the 0.1.0 package's qemu hook, for the upgrade test
EOF_CONTROL
dpkg-deb -b "$old" "$work/old.deb" >/dev/null 2>&1 && dpkg -i "$work/old.deb" >/dev/null 2>&1 && [ -x $hook ]
ok $? "an old nbdkit-plugin-gfpool with libvirt's qemu hook installed"

# -- install ---------------------------------------------------------------
# As docs/building.md says: the three packages (not the -dbgsym ones), the
# rest from the archive.
(cd "$debs" && apt-get install -y -qq ./libvirt-daemon-driver-storage-gfpool_*.deb \
    ./gfpool_*.deb ./nbdkit-plugin-gfpool_*.deb) > "$work/install.log" 2>&1
rc=$?; ok $rc "apt-get install ./libvirt-daemon-driver-storage-gfpool_*.deb ./gfpool_*.deb ./nbdkit-plugin-gfpool_*.deb"
[ $rc = 0 ] || diag < "$work/install.log"
installed > "$work/installed.after"
added=$(comm -13 "$work/installed.before" "$work/installed.after")
echo "apt added: $(echo $added)" | diag
bad=$(comm -12 <(echo "$dev_stack") <(echo "$added"))
[ -z "$bad" ]; ok $? "installing the .debs added no build or test package"
[ -z "$bad" ] || echo "$bad" | diag
"$install_deps" --runtime > "$work/runtime.log" 2>&1 && ! grep -q installing "$work/runtime.log"
rc=$?; ok $rc "install-deps.sh --runtime finds nothing missing"
[ $rc = 0 ] || diag < "$work/runtime.log"
[ ! -e $hook ] && ! ls /etc/libvirt/hooks/qemu.d/gfpool-nbd* >/dev/null 2>&1
ok $? "the upgrade removed the qemu hook (no hook of ours, no backup)"
gfpool nbd-hook vm1 prepare begin - < /dev/null && gfpool nbd-hook -x release end - < /dev/null
ok $? "gfpool nbd-hook, what a hook left behind would run, does nothing and succeeds"
[ "$(stat -c '%a %U' /run/gfpool-nbd/grants 2>/dev/null)" = "700 root" ]
ok $? "/run/gfpool-nbd/grants is root's, 0700 (tmpfiles.d)"
grep -qx '/run/gfpool-nbd/\*.sock rw,' /etc/apparmor.d/abstractions/libvirt-qemu.d/gfpool-nbd
ok $? "AppArmor: guests' QEMU may connect to the NBD sockets (abstractions/libvirt-qemu.d)"
for f in $files; do
    [ "$(dpkg-divert --listpackage "$moddir/$f")" = $module_pkg ]
    ok $? "$f diverted by $module_pkg"
    [ "$(dpkg-divert --truename "$moddir/$f")" = "$moddir/$f.distrib" ] &&
        [ "$(sha "$moddir/$f.distrib")" = "${debian_sha[$f]}" ]
    ok $? "Debian's $f kept as $f.distrib, unchanged"
    [ "$(sha "$moddir/$f")" = "${ours_sha[$f]}" ]
    ok $? "$f is gfpool's"
done
gfpool --help > "$work/help" 2>&1 && grep -q vol-create-as "$work/help"
ok $? "gfpool --help"
man -P cat gfpool 2>/dev/null | grep -q 'EXIT STATUS'
ok $? "man gfpool"
nbdkit gfpool --dump-plugin 2>&1 | grep -qx 'name=gfpool'
ok $? "nbdkit gfpool finds the plugin by its short name"
man -P cat nbdkit-gfpool-plugin 2>/dev/null | grep -q 'pool-xml=FILE'
ok $? "man nbdkit-gfpool-plugin"
for u in gfpool-nbd@.socket gfpool-nbd@.service; do
    f=$(dpkg -L nbdkit-plugin-gfpool | grep "/systemd/system/$u\$")
    [ -n "$f" ] && [ -f "$f" ]
    ok $? "nbdkit-plugin-gfpool ships $u"
done

# -- a libvirtd with the release's default module directories --------------
start_libvirtd() {
    pid=
    rm -f /run/gfpool-check.pid
    mkdir -p /var/log/libvirt
    env -u LIBVIRT_STORAGE_BACKEND_DIR -u LIBVIRT_STORAGE_FILE_DIR -u LIBVIRT_DRIVER_DIR \
        libvirtd -d --pid-file /run/gfpool-check.pid
    for _ in $(seq 100); do
        [ -S /run/libvirt/libvirt-sock ] && virsh -q -c "$uri" pool-list --all >/dev/null 2>&1 &&
            { pid=$(cat /run/gfpool-check.pid); return 0; }
        sleep 0.1
    done
    return 1
}
stop_libvirtd() {
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
}
start_libvirtd; ok $? "libvirtd starts"
[ -n "$pid" ] && grep -q " $moddir/storage-backend/libvirt_storage_backend_gluster.so$" /proc/$pid/maps &&
    grep -q "/gfpool/gfpool_storage_backend.so$" /proc/$pid/maps
ok $? "libvirtd maps gfpool's pool module (the guard, and the module it loaded)"
virsh -q -c "$uri" pool-create "$poolxml" > "$work/virsh" 2>&1 &&
    pool=$(sed -n 's/.*<name>\(.*\)<\/name>.*/\1/p' "$poolxml" | head -1) &&
    virsh -q -c "$uri" vol-create-as "$pool" pkg.qcow2 10M --format qcow2 >> "$work/virsh" 2>&1 &&
    virsh -q -c "$uri" vol-dumpxml --pool "$pool" pkg.qcow2 2>>"$work/virsh" | grep -q "<format type='qcow2'/>" &&
    virsh -q -c "$uri" vol-delete --pool "$pool" pkg.qcow2 >> "$work/virsh" 2>&1 &&
    virsh -q -c "$uri" pool-destroy "$pool" >> "$work/virsh" 2>&1
rc=$?; ok $rc "a gluster pool starts and a qcow2 volume is created"
[ $rc = 0 ] || diag < "$work/virsh"
stop_libvirtd

# -- purge: Debian's modules come back ----------------------------------------
apt-get purge -y -qq $module_pkg > "$work/purge.log" 2>&1
rc=$?; ok $rc "apt-get purge $module_pkg"
[ $rc = 0 ] || diag < "$work/purge.log"
! dpkg-divert --list | grep -q $module_pkg
ok $? "no diversion left"
for f in $files; do
    [ "$(sha "$moddir/$f")" = "${debian_sha[$f]}" ] && [ ! -e "$moddir/$f.distrib" ]
    ok $? "after purge: $f is Debian's again (sha256 equal to Debian's package)"
done
start_libvirtd; ok $? "libvirtd starts after the purge"
[ -n "$pid" ] && grep -q " $moddir/storage-backend/libvirt_storage_backend_gluster.so$" /proc/$pid/maps &&
    ! grep -q "/gfpool/" /proc/$pid/maps
ok $? "libvirtd maps Debian's pool module again"
stop_libvirtd

# -- remove without purge: nothing of ours can stop a guest from starting -----
apt-get remove -y -qq nbdkit-plugin-gfpool gfpool > "$work/remove.log" 2>&1
rc=$?; ok $rc "apt-get remove nbdkit-plugin-gfpool gfpool (no purge)"
[ $rc = 0 ] || diag < "$work/remove.log"
hooks_listing > "$work/hooks.after"
cmp -s "$work/hooks.before" "$work/hooks.after"
rc=$?; ok $rc "no hook of ours remains: libvirt's hook dir is as it was before gfpool"
[ $rc = 0 ] || diff "$work/hooks.before" "$work/hooks.after" | diag
rm -rf "$work"
echo "1..$n"
[ $fails = 0 ]
