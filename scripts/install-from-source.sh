#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Install gfpool from this tree without packages, as root, where the
# packages would put it: build with Debian's paths (prefix /usr, libdir
# lib/<multiarch>, what debhelper gives meson) against the installed
# libvirt, divert Debian's two gluster modules (dpkg-divert --local
# --rename: they stay as *.so.distrib), `meson install`, the NBD service's
# systemd units, tmpfiles.d entry and AppArmor rule from debian/ (into
# /etc, an administrator's place), then restart the libvirt daemons that
# run. --uninstall undoes all of it and gives Debian's modules back.
#
#   install-from-source.sh              build into build-install/ and install
#   install-from-source.sh --uninstall  remove what it installed
#   GFPOOL_INSTALL_BUILD_DIR            the build directory (default
#                                       build-install/; --uninstall reads
#                                       its install log)
#
# Needs what install-deps.sh --build installs. The packages are the
# supported way (docs/building.md): apt then holds libvirt and gfpool
# together; after a libvirt upgrade a hand install must be run again.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${GFPOOL_INSTALL_BUILD_DIR:-$top/build-install}
[ "$(id -u)" = 0 ] || { echo "install-from-source: must run as root" >&2; exit 1; }

multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
moddir=/usr/lib/$multiarch/libvirt
modules="storage-backend/libvirt_storage_backend_gluster.so storage-file/libvirt_storage_file_gluster.so"
units="gfpool-nbd@.service gfpool-nbd@.socket"
tmpfiles=/etc/tmpfiles.d/gfpool-nbd.conf
apparmor=/etc/apparmor.d/abstractions/libvirt-qemu.d/gfpool-nbd

# Modules are never unloaded: a running daemon keeps the old ones.
restart_running() {
    local unit
    [ -d /run/systemd/system ] || return 0
    systemctl daemon-reload
    for unit in libvirtd.service virtstoraged.service virtqemud.service; do
        if systemctl --quiet is-active "$unit" 2>/dev/null; then
            systemctl restart "$unit" || true
        fi
    done
}

if [ "${1:-}" = --uninstall ]; then
    [ -f "$build/meson-logs/install-log.txt" ] ||
        { echo "install-from-source: no install log in $build" >&2; exit 1; }
    ninja -C "$build" uninstall >&2
    for u in $units; do rm -f "/etc/systemd/system/$u"; done
    rm -f "$tmpfiles" "$apparmor"
    for f in $modules; do
        dpkg-divert --local --remove --rename --quiet --divert "$moddir/$f.distrib" "$moddir/$f"
    done
    restart_running
    exit 0
fi
[ $# = 0 ] || { echo "usage: install-from-source.sh [--uninstall]" >&2; exit 2; }

# The packages divert the same files under their own name: one or the other.
for p in libvirt-daemon-driver-storage-gfpool gfpool nbdkit-plugin-gfpool; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
        echo "install-from-source: package $p is installed; remove gfpool's packages first" >&2
        exit 1
    fi
done

libvirt_src=$("$top/scripts/prepare-libvirt-tree.sh")
# The compiler and linker flags of a Debian package build.
eval "$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --export=sh)"
opts=(--prefix=/usr --libdir="lib/$multiarch" --sysconfdir=/etc --localstatedir=/var
      --buildtype=plain -Dmodule=enabled -Dnbdkit=enabled -Dfuzzing=false
      -Dlibvirt_src="$libvirt_src")
if [ -f "$build/build.ninja" ]; then
    meson configure "$build" "${opts[@]}" >&2
else
    meson setup "$build" "$top" "${opts[@]}" >&2
fi
ninja -C "$build" >&2

for f in $modules; do
    dpkg-divert --local --add --rename --quiet --divert "$moddir/$f.distrib" "$moddir/$f"
done
meson install -C "$build" --no-rebuild >&2
for u in $units; do
    install -m 0644 "$top/debian/nbdkit-plugin-gfpool.$u" "/etc/systemd/system/$u"
done
install -D -m 0644 "$top/debian/nbdkit-plugin-gfpool.tmpfiles" "$tmpfiles"
install -D -m 0644 "$top/debian/apparmor/gfpool-nbd" "$apparmor"
if command -v systemd-tmpfiles >/dev/null; then
    systemd-tmpfiles --create "$tmpfiles"
else
    install -d -m 0755 /run/gfpool-nbd && install -d -m 0700 /run/gfpool-nbd/grants
fi
restart_running
