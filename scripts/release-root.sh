#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build (once) a Debian root of release CODENAME with everything
# scripts/install-deps.sh installs for that release, and print its path.
# This is how a Debian 12 machine tests the Debian 13 stack and back:
# scripts/in-root.sh runs the project inside it.
#
#   release-root.sh CODENAME          everything gfpool's build and tests need
#   release-root.sh CODENAME user     a user's hypervisor before gfpool: what
#                                     install-deps.sh --runtime installs,
#                                     Debian's gluster modules (which gfpool
#                                     diverts), virsh and man-db; no build or
#                                     test package (the package test installs
#                                     gfpool's .debs into a copy of it)
#
# Roots are cached in $GFPOOL_CACHE_DIR/roots/CODENAME-KEY (default
# /var/cache/gfpool), KEY a hash of the package list and the mirror: a
# changed list builds a new root and removes the old one. mmdebstrap takes
# about a minute here. The root is made complete before it is renamed into
# place, so an interrupted build is never reused.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
rel=${1:?usage: release-root.sh CODENAME [user]}
flavor=${2:-}
cache=${GFPOOL_CACHE_DIR:-/var/cache/gfpool}/roots

case $flavor in
    '') pkgs=$("$top/scripts/install-deps.sh" --list "$rel" | sort -u | paste -sd, -)
        name=$rel ;;
    user) pkgs=$({ "$top/scripts/install-deps.sh" --runtime --list "$rel"
                   printf '%s\n' libvirt-daemon-driver-storage-gluster libvirt-clients man-db
                 } | sort -u | paste -sd, -)
          name=user-$rel ;;
    *) echo "release-root: unknown flavor '$flavor'" >&2; exit 2 ;;
esac
# The same Debian mirror the machine uses for its own packages.
mirror=${GFPOOL_MIRROR:-$(
    sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)[[:space:]]*$/\1/p' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)}
[ -n "$mirror" ] || mirror=$(
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\/.*\/debian\/?$/) { print $i; exit } }' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -1)
[ -n "$mirror" ] || { echo "release-root: no Debian mirror found in /etc/apt (set GFPOOL_MIRROR)" >&2; exit 1; }

key=$(printf '%s\n%s\n%s\n' "$rel" "$pkgs" "$mirror" | sha256sum | cut -c1-12)
root=$cache/$name-$key
if [ -f "$root/.gfpool-root" ]; then
    echo "$root"
    exit 0
fi

command -v mmdebstrap >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >&2 ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >&2; }
}
mkdir -p "$cache"
tmp=$cache/.$name-$key.building
rm -rf "$tmp"
echo "release-root: building a Debian $rel root in $root (mmdebstrap, about a minute)" >&2
# --variant=apt: a minimal root with apt; recommends off, like install-deps.
mmdebstrap --quiet --variant=apt --include="$pkgs" "$rel" "$tmp" "$mirror" >&2
# The package list it was built from, for the record.
tr , '\n' <<<"$pkgs" > "$tmp/.gfpool-root"
for old in "$cache/$name"-*; do
    [ -d "$old" ] && [ "$old" != "$root" ] && rm -rf "$old"
done
mv "$tmp" "$root"
echo "$root"
