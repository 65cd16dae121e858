#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A pool past libvirt's cap of 16,384 volumes per listing: what still
works, what fails and with which message, and what the listing costs as
the pool grows (docs/operations.md, "Large pools").

    /usr/bin/python3 bench/large_pool.py [--files N] [--steps K]

A private cluster (tests/testbed/), volume `rep3`, one directory filled
with N empty files in K equal steps. After each step: `gfpool vol-list`,
`gfpool vol-list --details` and a private libvirtd's pool-refresh, timed
(a linear listing doubles its time when the pool doubles). After the last:
virsh vol-list, numOfVolumes, vol-info / vol-dumpxml / vol-path of one
volume by name, and the NBD plugin's export list (nbdinfo --list) and one
export opened by name. Prints what each said.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests'))
sys.path.insert(0, HERE)

import testbed  # noqa: E402
from testbed.gfapi_ctypes import Gfapi  # noqa: E402
from testbed.pools import GFPOOL_CLI, pool_opts, pool_xml  # noqa: E402
from benchlib import log, teardown, timed, virsh_cmd  # noqa: E402

DIR = '/large'
PLUGIN = os.path.join(testbed.BUILD, 'src', 'nbdkit',
                      'nbdkit-gfpool-plugin.so')


def first_line(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[0] if lines else ''


def populate(g, start, stop):
    def put(i):
        g.put_sparse('%s/img-%05d' % (DIR, i), 0, parents=False)
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(put, range(start, stop)))


def cli(cluster, verb, *args):
    return timed([GFPOOL_CLI, verb] + pool_opts(cluster, DIR) + list(args),
                 timeout=1200)


def listings(cluster, d, n):
    t, rc, out, err = cli(cluster, 'vol-list')
    rows = len(out.splitlines()) - 2
    assert rc == 0 and rows == n, (rc, rows, err)
    td, rc, out, err = cli(cluster, 'vol-list', '--details')
    assert rc == 0, err
    tr, rc, _, err = timed(virsh_cmd(d, 'pool-refresh', 'large'),
                           timeout=1200)
    assert rc == 0, err
    log('%6d volumes: gfpool vol-list %.2f s, vol-list --details %.2f s, '
        'libvirtd pool-refresh %.2f s' % (n, t, td, tr))


def beyond_the_cap(cluster, d, work, n):
    name = 'img-%05d' % (n // 2)
    t, rc, out, err = timed(virsh_cmd(d, 'vol-list', 'large'), timeout=600)
    log('virsh vol-list: rc=%d in %.2f s: %s' % (rc, t, first_line(err or out)))
    conn = d.conn()
    pool = conn.storagePoolLookupByName('large')
    log('numOfVolumes: %d' % pool.numOfVolumes())
    for call in ('listAllVolumes', 'listVolumes'):
        try:
            log('%s: %d names' % (call, len(getattr(pool, call)())))
        except Exception as e:
            log('%s: %s' % (call, e))
    for verb in ('vol-info', 'vol-dumpxml', 'vol-path'):
        t, rc, out, err = timed(virsh_cmd(d, verb, '--pool', 'large', name))
        log('virsh %s %s: rc=%d in %.2f s: %s' % (verb, name, rc, t,
                                                 first_line(err or out)))
    t, rc, out, err = timed(virsh_cmd(d, 'pool-info', 'large'))
    log('virsh pool-info: rc=%d' % rc)
    if not os.path.exists(PLUGIN):
        log('no NBD plugin built: %s' % PLUGIN)
        return
    # the plugin serves only volumes with a format record
    cli(cluster, 'vol-record', '--format', 'raw', name)
    xml = os.path.join(work, 'large.xml')
    sock = os.path.join(work, 'nbd.sock')
    nbd = subprocess.Popen(['nbdkit', '-f', '-U', sock, PLUGIN,
                            'pool-xml=' + xml],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           universal_newlines=True)
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        t, rc, out, err = timed(['nbdinfo', '--list',
                                 'nbd+unix://?socket=' + sock], timeout=600)
        log('nbdinfo --list: rc=%d in %.2f s: %s' % (
            rc, t, first_line(err) if rc else '%d exports' % out.count(
                'export="')))
        t, rc, out, err = timed(['nbdinfo', '--size',
                                 'nbd+unix:///%s?socket=%s' % (name, sock)])
        log('nbdinfo --size %s: rc=%d in %.2f s: %s' % (
            name, rc, t, first_line(err or out)))
    finally:
        nbd.terminate()
        _, stderr = nbd.communicate(timeout=30)
        for line in stderr.splitlines():
            if 'export' in line:
                log('nbdkit: %s' % line)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--files', type=int, default=17000)
    ap.add_argument('--steps', type=int, default=2)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit('run as root (glusterd)')
    work = tempfile.mkdtemp(prefix='gfplarge', dir='/tmp')
    cluster = testbed.Cluster()
    daemons = []
    try:
        cluster.start()
        g = Gfapi('rep3', cluster.volume_hosts('rep3'))
        g.mkdir(DIR)
        hosts = [h for h, _ in cluster.volume_hosts('rep3')]
        with open(os.path.join(work, 'large.xml'), 'w') as f:
            f.write(pool_xml('large', hosts, directory=DIR))
        d = testbed.start_libvirtd(testbed.module_path())
        daemons.append(d)
        d.virsh('pool-create', os.path.join(work, 'large.xml'))
        done = 0
        for k in range(1, args.steps + 1):
            upto = args.files * k // args.steps
            t = time.monotonic()
            populate(g, done, upto)
            log('%d files more in %.1f s' % (upto - done,
                                             time.monotonic() - t))
            done = upto
            listings(cluster, d, done)
        beyond_the_cap(cluster, d, work, done)
    finally:
        for d in daemons:
            testbed.cleanup_libvirtd(d)
        teardown(work, (), cluster)


if __name__ == '__main__':
    main(sys.argv[1:])
