#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# What NBD itself adds to one request, and so how close NBD can come to
# QEMU's gluster driver when requests go one at a time (the guest's
# `dd bs=1M iflag=direct` of bench/guest_io.py).
#
#   bench/nbd_overhead.sh        (as root, after scripts/build.sh;
#                                 GFPOOL_BUILD_DIR for another build,
#                                 NBDO_REPS=N rounds, default 5)
#
# `qemu-img bench`, 1 request in flight, each round in turn:
#   local    a 256 MiB file on tmpfs, QEMU's file driver (tmpfs has no
#            O_DIRECT; its page cache is the file);
#   nbdfile  the same file served by nbdkit's own `file` plugin on a unix
#            socket: NBD's cost with no gluster in it (nbdkit's threads,
#            the request and reply through the socket: two more copies
#            of the data);
#   gluster  a 512 MiB volume on the test bed's replica 3, gluster://,
#            cache none;
#   nbd      the same volume through nbdkit-gfpool-plugin cache=none.
# 4 KiB requests show the fixed cost per request, 1 MiB ones the cost per
# byte as well. qemu-img bench times the requests only (gluster://'s
# glfs_fini is not counted).
#
# Prints the median time per request of each, NBD's overhead (nbdfile -
# local), the ratio gluster/nbd measured, and the ceiling the overhead
# leaves: gluster / (gluster + overhead).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${GFPOOL_BUILD_DIR:-$top/build}
cli=$build/src/tools/gfpool
plugin=$build/src/nbdkit/nbdkit-gfpool-plugin.so
reps=${NBDO_REPS:-5}
work=$(mktemp -d /tmp/gfnbdo.XXXXXX)
shm=$(mktemp -d /dev/shm/gfnbdo.XXXXXX)
cleanup() {
    pkill -f "nbdkit -U $work/" 2>/dev/null || true
    /usr/bin/python3 "$top/tests/testbed" cluster-down "$work/cluster" >/dev/null 2>&1 || true
    rm -rf "$work" "$shm"
}
trap cleanup EXIT

/usr/bin/python3 "$top/tests/testbed" cluster-up "$work/cluster" > "$work/cluster.json"
host=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["addresses"][0])' \
       "$work/cluster.json")
head -c $((256 << 20)) /dev/urandom > "$shm/local.img"
head -c $((512 << 20)) /dev/urandom > "$work/data"
"$cli" pool-build -H "$host" -V rep3 -d /nbdo >/dev/null
"$cli" vol-create-as -H "$host" -V rep3 -d /nbdo bench.img 512M >/dev/null
printf "<pool type='gluster'><name>nbdo</name><source><host name='%s'/><name>rep3</name><dir path='/nbdo'/></source></pool>\n" \
    "$host" > "$work/pool.xml"
nbdkit -U "$work/gfpool.sock" "$plugin" pool-xml="$work/pool.xml" cache=none
nbdkit -U "$work/file.sock" file "$shm/local.img"
qemu-img convert -n -f raw -O raw "$work/data" "nbd+unix:///bench.img?socket=$work/gfpool.sock"
rm "$work/data"

declare -A uri=(
    [local]="$shm/local.img"
    [nbdfile]="nbd+unix:///?socket=$work/file.sock"
    [gluster]="gluster://$host/rep3/nbdo/bench.img"
    [nbd]="nbd+unix:///bench.img?socket=$work/gfpool.sock"
)
# milliseconds per request
per_request() {    # SIZE COUNT RW NAME
    local flag=(); [ "$3" = write ] && flag=(-w)
    # tmpfs has no O_DIRECT: the local file goes through the page cache,
    # which on tmpfs is the file itself
    case $4 in gluster|nbd) flag+=(-t none) ;; esac
    qemu-img bench -f raw -d 1 -s "$1" -c "$2" "${flag[@]}" "${uri[$4]}" 2>&1 |
        sed -n 's/.*completed in \([0-9.]*\) seconds.*/\1/p' |
        awk -v c="$2" '{ printf "%.4f\n", $1 * 1000 / c }'
}
for _ in $(seq "$reps"); do
    for rw in read write; do
        for name in local nbdfile; do
            echo "4K $rw $name $(per_request 4K 8192 $rw $name)"
        done
        for name in local nbdfile gluster nbd; do
            echo "1M $rw $name $(per_request 1M 256 $rw $name)"
        done
    done
done > "$work/samples"
sed 's/^/sample /' "$work/samples"

/usr/bin/python3 - "$work/samples" "$top/bench" "$reps" <<'EOF'
import os, platform, statistics, sys, time
sys.path.insert(0, sys.argv[2])
from benchlib import source_rev
print('nbd_overhead: %s, gfpool %s, %s, %d CPUs, median of %s, ms per request' % (
    time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), source_rev(),
    platform.freedesktop_os_release()['PRETTY_NAME'], os.cpu_count(), sys.argv[3]))
s = {}
for line in open(sys.argv[1]):
    size, rw, name, ms = line.split()
    s.setdefault((size, rw, name), []).append(float(ms))
m = {k: statistics.median(v) for k, v in s.items()}
for size in ('4K', '1M'):
    for rw in ('read', 'write'):
        loc, nf = m[(size, rw, 'local')], m[(size, rw, 'nbdfile')]
        line = '%-2s %-5s local %.3f  nbdfile %.3f  overhead %.3f' % (size, rw, loc, nf, nf - loc)
        if (size, rw, 'gluster') in m:
            g, n = m[(size, rw, 'gluster')], m[(size, rw, 'nbd')]
            line += ('  | gluster %.3f  nbd %.3f  gluster/nbd %.2f  ceiling %.2f'
                     % (g, n, g / n, g / (g + nf - loc)))
        print(line)
EOF
