#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A first refresh with nothing cached, of images with and without their
records (issue 25): what the header records save a host that has never
seen the pool.

    /usr/bin/python3 bench/refresh_records.py [--files N] [--reps R]

A private cluster (tests/testbed/), volume `rep3`, one directory of N
copies of one qcow2 (`qemu-img create -f qcow2 x 1G`, 192 KiB), one
private libvirtd with our module. Each run is what bench/run.py calls
"first refresh with nothing cached": pool-destroy, the probe cache file
deleted, then a timed `virsh pool-start`. R runs with the images as copied
(no records: every header is read), then `gfpool vol-record --format
qcow2` of all of them, R runs again. Prints the medians and the counts of
the refresh's debug line; writes bench/results/refresh-records-<release>-
<stamp>.json.
"""

import argparse
import concurrent.futures
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests'))
sys.path.insert(0, HERE)

import testbed  # noqa: E402
from testbed.gfapi_ctypes import Gfapi  # noqa: E402
from testbed.pools import define_pool, gfpool_cli, pool_opts, pool_xml  # noqa: E402
from benchlib import loadavg, log, source_rev  # noqa: E402

POOL = 'rr'
DIR = '/rr'


def counts(d):
    found = re.findall(r"refresh of '%s' on gluster volume '\w+': (\d+) volumes, (\d+) headers "
                       r"read, (\d+) from records" % DIR, d.log_since_start())
    return [int(x) for x in found[-1]] if found else None


def cold_starts(d, cache, reps):
    out = []
    for _ in range(reps):
        d.virsh('pool-destroy', POOL, check=False)
        if os.path.exists(cache):
            os.unlink(cache)
        t = time.perf_counter()
        d.virsh('pool-start', POOL, timeout=600)
        out.append(round(time.perf_counter() - t, 3))
        log('pool-start %.2f s, %s, load %s' % (out[-1], counts(d), loadavg()))
    return out


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--files', type=int, default=5000)
    ap.add_argument('--reps', type=int, default=3)
    args = ap.parse_args(argv)
    rev = os.environ.get('GFPOOL_REV') or source_rev()
    version = subprocess.run([testbed.GLUSTERD, '--version'],
                             capture_output=True, text=True).stdout.split()[1]
    cluster = testbed.Cluster()
    d = None
    results = {'release': testbed.RELEASE, 'glusterfs': version, 'files': args.files,
               'rev': rev}
    try:
        cluster.start()
        g = Gfapi('rep3', cluster.volume_hosts('rep3'))
        g.mkdir(DIR)
        tmp = os.path.join(testbed.work_root(), 'rr-seed.qcow2')
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', tmp, '1G'], check=True)
        with open(tmp, 'rb') as f:
            seed = f.read()
        os.unlink(tmp)
        names = ['img-%05d.qcow2' % i for i in range(args.files)]
        t = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda n: g.put('%s/%s' % (DIR, n), seed, parents=False), names))
        log('%d images in %.1f s' % (args.files, time.monotonic() - t))

        d = testbed.start_libvirtd(testbed.module_path())
        define_pool(d, d.workdir, pool_xml(POOL, cluster.addresses, directory=DIR))
        d.virsh('pool-start', POOL, timeout=600)
        uuid = d.virsh('pool-uuid', POOL).stdout.strip()
        cache = os.path.join(d.workdir, 'cache', 'libvirt', 'gfpool', uuid + '.probe')

        results['without records'] = cold_starts(d, cache, args.reps)
        results['without records counts'] = counts(d)
        t = time.monotonic()
        for i in range(0, len(names), 1000):
            gfpool_cli('vol-record', *(pool_opts(cluster, DIR) + ['--format', 'qcow2'] +
                                       names[i:i + 1000]), timeout=1200, check=0)
        log('recorded in %.1f s' % (time.monotonic() - t))
        results['with records'] = cold_starts(d, cache, args.reps)
        results['with records counts'] = counts(d)
    finally:
        if d is not None:
            testbed.cleanup_libvirtd(d)
        cluster.stop()

    stamp = time.strftime('%Y-%m-%d-%H%M%S')
    path = os.path.join(HERE, 'results', 'refresh-records-%s-%s.json' % (testbed.RELEASE, stamp))
    with open(path, 'w') as f:
        json.dump(results, f, indent=1)
    print('\n%s (GlusterFS %s), `rep3`, %d qcow2 images, first refresh with nothing cached '
          '(pool-start), median of %d; gfpool %s; load %s; %s.\n' % (
              testbed.RELEASE, version, args.files, args.reps, rev, loadavg(),
              os.path.relpath(path, REPO)))
    print('| images | pool-start | volumes, headers read, from records |')
    print('|---|---|---|')
    for k in ('without records', 'with records'):
        print('| %s | %.2f s | %s |' % (k, statistics.median(results[k]),
                                        results[k + ' counts']))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
