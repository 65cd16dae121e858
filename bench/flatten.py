#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Flattening a fragmented qcow2 overlay into raw (`gfpool vol-clone
--format raw`): cost against the number of extents.

    /usr/bin/python3 bench/flatten.py [--cli NAME=PATH ...] [--reps N]

The overlay (4 GiB qcow2, 64 KiB clusters) has N data extents alternating
with N extents left to its backing file, itself a 4 GiB qcow2 with one
cluster written in every 512 MiB (so mapping it reads all eight L2 tables).
Both live in one directory of the `single` volume of a private cluster
(tests/testbed/); each `--cli` (default: this build's gfpool) clones the
overlay for N = 250, 500, 1000, medians of --reps runs of the whole CLI
process. Linear cost shows as a constant time per extent. Give an older
build as a second --cli to see the two side by side in one run. Prints a
Markdown table (paste it into bench/README.md).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests'))

import testbed  # noqa: E402
from testbed.gfapi_ctypes import Gfapi  # noqa: E402
from testbed.pools import pool_opts  # noqa: E402
from benchlib import loadavg, log, source_rev  # noqa: E402

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
CLUSTER = 64 * KiB
SIZE = 4 * GiB


def qemu(*args):
    subprocess.run(list(args), check=True, stdout=subprocess.DEVNULL)


def make_images(tmp, n):
    """base.qcow2 and ov-N.qcow2 (backing file 'base.qcow2') as local files."""
    base = os.path.join(tmp, 'base.qcow2')
    if not os.path.exists(base):
        qemu('qemu-img', 'create', '-q', '-f', 'qcow2', base, str(SIZE))
        qemu('qemu-io', '-f', 'qcow2',
             *sum((['-c', 'write -P 7 %d %d' % (i * 512 * MiB, CLUSTER)]
                   for i in range(SIZE // (512 * MiB))), []), base)
    ov = os.path.join(tmp, 'ov-%d.qcow2' % n)
    qemu('qemu-img', 'create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F',
         'qcow2', ov, str(SIZE))
    # N written clusters two clusters apart: N data extents, N gaps
    step = 2 * CLUSTER
    cmds = []
    for i in range(n):
        cmds += ['-c', 'write -P 9 %d %d' % (i * step, CLUSTER)]
    qemu('qemu-io', '-f', 'qcow2', *cmds, ov)
    return base, ov


def put_file(g, local, path):
    with open(local, 'rb') as f:
        g.put(path, f.read())


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--cli', action='append', default=[],
                    help='NAME=PATH of a gfpool binary (repeatable)')
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--extents', default='250,500,1000')
    args = ap.parse_args(argv)
    clis = [c.split('=', 1) for c in args.cli] or [
        ['this build', os.path.join(testbed.BUILD, 'src', 'tools', 'gfpool')]]
    counts = [int(x) for x in args.extents.split(',')]
    if os.geteuid() != 0:
        raise SystemExit('run as root (glusterd)')

    tmp = tempfile.mkdtemp(prefix='gfflat', dir='/tmp')
    cluster = testbed.Cluster()
    results = {}
    try:
        cluster.start()
        hosts = cluster.volume_hosts('single')
        g = Gfapi('single', hosts)
        g.mkdir('/flat')
        opts = pool_opts(cluster, '/flat', 'single')
        base, _ = make_images(tmp, counts[0])
        put_file(g, base, '/flat/base.qcow2')
        for n in counts:
            _, ov = make_images(tmp, n)
            put_file(g, ov, '/flat/ov-%d.qcow2' % n)
        log('images in place; load %s' % (loadavg(),))
        for n in counts:
            for name, cli in clis:
                samples = []
                for r in range(args.reps):
                    out = 'flat-%d-%d.img' % (n, r)
                    t = time.monotonic()
                    p = subprocess.run([cli, 'vol-clone', *opts, 'ov-%d.qcow2' % n,
                                        out, '--format', 'raw'],
                                       capture_output=True, text=True)
                    samples.append(time.monotonic() - t)
                    if p.returncode != 0:
                        raise SystemExit('%s: %s' % (name, p.stderr))
                    subprocess.run([cli, 'vol-delete', *opts, out],
                                   capture_output=True)
                results[(name, n)] = statistics.median(samples)
                log('%-12s N=%-5d %.3f s %s' % (name, n, results[(name, n)],
                                                 ['%.3f' % s for s in samples]))
    finally:
        cluster.stop()
        subprocess.run(['rm', '-rf', tmp])

    print('\nFlatten (vol-clone --format raw) of a 4 GiB qcow2 overlay with N '
          'data extents alternating with N backing extents, over a 4 GiB '
          'qcow2 backing file; `single` volume; median of %d whole CLI runs; '
          'gfpool %s; load %s.\n' % (args.reps, source_rev(), loadavg()))
    print('| build | ' + ' | '.join('N = %d' % n for n in counts) +
          ' | per extent at N = %d |' % counts[-1])
    print('|---|' + '---|' * (len(counts) + 1))
    for name, _ in clis:
        cells = ['%.2f s' % results[(name, n)] for n in counts]
        per = results[(name, counts[-1])] / counts[-1] * 1000
        print('| %s | %s | %.2f ms |' % (name, ' | '.join(cells), per))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
