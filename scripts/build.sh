#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build gfpool into ./build (or $GFPOOL_BUILD_DIR) against the libvirt source
# tree that matches the installed libvirt. Idempotent.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${GFPOOL_BUILD_DIR:-$top/build}

libvirt_src=$("$top/scripts/prepare-libvirt-tree.sh")
werror=false
[ "${CI:-}" = true ] && werror=true

if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$top" -Dlibvirt_src="$libvirt_src" -Dwerror=$werror >&2
else
    meson configure "$build" -Dlibvirt_src="$libvirt_src" -Dwerror=$werror >&2
fi
ninja -C "$build" >&2
