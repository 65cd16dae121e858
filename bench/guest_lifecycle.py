#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A guest's lifecycle on local files vs on gluster, with Debian's
storage-file module vs ours (libvirt_storage_file_gluster.so): start,
destroy, a disk-only snapshot, its blockcommit, and a live migration.

Run as root with Debian's python, after scripts/build.sh:

    /usr/bin/python3 bench/guest_lifecycle.py [--reps 3] [--no-docs]

One private GlusterFS cluster and, per storage-file module (Debian's,
ours), two private libvirtds with the QEMU driver and our pool module as
two hosts (own hostname, host UUID, /etc/hosts: tests/integration/
test_migrate.py) sharing one pool. A TCG guest boots a boot sector
(tests/testbed/bootsector.py) from a raw image or a qcow2 chain of 1 or 3 overlays over
it, on local files (a temp dir, run by the daemons with our module) or in
volumes of the pool (`gfpool disk-xml`).

- start / destroy: `virsh start` until it returns; `virsh destroy`.
- snapshot: `snapshot-create --disk-only --no-metadata` of the running
  guest on the 1-overlay chain, the new overlay a new volume (a new local
  file); then `blockcommit --active --shallow --pivot --wait` back.
- migrate: `virsh migrate --live` of the guest on the 3-overlay chain to
  the other host and back, each timed (local files: `--unsafe`, the same
  files being visible to both "hosts").
- NBD: start and destroy of the same guests with their disks served by
  nbdkit-gfpool-plugin (`gfpool disk-xml --nbd`): QEMU without gfapi.

Medians of --reps runs. Results go to bench/results/guest-lifecycle-
<stamp>.json and, unless --no-docs, the table in bench/README.md between
this release's markers.
"""

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests'))

import testbed  # noqa: E402
from testbed import bootsector, guests  # noqa: E402
from testbed.pools import pool_xml  # noqa: E402
from benchlib import log, source_rev, teardown  # noqa: E402

BUILD = testbed.BUILD
CLI = os.path.join(BUILD, 'src', 'tools', 'gfpool')
MODULE = os.path.join(BUILD, 'src', 'guard', 'libvirt_storage_backend_gluster.so')
FILE_MODULE = os.path.join(BUILD, 'src', 'guard', 'libvirt_storage_file_gluster.so')
README = os.path.join(HERE, 'README.md')
BEGIN = '<!-- BEGIN GUEST LIFECYCLE %s (written by bench/guest_lifecycle.py) -->' % testbed.RELEASE
END = '<!-- END GUEST LIFECYCLE %s -->' % testbed.RELEASE
MESSAGE = 'GFPOOL-LIFECYCLE-BENCH'
DISKS = (('raw', 0), ('qcow2, 1 backing layer', 1), ('qcow2, 3 backing layers', 3))
SNAPSHOT_LAYERS = 1
MIGRATE_LAYERS = 3
LOCAL = 'local files'
DEBIAN = 'gluster, Debian\'s module'
OURS = 'gluster, gfpool\'s module'
NBD = 'NBD, nbdkit-gfpool-plugin'
PLUGIN = os.path.join(BUILD, 'src', 'nbdkit', 'nbdkit-gfpool-plugin.so')
HOSTNAMES = ('bench-a', 'bench-b')


def timed(fn, *args, **kw):
    t0 = time.monotonic()
    fn(*args, **kw)
    return time.monotonic() - t0


class Where:
    """Disks of one kind (local files or the pool) for the guests of one
    pair of daemons: make the chains, name a snapshot's overlay."""

    def __init__(self, label, work, daemons, pool=None, pool_xml_path=None, nbd=None):
        self.label = label
        self.nbd = nbd      # the plugin's socket: disks through NBD
        self.work = work
        os.makedirs(work, exist_ok=True)
        self.a, self.b = daemons
        self.pool = pool
        self.pool_xml_path = pool_xml_path
        self.dir = os.path.join(work, 'local') if pool is None else None
        self.n = 0

    def chain(self, layers):
        """A fresh chain of `layers` overlays over the boot image -> <disk>."""
        self.n += 1
        # the NBD guests use the same pool as gfpool's module's
        names = ['%s%d-base.raw' % ('n' if self.nbd else 'c', self.n)]
        img = bootsector.write_image(os.path.join(self.work, 'boot.img'), MESSAGE,
                                     ticks=True)
        if self.pool is None:
            os.makedirs(self.dir, exist_ok=True)
            subprocess.run(['cp', img, os.path.join(self.dir, names[0])], check=True)
        else:
            self.a.virsh('vol-create-as', self.pool, names[0], '1M', '--format', 'raw')
            self.a.virsh('vol-upload', '--pool', self.pool, names[0], img)
        for i in range(1, layers + 1):
            names.append('%s%d-l%d.qcow2' % ('n' if self.nbd else 'c', self.n, i))
            fmt = 'raw' if i == 1 else 'qcow2'
            if self.pool is None:
                subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', fmt,
                                '-b', names[-2], names[-1]], cwd=self.dir, check=True)
            else:
                self.a.virsh('vol-create-as', self.pool, names[-1], '1M', '--format',
                             'qcow2', '--backing-vol', names[-2],
                             '--backing-vol-format', fmt)
        if self.pool is None:
            return ("<disk type='file' device='disk'><driver name='qemu' type='%s'/>"
                    "<source file='%s'/><target dev='vda' bus='virtio'/></disk>" %
                    ('raw' if layers == 0 else 'qcow2', os.path.join(self.dir, names[-1])))
        return subprocess.run([CLI, 'disk-xml', '--pool-xml', self.pool_xml_path, names[-1]] +
                              (['--nbd', self.nbd] if self.nbd else []),
                              stdout=subprocess.PIPE, universal_newlines=True,
                              check=True).stdout

    def snapshot_xml(self, hosts):
        self.n += 1
        if self.pool is None:
            src = "type='file'><driver type='qcow2'/><source file='%s'/>" % \
                os.path.join(self.dir, 'snap%d.qcow2' % self.n)
        else:
            src = ("type='network'><driver type='qcow2'/><source protocol='gluster' "
                   "name='rep3/%s/snap%d.qcow2'>%s</source>" % (
                       self.pool, self.n, ''.join(
                           "<host name='%s' port='24007' transport='tcp'/>" % h
                           for h in hosts)))
        path = os.path.join(self.work, 'snap%d.xml' % self.n)
        with open(path, 'w') as f:
            f.write("<domainsnapshot><disks><disk name='vda' snapshot='external' %s"
                    "</disk></disks></domainsnapshot>" % src)
        return path


class Guest:
    def __init__(self, d, where, disk):
        where.n += 1
        self.d = d
        self.name = 'g%d%s' % (where.n, 'l' if where.pool is None else where.pool)
        self.serial = os.path.join(where.work, self.name + '.serial')
        self.xml = os.path.join(where.work, self.name + '.xml')
        with open(self.xml, 'w') as f:
            f.write(guests.domain_xml(self.name, disk, self.serial, serial_append=True))

    def start(self):
        t = timed(self.d.virsh, 'create', self.xml, timeout=300)
        ok, _ = guests.wait_serial(self.serial, MESSAGE, timeout=120)
        if not ok:
            raise SystemExit('%s did not boot' % self.name)
        return t

    def destroy(self):
        return timed(self.d.virsh, 'destroy', self.name, timeout=300)

    def migrate(self, dst, unsafe):
        """-> (seconds until virsh migrate returned, seconds until the
        guest ran on the destination).  The difference is the source's
        end: libvirt waits for the source QEMU to exit, and QEMU's gluster
        driver waits there for glfs_fini as at a destroy."""
        args = ['migrate', '--live'] + (['--unsafe'] if unsafe else []) + [self.name, dst.uri]
        running = []
        t0 = time.monotonic()
        p = subprocess.Popen(['virsh', '-q', '-c', self.d.uri] + args,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True)
        while p.poll() is None:
            if not running and dst.virsh('domstate', self.name, check=False) \
                    .stdout.strip() == 'running':
                running.append(time.monotonic() - t0)
            time.sleep(0.05)
        total = time.monotonic() - t0
        if p.returncode != 0:
            raise SystemExit('migrate %s: %s' % (self.name, p.stderr.read()))
        self.d = dst
        if dst.virsh('domstate', self.name).stdout.strip() != 'running':
            raise SystemExit('%s not running after its migration' % self.name)
        return total, running[0] if running else total


def warm_up(where):
    """A first guest on each daemon: libvirt probes QEMU's capabilities
    (seconds) at its first start or incoming migration, not to be
    counted in any cell."""
    local = Where('warm-up', os.path.join(where.work, 'warm'), (where.a, where.b))
    disk = local.chain(0)
    for d in (where.a, where.b):
        g = Guest(d, local, disk)
        g.start()
        g.destroy()


def measure_where(where, hosts, reps):
    out = {}
    warm_up(where)

    def add(key, value):
        out.setdefault(key, []).append(value)

    for disk_label, layers in DISKS:
        for _ in range(reps):
            g = Guest(where.a, where, where.chain(layers))
            add('%s, start' % disk_label, g.start())
            add('%s, destroy' % disk_label, g.destroy())
    if where.nbd:
        # the guest's disk is QEMU's NBD client: what is measured is that
        # its start and destroy no longer pay gfapi
        return summarize(where, out)
    for _ in range(reps):
        g = Guest(where.a, where, where.chain(SNAPSHOT_LAYERS))
        g.start()
        try:
            add('snapshot-create --disk-only', timed(
                where.a.virsh, 'snapshot-create', g.name, where.snapshot_xml(hosts),
                '--disk-only', '--no-metadata', timeout=300))
            add('blockcommit --active --pivot', timed(
                where.a.virsh, 'blockcommit', g.name, 'vda', '--active', '--shallow',
                '--pivot', '--wait', timeout=300))
        finally:
            g.d.virsh('destroy', g.name, check=False, timeout=300)
    for _ in range(reps):
        g = Guest(where.a, where, where.chain(MIGRATE_LAYERS))
        g.start()
        try:
            for way, dst in (('there', where.b), ('back', where.a)):
                total, running = g.migrate(dst, where.pool is None)
                add('migrate --live (3 backing layers), %s' % way, total)
                add('migrate --live (3 backing layers), %s: running on the destination'
                    % way, running)
        finally:
            g.d.virsh('destroy', g.name, check=False, timeout=300)
    return summarize(where, out)


def summarize(where, out):
    log('%s: %s' % (where.label, {k: ['%.2f' % x for x in v] for k, v in out.items()}))
    return [{'operation': k, 'where': where.label, 'median_s': statistics.median(v), 'runs': v}
            for k, v in out.items()]


def start_hosts(work, tag, file_module):
    """Two daemons as two hosts: hostnames, host UUIDs, /etc/hosts."""
    net = '127.%d.%d' % (random.randint(1, 254), random.randint(1, 254))
    hosts_file = os.path.join(work, 'hosts-' + tag)
    with open(hosts_file, 'w') as f:
        f.write('127.0.0.1 localhost\n' + ''.join(
            '%s.%d %s\n' % (net, 10 + i, h) for i, h in enumerate(HOSTNAMES)))
    port = random.randrange(49300, 49900, 20)
    daemons = []
    for i, h in enumerate(HOSTNAMES):
        d = testbed.Libvirtd(os.path.join(work, '%s%d' % (tag, i)), with_qemu=True,
                             module=MODULE, file_module=file_module, hostname=h,
                             host_uuid=str(uuid.uuid4()), hosts_file=hosts_file,
                             qemu_conf_extra='migration_port_min = %d\nmigration_port_max = %d\n'
                             % (port + 10 * i, port + 10 * i + 9))
        daemons.append(d)
        d.start()
    return daemons


def measure(args):
    work = tempfile.mkdtemp(prefix='gfpool-lifecycle-', dir='/tmp')
    cluster = testbed.Cluster(os.path.join(work, 'cluster'))
    daemons = []
    results = []
    try:
        cluster.start()
        hosts = [h for h, _ in cluster.volume_hosts('rep3')]
        for tag, label, file_module in (('deb', DEBIAN, None), ('ours', OURS, FILE_MODULE)):
            pair = start_hosts(work, tag, file_module)
            daemons += pair
            pool = 'lc' + tag
            xml = os.path.join(work, pool + '.xml')
            with open(xml, 'w') as f:
                f.write(pool_xml(pool, hosts, directory='/' + pool))
            subprocess.run([CLI, 'pool-build', '--pool-xml', xml], check=True)
            for d in pair:
                d.virsh('pool-create', xml)
            results += measure_where(Where(label, os.path.join(work, tag), pair, pool, xml),
                                     hosts, args.reps)
            if tag == 'ours':
                results += measure_where(Where(LOCAL, os.path.join(work, 'local'), pair),
                                         hosts, args.reps)
                if os.path.exists(PLUGIN):
                    sock = os.path.join(work, 'nbd.sock')
                    nbdkit = subprocess.Popen(['nbdkit', '-f', '-U', sock, PLUGIN,
                                               'pool-xml=' + xml])
                    try:
                        for _ in range(200):
                            if os.path.exists(sock):
                                break
                            time.sleep(0.05)
                        results += measure_where(Where(NBD, os.path.join(work, 'nbd'), pair,
                                                       pool, xml, nbd=sock), hosts, args.reps)
                    finally:
                        nbdkit.terminate()
                        nbdkit.wait(30)
    finally:
        teardown(work, daemons, cluster)
    return results


def make_table(results):
    by = {(r['operation'], r['where']): r['median_s'] for r in results}
    ops = list(dict.fromkeys(r['operation'] for r in results))
    lines = ['| operation | %s | %s | %s | ours / local | %s | NBD / local |'
             % (LOCAL, DEBIAN, OURS, NBD),
             '|---|---|---|---|---|---|---|']

    def cell(v):
        return '%.2f s' % v if v is not None else '—'

    def ratio(v, loc):
        return '%.2f' % (v / loc) if v is not None and loc else '—'
    for op in ops:
        loc, deb, ours, nbd = (by.get((op, w)) for w in (LOCAL, DEBIAN, OURS, NBD))
        lines.append('| %s | %s | %s | %s | %s | %s | %s |' % (
            op, cell(loc), cell(deb), cell(ours), ratio(ours, loc), cell(nbd),
            ratio(nbd, loc)))
    return '\n'.join(lines)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--no-docs', action='store_true')
    args = ap.parse_args(argv)
    os.makedirs(os.path.join(HERE, 'results'), exist_ok=True)
    results = measure(args)
    stamp = time.strftime('%Y-%m-%d-%H%M%S')
    js = os.path.join(HERE, 'results', 'guest-lifecycle-%s-%s.json' % (testbed.RELEASE, stamp))
    with open(js, 'w') as f:
        json.dump({'release': testbed.RELEASE, 'source': source_rev(), 'reps': args.reps,
                   'results': results}, f, indent=1)
    table = make_table(results)
    print(table)
    if not args.no_docs:
        with open(README) as f:
            text = f.read()
        block = '%s\n%s (%s, %s, medians of %d; results/%s)\n\n%s\n%s' % (
            BEGIN, testbed.RELEASE, stamp, source_rev(), args.reps, os.path.basename(js),
            table, END)
        if BEGIN in text:
            text = re.sub(re.escape(BEGIN) + '.*?' + re.escape(END), lambda m: block, text,
                          flags=re.S)
        else:
            text += '\n%s\n' % block
        with open(README, 'w') as f:
            f.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
