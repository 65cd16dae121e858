#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Run a command inside a Debian root (scripts/release-root.sh), with this
# project tree visible at the same path, in a private mount namespace:
# /proc mounted, /sys and /dev bound from the host, a tmpfs on /run (so its
# glusterd and libvirtd sockets are its own), the host's resolv.conf for
# apt. Nothing is left mounted when the command ends.
#
#   in-root.sh ROOT COMMAND [ARG...]
#
# The environment passes through except PATH (the root's own) and the
# variables of the host's Python.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
root=${1:?usage: in-root.sh ROOT COMMAND [ARG...]}
shift
[ -f "$root/.gfpool-root" ] || { echo "in-root: $root is not a root made by release-root.sh" >&2; exit 1; }
[ $# -gt 0 ] || { echo "in-root: no command" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "in-root: must run as root (mount namespaces, chroot)" >&2; exit 1; }

cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
export GFPOOL_IN_ROOT=$root GFPOOL_TOP=$top
exec unshare -m --propagation private bash -c '
    set -e
    root=$GFPOOL_IN_ROOT top=$GFPOOL_TOP
    # a mount point of its own, so that a nested "unshare -m" (the test
    # bed'"'"'s libvirtd) can change the propagation of its "/"
    mount --bind "$root" "$root"
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs -o mode=755 tmpfs "$root/run"
    mkdir -p "$root$top"
    mount --bind "$top" "$root$top"
    unset PYTHONHOME PYTHONPATH VIRTUAL_ENV
    export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    exec chroot "$root" /usr/bin/env -C "$top" "$@"
' in-root "$@"
