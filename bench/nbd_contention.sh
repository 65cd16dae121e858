#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# NBD (nbdkit-gfpool-plugin) against QEMU's gluster driver without a guest:
# `qemu-img bench` of 512 requests of 1 MiB, 4 in flight (NBDC_DEPTH=N for
# N; 1 is what the guest's dd sends), cache none, on a 512 MiB volume of
# each test-bed volume, reads then writes, first on an idle machine, then
# with one CPU kept busy by a shell loop (a TCG guest's vCPU does that
# while it boots, not while it reads: docs/guest-io.md). qemu-img bench
# times the requests only, so gluster://'s glfs_fini is not counted.
#
#   bench/nbd_contention.sh        (as root, after scripts/build.sh;
#                                   GFPOOL_BUILD_DIR for another build)
#
# Prints one line per case: seconds through nbd+unix://, through
# gluster://, and gluster's time over NBD's (1.00 = NBD as fast).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${GFPOOL_BUILD_DIR:-$top/build}
cli=$build/src/tools/gfpool
plugin=$build/src/nbdkit/nbdkit-gfpool-plugin.so
work=$(mktemp -d /tmp/gfnbdc.XXXXXX)
hog=
cleanup() {
    [ -n "$hog" ] && kill "$hog" 2>/dev/null || true
    pkill -f "nbdkit -U $work/" 2>/dev/null || true
    /usr/bin/python3 "$top/tests/testbed" cluster-down "$work/cluster" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

/usr/bin/python3 "$top/tests/testbed" cluster-up "$work/cluster" > "$work/cluster.json"
host=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["addresses"][0])' \
       "$work/cluster.json")
head -c $((512 << 20)) /dev/urandom > "$work/data"
for v in single rep3; do
    "$cli" pool-build -H "$host" -V $v -d /nbdc >/dev/null
    "$cli" vol-create-as -H "$host" -V $v -d /nbdc bench.img 512M >/dev/null
    printf "<pool type='gluster'><name>nbdc-%s</name><source><host name='%s'/><name>%s</name><dir path='/nbdc'/></source></pool>\n" \
        $v "$host" $v > "$work/$v.xml"
    nbdkit -U "$work/$v.sock" "$plugin" pool-xml="$work/$v.xml"
    qemu-img convert -n -f raw -O raw "$work/data" "nbd+unix:///bench.img?socket=$work/$v.sock"
done

seconds() {
    qemu-img bench -f raw -t none -n -c 512 -s 1M -d "${NBDC_DEPTH:-4}" "$@" 2>&1 |
        sed -n 's/.*completed in \([0-9.]*\) seconds.*/\1/p'
}
cases() {
    local v rw n g flag
    for v in single rep3; do
        for rw in read write; do
            flag=(); [ $rw = write ] && flag=(-w)
            n=$(seconds "${flag[@]}" "nbd+unix:///bench.img?socket=$work/$v.sock")
            g=$(seconds "${flag[@]}" "gluster://$host/$v/nbdc/bench.img")
            awk -v c="$1" -v v=$v -v rw=$rw -v n="$n" -v g="$g" 'BEGIN {
                printf "%-5s %-6s %-5s nbd %6.3f s  gluster %6.3f s  gluster/nbd %.2f\n",
                       c, v, rw, n, g, g / n }'
        done
    done
}
cases idle
sh -c 'while :; do :; done' &
hog=$!
cases busy
