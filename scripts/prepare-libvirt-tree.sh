#!/bin/bash
# Fetch the Debian source of the *installed* libvirt and configure it with meson
# so that its two generated headers (meson-config.h, libvirt-common.h) exist.
# The module includes libvirt's internal headers; they must describe exactly
# the libvirtd that will dlopen() us (see docs/building.md).
#
# Prints the source tree's path on stdout. Idempotent: reuses a tree that is
# already fetched and configured for the same version.
#
#   GFPOOL_CACHE_DIR   where trees are kept (default /var/cache/gfpool)
set -euo pipefail

cache=${GFPOOL_CACHE_DIR:-/var/cache/gfpool}
version=$(dpkg-query -W -f='${Version}' libvirt-daemon 2>/dev/null) || {
    echo "prepare-libvirt-tree: libvirt-daemon is not installed" >&2; exit 1; }
upstream=${version#*:}
upstream=${upstream%%-*}
dir="$cache/libvirt-$version"
src="$dir/libvirt-$upstream"
build="$src/build-gfpool"
stamp="$build/.gfpool-configured"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version" ]; then
    echo "$src"
    exit 0
fi

mkdir -p "$dir"
if [ ! -f "$src/meson.build" ]; then
    rm -rf "$src"
    ( cd "$dir" && apt-get source -qq "libvirt=$version" >&2 )
fi
# dpkg-source records the exact version in debian/changelog; the module build
# compares it with the installed package (meson.build).
head -1 "$src/debian/changelog" | grep -qF "($version)" || {
    echo "prepare-libvirt-tree: $src is not libvirt $version" >&2; exit 1; }

rm -rf "$build"
# Options as debian/rules sets them where they matter to a storage backend's
# headers and paths; everything else off so setup needs few -dev packages.
meson setup "$build" "$src" \
    -Dauto_features=disabled \
    -Ddriver_remote=enabled -Ddriver_libvirtd=enabled \
    -Dstorage_gluster=enabled -Dglusterfs=enabled \
    -Dstorage_fs=enabled -Dstorage_dir=enabled \
    -Dnls=enabled -Ddocs=disabled -Dtests=disabled \
    -Dprefix=/usr -Dlibdir=lib/x86_64-linux-gnu -Dsysconfdir=/etc \
    -Dlocalstatedir=/var -Drunstatedir=/run \
    -Dpackager=Debian -Dpackager_version="$version" >&2
test -f "$build/meson-config.h"
test -f "$build/include/libvirt/libvirt-common.h"
echo "$version" > "$stamp"
echo "$src"
