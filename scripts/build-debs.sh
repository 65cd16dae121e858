#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build gfpool's Debian packages for this machine's release, as root, after
# scripts/install-deps.sh: dpkg-buildpackage -us -uc -b in a copy of the
# tree (the checkout stays clean), against the libvirt source tree of the
# installed libvirt (scripts/prepare-libvirt-tree.sh; debian/README.source),
# then lintian. The .deb files go to OUTDIR (default ./debs-CODENAME).
#
#   build-debs.sh [OUTDIR]
#   DEB_BUILD_OPTIONS=nocheck build-debs.sh   skip meson test in the build
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
rel=$(. /etc/os-release && echo "$VERSION_CODENAME")
out=$(realpath -m "${1:-$top/debs-$rel}")

libvirt_src=$("$top/scripts/prepare-libvirt-tree.sh")
work=$(mktemp -d /tmp/gfpool-debs.XXXXXX)
trap 'rm -rf "$work"' EXIT
# The files of the tree, without builds and results: what a source
# package holds.
mkdir "$work/gfpool"
tar -C "$top" --exclude='./build*' --exclude='./debs-*' --exclude='./.git' \
    --exclude='__pycache__' --exclude='./bench/results' -cf - . | tar -C "$work/gfpool" -xf -
(cd "$work/gfpool" && GFPOOL_LIBVIRT_SRC=$libvirt_src dpkg-buildpackage -us -uc -b >&2)
mkdir -p "$out"
rm -f "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo
cp "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo "$out"/
# No errors; the warnings that stay are explained in debian/README.source.
lintian --fail-on error --info \
    "$out"/*.changes >&2
ls "$out"/*.deb
