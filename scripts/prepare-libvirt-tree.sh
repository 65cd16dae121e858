#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
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

# What dpkg-source -x does with a "3.0 (quilt)" package, for when apt got
# the tarballs but not the .dsc (some mirrors and proxies serve pool
# tarballs only; seen here for Debian 13's libvirt). Each file is checked
# against the SHA256 that the archive's signed Sources index gives.
unpack_by_hand() {
    local f sum orig= deb=
    while read -r sum f; do
        case $f in
            *.asc|*.dsc) continue ;;
            *.orig.tar.*) orig=$f ;;
            *.debian.tar.*) deb=$f ;;
            *) continue ;;
        esac
        echo "$sum  $dir/$f" | sha256sum -c --quiet >&2 || {
            echo "prepare-libvirt-tree: $f is missing or does not match the archive's SHA256" >&2; return 1; }
    done < <(apt-cache showsrc libvirt | awk -v v="$version" '
        /^Package:/ { ours = 0 } /^Version:/ { ours = ($2 == v) }
        /^[^ ]/ { sums = ($1 == "Checksums-Sha256:") }
        ours && sums && /^ / { print $1, $3 }')
    [ -n "$orig" ] && [ -n "$deb" ] || { echo "prepare-libvirt-tree: no tarballs for libvirt $version" >&2; return 1; }
    echo "prepare-libvirt-tree: no .dsc from the mirror; unpacking $orig and $deb by hand" >&2
    tar -C "$dir" -xf "$dir/$orig"
    tar -C "$src" -xf "$dir/$deb"
    if [ -f "$src/debian/patches/series" ]; then
        local p
        while read -r p _; do
            case $p in ''|\#*) continue ;; esac
            patch -d "$src" -p1 -s --no-backup-if-mismatch < "$src/debian/patches/$p"
        done < "$src/debian/patches/series"
    fi
}

mkdir -p "$dir"
if [ ! -f "$src/meson.build" ]; then
    rm -rf "$src"
    if ! ( cd "$dir" && apt-get source -qq "libvirt=$version" >&2 ); then
        rm -rf "$src"
        unpack_by_hand || exit 1
    fi
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
