#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Usage: check-libvirt-tree.sh SRC
# Succeeds (printing the version) only when SRC is a configured libvirt source
# tree of exactly the installed libvirt. A module built against other headers
# would be dlopen()ed by libvirtd anyway (there is no version handshake) and
# read its structs with the wrong layout; see docs/building.md.
src=$1
build=$src/build-gfpool
if [ ! -f "$src/meson.build" ] || [ ! -f "$src/src/storage/storage_backend.h" ]; then
    echo "'$src' is not a libvirt source tree (run scripts/prepare-libvirt-tree.sh)" >&2
    exit 1
fi
if [ ! -f "$build/meson-config.h" ] || [ ! -f "$build/include/libvirt/libvirt-common.h" ]; then
    echo "'$src' is not configured: $build/meson-config.h is missing (run scripts/prepare-libvirt-tree.sh)" >&2
    exit 1
fi
if command -v dpkg-query >/dev/null 2>&1 && installed=$(dpkg-query -W -f='${Version}' libvirt-daemon 2>/dev/null) && [ -n "$installed" ]; then
    tree=$(sed -n '1s/.*(\(.*\)).*/\1/p' "$src/debian/changelog" 2>/dev/null)
    if [ "$tree" != "$installed" ]; then
        echo "libvirt source tree '$src' is version '${tree:-unknown}' but the installed libvirt-daemon is '$installed'; run scripts/prepare-libvirt-tree.sh" >&2
        exit 1
    fi
    echo "$installed"
    exit 0
fi
installed=$(pkg-config --modversion libvirt 2>/dev/null)
tree=$(sed -n "s/^ *version: '\([0-9.]*\)'.*/\1/p" "$src/meson.build" | head -1)
if [ -z "$installed" ] || [ "$tree" != "$installed" ]; then
    echo "libvirt source tree '$src' is version '${tree:-unknown}' but the installed libvirt is '${installed:-not found}'" >&2
    exit 1
fi
echo "$installed"
