#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""gfpool at scale: pools of 5,000 to 50,000 images (issue 25).

Run as root with Debian's python (python3-libvirt lives there):

    /usr/bin/python3 bench/scale.py [--sizes 5000,16000,20000,50000]
        [--volumes rep3] [--reps 3] [--skip-debian] [--skip-netfs]
    /usr/bin/python3 bench/scale.py --report bench/results/scale-<...>.json

One run starts ONE private GlusterFS cluster (tests/testbed/) and grows ONE
directory per volume, /scale, to each size in turn (files are added, never
rebuilt), so the largest size is written once per volume. The mix: of every
ten images, eight sparse raw (10 GiB apparent, nothing allocated), one qcow2
(`qemu-img create -f qcow2 -o cluster_size=64k x 10G`) and one qcow2 overlay
of that one (backing file named in the header, a base in the pool); only
their non-zero blocks are written, through gfapi (testbed.gfapi_ctypes), by
several processes at once. Every image is then recorded with our verb,
`gfpool vol-record --format raw|qcow2 NAME...`, a few thousand names a call.

At each size, per volume (ours: our module in a private libvirtd):
  refresh-cold        first refresh on a host that never saw the pool:
                      pool-destroy, delete the probe cache file, pool-start;
                      at the first size also before the images carry their
                      records (refresh-cold-norecord: the same files, not
                      yet recorded)
  refresh-restart     pool-start of the pool right after a libvirtd restart,
                      cache file kept; libvirtd's VmRSS is read before that
                      start and after one more pool-refresh (rss)
  refresh-warm        pool-refresh, nothing changed
  refresh-changed     pool-refresh after 8 zero bytes were written over
                      zeros in 1 % of the images (their mtime changes)
  vol-list            virsh vol-list (libvirt's remote protocol caps one
                      listing at 16,384 volumes: above, the error is kept);
                      vol-list-details (virsh vol-list --details) up to it
  create-qcow2        vol-create-as NAME 10G --format qcow2 in the full
                      directory, vol-delete of each; the same once per
                      volume in an empty directory (n = 0)
  cli-vol-list        gfpool vol-list --pool-xml (no daemon, no cache)
  nbd-list            NBD_OPT_LIST against nbdkit-gfpool-plugin (the
                      plugin's list_exports; tests/testbed/nbd_client.py),
                      and nbd-list-info: nbdinfo --list --json once, which
                      also asks for every export's size (an open each),
                      at the first size only
  probe-cache         the size of the probe cache file
  readdirplus         the floor under a refresh: build/bench/gfapi-seq list,
                      a bare glfs_readdirplus_r of the directory in C
and, against the same directory, Debian's module (a pool-start, its first
refresh, and a pool-refresh; it keeps no cache) and a netfs pool mounting
it with FUSE (pool-start, i.e. mount and first refresh, and a pool-refresh)
at the sizes of --other-sizes (default: the largest) on the volumes of
--other-volumes (default: rep3), one sample each. libvirt's own cost is a
`dir` pool of as many local files, the same mix, in a fourth private libvirtd:
its refresh and its VmRSS before pool-start and after a refresh.

Fast rows are medians of --reps samples; a row stops after its first
sample slower than --slow seconds (the table marks single samples).
Writes every sample to bench/results/scale-<release>-<stamp>.json as it
goes; prints a Markdown table, sizes as columns, and the slopes (seconds
per 1,000 images, least squares over the sizes) of the refreshes.
Cleans up cluster, daemons, nbdkit and FUSE mounts on exit or Ctrl-C.
"""

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests'))
sys.path.insert(0, HERE)

import testbed  # noqa: E402
from benchlib import (DEBIAN_MODULE, fmt_s, RELEASE_TITLE, VirshBench,  # noqa: E402
                      loadavg, log, machine_facts, run_guarded, sh,
                      snapshot_module, teardown, timed, vm_rss_kib)
from testbed.gfapi_ctypes import Gfapi  # noqa: E402
from testbed.pools import GFPOOL_CLI  # noqa: E402

DIR = '/scale'
EMPTY = '/scale-empty'
# libvirt's REMOTE_STORAGE_VOL_LIST_MAX: one listing over the wire at most
VOL_LIST_MAX = 16384
PLUGIN = os.path.join(testbed.BUILD, 'src', 'nbdkit',
                      'nbdkit-gfpool-plugin.so')
SEQ = os.path.join(testbed.BUILD, 'bench', 'gfapi-seq')
NBD_CLIENT = os.path.join(testbed.HERE, 'nbd_client.py')
RAW_SIZE = 10 << 30
# the backing name of the overlay template, replaced per image (same length)
BACKING_SLOT = b'img-000000.qcow2'
# where a change writes its zeros: past the header and its extensions in a
# qcow2 (checked against the template), inside every raw image
CHANGE_AT = 32768
CHANGE = b'\0' * 8
BACKENDS = ('ours', 'debian', 'netfs', 'dir')


def image_kind(i):
    return {0: 'qcow2', 5: 'overlay'}.get(i % 10, 'raw')


def image_name(i):
    return 'img-%06d.%s' % (i, 'raw' if image_kind(i) == 'raw' else 'qcow2')


def changed_images(n):
    """1 % of range(n), one in each hundred, cycling through the ten
    positions of the mix so that every kind changes."""
    return [b * 100 + (b % 10) * 10 + b % 10 for b in range(n // 100)]


def nonzero_extents(data, block=4096):
    out = []
    for off in range(0, len(data), block):
        blk = data[off:off + block]
        if not blk.strip(b'\0'):
            continue
        if out and out[-1][0] + len(out[-1][1]) == off:
            out[-1] = (out[-1][0], out[-1][1] + blk)
        else:
            out.append((off, blk))
    return out


def template_extents(path):
    """(size, non-zero extents) of a template image file."""
    with open(path, 'rb') as f:
        data = f.read()
    return len(data), nonzero_extents(data)


def image_extents(i, templates):
    """(size, extents) of qcow2 image i from templates' (size, extents) by
    kind: an overlay names its own base (the image five before it)."""
    kind = image_kind(i)
    size, ext = templates[kind]
    if kind == 'overlay':
        base = image_name(i - 5).encode()
        ext = [(off, blk.replace(BACKING_SLOT, base)) for off, blk in ext]
    return size, ext


def populate_worker(spec):
    """One process's share of the images (spec: volume, hosts, dir,
    indices, templates, threads), written with its own gfapi client."""
    g = Gfapi(spec['volume'], [tuple(h) for h in spec['hosts']])
    tpl = {kind: template_extents(path) for kind, path in spec['templates'].items()}

    def one(i):
        path = '%s/%s' % (spec['dir'], image_name(i))
        if image_kind(i) == 'raw':
            g.put_sparse(path, RAW_SIZE, parents=False)
            return
        size, ext = image_extents(i, tpl)
        g.put_sparse(path, size, parents=False, extents=ext)

    with concurrent.futures.ThreadPoolExecutor(spec['threads']) as ex:
        for _ in ex.map(one, spec['indices']):
            pass


def slope(points):
    """Least squares slope of [(n, seconds)] in seconds per 1,000."""
    if len(points) < 2:
        return None
    xs = [n / 1000.0 for n, _ in points]
    ys = [s for _, s in points]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    if den == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den


class Scale(VirshBench):
    def __init__(self, args):
        self.args = args
        self.stamp = time.strftime('%Y-%m-%d-%H%M%S')
        out = os.path.abspath(args.out)
        os.makedirs(out, exist_ok=True)
        super().__init__(os.path.join(out, 'scale-%s-%s.json' % (
            testbed.RELEASE, self.stamp)))
        self.sizes = sorted(int(x) for x in args.sizes.split(','))
        self.volumes = args.volumes.split(',')
        self.other_sizes = ([max(self.sizes)] if not args.other_sizes else
                            [int(x) for x in args.other_sizes.split(',')])
        self.other_volumes = args.other_volumes.split(',')
        self.backends = [b for b in BACKENDS
                         if not (b == 'debian' and args.skip_debian or
                                 b == 'netfs' and args.skip_netfs)]
        self.reps = args.reps
        self.slow = args.slow
        self.nbdkit = None
        self.filled = {}        # volume -> images in its /scale
        self.local_filled = 0   # files in the dir pool's local directory

    # -- bookkeeping ---------------------------------------------------------
    def phase(self, volume, n, what, t0, **extra):
        ent = dict(volume=volume, n=n, phase=what,
                   seconds=round(time.monotonic() - t0, 2), **extra)
        self.data.setdefault('phases', []).append(ent)
        self.save()
        log('phase %s %s n=%s: %.1f s %s' % (volume, what, n, ent['seconds'],
                                             extra or ''))

    def value(self, backend, volume, op, n, **fields):
        """A measured quantity that is not a time (bytes, KiB)."""
        ent = dict(backend=backend, volume=volume, op=op, n=n,
                   loadavg=loadavg(), **fields)
        self.data['samples'].append(ent)
        self.save()
        log('%-8s %-6s %-22s n=%-5s %s' % (backend, volume or '-', op, n,
                                            fields))
        return ent

    def timed_cmd(self, backend, volume, op, n, cmd, reps, check_out=None,
                  timeout=900):
        """Time a whole command (not virsh) `reps` times."""
        samples, errors = [], []
        for i in range(reps):
            dt, rc, out, err = timed(cmd, timeout=timeout)
            samples.append(dt)
            if rc != 0:
                errors.append((err or out).strip()[-2000:])
            elif check_out:
                msg = check_out(out)
                if msg:
                    errors.append(msg)
            if dt > self.slow:
                break
        return self.record(backend, volume, op, n, samples, errors)

    # -- setup -----------------------------------------------------------------
    def setup(self):
        self.work = tempfile.mkdtemp(prefix='gfscale', dir='/tmp')
        log('work dir %s' % self.work)
        for path in (self.args.module, GFPOOL_CLI, SEQ):
            if not os.path.exists(path):
                raise SystemExit('not built: %s (run scripts/build.sh)' % path)
        # snapshots: others may rebuild ./build during the run
        self.module_copy = snapshot_module(self.args.module, self.work)
        self.cli = os.path.join(self.work, 'gfpool')
        shutil.copy2(GFPOOL_CLI, self.cli)
        self.plugin = None
        if os.path.exists(PLUGIN):
            self.plugin = os.path.join(self.work, os.path.basename(PLUGIN))
            shutil.copy2(PLUGIN, self.plugin)
        self.seq = os.path.join(self.work, 'gfapi-seq')
        shutil.copy2(SEQ, self.seq)
        meta = machine_facts(self.module_copy)
        meta.update({'release': testbed.RELEASE, 'sizes': self.sizes,
                     'volumes': self.volumes, 'backends': self.backends,
                     'other_sizes': self.other_sizes,
                     'other_volumes': self.other_volumes,
                     'reps': self.reps, 'slow_s': self.slow,
                     'loadavg_start': loadavg(),
                     'gfpool_rev': os.environ.get('GFPOOL_REV')})
        self.data['meta'] = meta
        self.save()

        self.templates = {'qcow2': os.path.join(self.work, 'plain.qcow2'),
                          'overlay': os.path.join(self.work, 'overlay.qcow2')}
        for kind, extra in (('qcow2', []),
                            ('overlay', ['-u', '-b', BACKING_SLOT.decode(),
                                         '-F', 'qcow2'])):
            p = sh('qemu-img', 'create', '-q', '-f', 'qcow2', '-o',
                   'cluster_size=65536', *extra, self.templates[kind], '10G')
            if p.returncode != 0:
                raise SystemExit('qemu-img create: %s' % p.stderr)
            with open(self.templates[kind], 'rb') as f:
                data = f.read()
            if data[CHANGE_AT:CHANGE_AT + len(CHANGE)] != CHANGE:
                raise SystemExit('%s template: bytes at %d are not zero' %
                                 (kind, CHANGE_AT))
            self.data['meta']['%s_bytes' % kind] = len(data)
            self.data['meta']['%s_written' % kind] = sum(
                len(b) for _, b in nonzero_extents(data))

        t = time.monotonic()
        self.cluster = testbed.Cluster()
        self.cluster.start()
        self.addr = self.cluster.addresses[0]
        self.phase(None, None, 'cluster start', t,
                   addresses=self.cluster.addresses)
        for v in self.volumes:
            self.gf[v] = Gfapi(v, self.cluster.volume_hosts(v),
                               logfile=os.path.join(self.work,
                                                    'gfapi-%s.log' % v))
            self.gf[v].mkdir(DIR)
            self.gf[v].mkdir(EMPTY)
            self.filled[v] = 0

        t = time.monotonic()
        mods = {'ours': self.module_copy, 'debian': DEBIAN_MODULE,
                'netfs': DEBIAN_MODULE, 'dir': DEBIAN_MODULE}
        for b in self.backends:
            d = testbed.Libvirtd(os.path.join(self.work, b), module=mods[b],
                                 log_filters='3:*')
            self.daemons[b] = d
            d.start()
            if os.path.realpath(mods[b]) not in d.maps():
                raise SystemExit('%s daemon did not load %s' % (b, mods[b]))
        self.phase(None, None, 'daemons start', t)

        self.pool_xml = {}
        for v in self.volumes:
            self.pool_xml[v] = self.define_pool('ours', 'ours-%s' % v, v, DIR)
            self.define_pool('ours', 'ours-%s-empty' % v, v, EMPTY)
            for b in ('debian', 'netfs'):
                if b in self.backends and v in self.other_volumes:
                    self.define_pool(b, '%s-%s' % (b, v), v, DIR)
        self.local = os.path.join(self.work, 'local')
        os.makedirs(self.local)
        self.define_pool('dir', 'dir-local', local=self.local)

    # -- images ----------------------------------------------------------------
    def populate(self, v, n):
        start = self.filled[v]
        if n <= start:
            return
        t = time.monotonic()
        procs = max(1, self.args.populate_procs)
        order = list(range(start, n))
        workers = []
        for k in range(procs):
            spec = {'volume': v, 'hosts': self.cluster.volume_hosts(v),
                    'dir': DIR, 'indices': order[k::procs],
                    'templates': self.templates, 'threads': 4}
            path = os.path.join(self.work, 'populate-%s-%d.json' % (v, k))
            with open(path, 'w') as f:
                json.dump(spec, f)
            workers.append(subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), '--worker', path]))
        bad = [w.wait() for w in workers]
        if any(bad):
            raise testbed.TestbedError('populate workers failed: %s' % bad)
        got = len(self.gf[v].listdir(DIR))
        if got != n:
            raise testbed.TestbedError('%s:%s holds %d files, wanted %d' % (
                v, DIR, got, n))
        self.filled[v] = n
        dt = time.monotonic() - t
        self.phase(v, n, 'populate', t, images=n - start,
                   per_s=round((n - start) / dt, 1))

    def record_formats(self, v, start, n):
        """gfpool vol-record of the images start..n, a batch of names per
        call, a few calls at once; qcow2 bases before their overlays."""
        t = time.monotonic()
        opts = []
        for h, port in self.cluster.volume_hosts(v):
            opts += ['--host', '%s:%d' % (h, port)]
        opts += ['--volume', v, '--dir', DIR]
        batch = self.args.record_batch
        calls = []
        for kind, fmt in (('raw', 'raw'), ('qcow2', 'qcow2'),
                          ('overlay', 'qcow2')):
            names = [image_name(i) for i in range(start, n)
                     if image_kind(i) == kind]
            calls.append([[self.cli, 'vol-record'] + opts +
                          ['--format', fmt] + names[j:j + batch]
                          for j in range(0, len(names), batch)])

        def one(cmd):
            p = sh(*cmd, timeout=1800)
            if p.returncode != 0:
                raise testbed.TestbedError('vol-record rc=%d: %s' % (
                    p.returncode, p.stderr[-1000:]))
            return len(p.stdout.splitlines())
        done = 0
        with concurrent.futures.ThreadPoolExecutor(
                self.args.record_procs) as ex:
            for group in calls:
                done += sum(ex.map(one, group))
        if done != n - start:
            raise testbed.TestbedError('vol-record recorded %d of %d' % (
                done, n - start))
        dt = time.monotonic() - t
        self.phase(v, n, 'vol-record', t, images=n - start,
                   per_s=round((n - start) / dt, 1))

    def change_one_percent(self, v, n):
        g = self.gf[v]
        paths = ['%s/%s' % (DIR, image_name(i)) for i in changed_images(n)]
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            for _ in ex.map(lambda p: g.write_at(p, CHANGE_AT, CHANGE),
                            paths):
                pass

    def grow_local(self, n):
        """The same mix as the gluster pools (overlays name their local
        base), so that libvirt's own objects per volume (a backing store
        for each overlay) are counted alike on both sides."""
        if not hasattr(self, 'local_templates'):
            self.local_templates = {kind: template_extents(path)
                                    for kind, path in self.templates.items()}
        for i in range(self.local_filled, n):
            with open(os.path.join(self.local, image_name(i)), 'wb') as f:
                if image_kind(i) == 'raw':
                    f.truncate(RAW_SIZE)
                    continue
                size, ext = image_extents(i, self.local_templates)
                f.truncate(size)
                for off, blk in ext:
                    f.seek(off)
                    f.write(blk)
        self.local_filled = max(n, self.local_filled)

    # -- helpers ---------------------------------------------------------------
    def num_volumes(self, b, pool):
        return self.daemons[b].conn().storagePoolLookupByName(
            pool).numOfVolumes()

    def check_count(self, b, pool, n):
        got = self.num_volumes(b, pool)
        if got != n:
            self.note('%s %s: %d volumes, %d files' % (b, pool, got, n))

    def unlink_cache(self, pool):
        try:
            os.unlink(self.cache_file(pool))
        except FileNotFoundError:
            pass

    def rss_around(self, b, volume, n, pool, start_op, reps):
        """Restart daemon b (the pool inactive), read its VmRSS, time
        pool-start as start_op (one sample), then pool-refresh (reps),
        read VmRSS again."""
        self.destroy(b, pool)
        d = self.daemons[b]
        if b == 'dir':
            # libvirtd starts a dir pool whose directory exists by itself
            # when it starts (the fs backend's checkPool): hide it
            os.rename(self.local, self.local + '.aside')
        try:
            d.restart()
        finally:
            if b == 'dir':
                os.rename(self.local + '.aside', self.local)
        before = vm_rss_kib(d.pid)
        self.measure(b, volume, start_op, n, ['pool-start', pool], 1,
                     timeout=1800)
        self.measure(b, volume, 'refresh-warm', n, ['pool-refresh', pool],
                     reps, slow=self.slow, timeout=1800)
        after = vm_rss_kib(d.pid)
        return self.value(b, volume, 'rss', n, before_kib=before,
                          after_kib=after,
                          per_volume_bytes=round((after - before) * 1024.0 /
                                                 n, 1) if n else None)

    # -- measurements ----------------------------------------------------------
    def bench_empty(self, v):
        pool = 'ours-%s-empty' % v
        self.ensure_started('ours', pool)
        self.create_delete(v, pool, 0)
        self.destroy('ours', pool)

    def create_delete(self, v, pool, n):
        tag = '%d' % int(time.time() * 1000)
        names = ['new-%s-%d.qcow2' % (tag, i) for i in range(self.args.cd_reps)]
        self.measure('ours', v, 'create-qcow2', n,
                     lambda i: ['vol-create-as', pool, names[i], '10G',
                                '--format', 'qcow2'], len(names))
        self.measure('ours', v, 'vol-delete', n,
                     lambda i: ['vol-delete', '--pool', pool, names[i]],
                     len(names))
        left = [x for x in self.gf[v].listdir(DIR if n else EMPTY)
                if x.startswith('new-')]
        if left:
            self.note('%s: left after vol-delete: %s' % (pool, left[:5]))

    def bench_ours(self, v, n, first):
        pool = 'ours-%s' % v
        reps, slow = self.reps, self.slow

        def cold(i):
            self.destroy('ours', pool)
            self.unlink_cache(pool)

        start = self.filled[v]
        self.populate(v, n)
        if first and not self.args.no_norecord:
            t = time.monotonic()
            self.measure('ours', v, 'refresh-cold-norecord', n,
                         ['pool-start', pool], reps, before=cold, slow=slow,
                         timeout=1800)
            self.phase(v, n, 'first refresh without records', t)
        self.record_formats(v, start, n)

        t = time.monotonic()
        self.measure('ours', v, 'refresh-cold', n, ['pool-start', pool],
                     reps, before=cold, slow=slow, timeout=1800)
        self.phase(v, n, 'first refresh', t)
        self.check_count('ours', pool, n)

        t = time.monotonic()
        self.rss_around('ours', v, n, pool, 'refresh-restart', reps)

        def change(i):
            self.change_one_percent(v, n)
        self.measure('ours', v, 'refresh-changed', n, ['pool-refresh', pool],
                     reps, before=change, slow=slow, timeout=1800)
        self.phase(v, n, 'refreshes', t)

        t = time.monotonic()
        ent = self.measure('ours', v, 'vol-list', n, ['vol-list', pool],
                           reps, slow=slow, timeout=1800)
        if n > VOL_LIST_MAX:
            ent['expected_failure'] = True
            self.save()
        elif not ent.get('errors'):
            ent2 = self.measure('ours', v, 'vol-list-details', n,
                                ['vol-list', '--details', pool], reps,
                                slow=slow, timeout=1800)
            if ent2.get('errors'):
                self.note('vol-list --details at %d: %s' % (
                    n, ent2['errors'][0][:300]))
        self.phase(v, n, 'virsh vol-list', t)

        t = time.monotonic()
        self.create_delete(v, pool, n)
        self.phase(v, n, 'create/delete', t)

        cache = self.cache_file(pool)
        self.value('ours', v, 'probe-cache', n,
                   bytes=os.path.getsize(cache) if os.path.exists(cache)
                   else None)

        t = time.monotonic()

        def rows(out):
            got = len(out.splitlines()) - 2
            return None if got == n else 'listed %d of %d' % (got, n)
        self.timed_cmd('ours', v, 'cli-vol-list', n,
                       [self.cli, 'vol-list', '--pool-xml', self.pool_xml[v]],
                       reps, check_out=rows)
        self.phase(v, n, 'gfpool vol-list', t)

        t = time.monotonic()
        self.bench_nbd(v, n)
        self.phase(v, n, 'nbd list', t)

        hosts = ','.join('%s:%d' % hp for hp in self.cluster.volume_hosts(v))
        samples, errors = [], []
        for i in range(reps):
            p = sh(self.seq, 'list', hosts, v, DIR, timeout=600)
            if p.returncode != 0:
                errors.append(p.stderr.strip())
                break
            res = json.loads(p.stdout)
            samples.append(res['seconds'])
            if res['entries'] != n:
                errors.append('listed %d of %d' % (res['entries'], n))
        self.record('gfapi', v, 'readdirplus', n, samples, errors)
        self.destroy('ours', pool)

    def bench_nbd(self, v, n):
        if not self.plugin or not shutil.which('nbdkit'):
            self.note('nbdkit or the plugin missing: no nbd-list row')
            return
        sock = os.path.join(self.work, 'nbd-%s-%d.sock' % (v, n))
        logf = open(sock + '.log', 'w')
        self.nbdkit = subprocess.Popen(
            ['nbdkit', '-f', '-U', sock, self.plugin,
             'pool-xml=' + self.pool_xml[v]],
            stdout=logf, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while not os.path.exists(sock) and time.monotonic() < deadline:
                if self.nbdkit.poll() is not None:
                    break
                time.sleep(0.05)
            if not os.path.exists(sock):
                self.note('nbdkit did not start: see %s.log' % sock)
                return

            def exports(out):
                try:
                    got = len(json.loads(out).get('exports') or [])
                except ValueError:
                    return 'not JSON: %s' % out[:200]
                return None if got == n else 'listed %d of %d' % (got, n)
            ent = self.timed_cmd('ours', v, 'nbd-list', n,
                                 [sys.executable, NBD_CLIENT, sock, 'list'],
                                 self.reps, check_out=exports)
            if ent.get('errors'):
                # the client only hears "platform": nbdkit says why
                logf.flush()
                with open(sock + '.log') as f:
                    said = [l.strip() for l in f if l.strip()]
                if said:
                    ent['errors'].insert(0, said[-1])
                    self.save()
            if shutil.which('nbdinfo') and not self.args.skip_nbdinfo and \
                    n == self.sizes[0]:
                self.timed_cmd('ours', v, 'nbd-list-info', n,
                               ['nbdinfo', '--list', '--json',
                                'nbd+unix:///?socket=' + sock], 1,
                               check_out=exports, timeout=1800)
        finally:
            self.stop_nbdkit()
            logf.close()

    def stop_nbdkit(self):
        p, self.nbdkit = self.nbdkit, None
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def bench_dir(self, n):
        """libvirt's own cost: a dir pool of n local sparse files."""
        t = time.monotonic()
        self.grow_local(n)
        self.rss_around('dir', None, n, 'dir-local', 'refresh-cold',
                        self.reps)
        self.check_count('dir', 'dir-local', n)
        self.destroy('dir', 'dir-local')
        self.phase(None, n, 'dir pool', t)

    def bench_others(self, v, n):
        for b in ('debian', 'netfs'):
            if b not in self.backends:
                continue
            pool = '%s-%s' % (b, v)
            t = time.monotonic()
            if b == 'debian':
                self.rss_around(b, v, n, pool, 'refresh-cold', 1)
            else:
                self.destroy(b, pool)
                self.netfs_active.add((b, pool))
                self.measure(b, v, 'refresh-cold', n, ['pool-start', pool], 1,
                             timeout=1800)
                self.measure(b, v, 'refresh-warm', n, ['pool-refresh', pool],
                             1, timeout=1800)
            self.check_count(b, pool, n)
            self.destroy(b, pool)
            self.phase(v, n, b, t)

    def floor(self, tag):
        for b in self.backends:
            self.measure(b, None, 'floor', None, ['pool-list'], 5)
            self.data['samples'][-1]['tag'] = tag
        self.save()

    def run(self):
        self.setup()
        self.floor('start')
        for vi, v in enumerate(self.volumes):
            log('=== volume %s ===' % v)
            self.bench_empty(v)
            for k, n in enumerate(self.sizes):
                self.bench_ours(v, n, k == 0)
                if vi == 0:
                    self.bench_dir(n)
                if v in self.other_volumes and n in self.other_sizes:
                    self.bench_others(v, n)
        self.floor('end')
        self.data['meta']['loadavg_end'] = loadavg()
        self.save()

    def cleanup(self):
        self.stop_nbdkit()
        teardown(self.work, self.daemons.values(), self.cluster,
                 [(self.daemons[b], pool) for b, pool in
                  sorted(self.netfs_active)])


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
ROWS = [
    # (backend, op, label)
    ('ours', 'refresh-warm', 'pool-refresh, unchanged'),
    ('debian', 'refresh-warm', 'pool-refresh, unchanged: Debian module'),
    ('netfs', 'refresh-warm', 'pool-refresh, unchanged: netfs + FUSE'),
    ('dir', 'refresh-warm', 'pool-refresh, unchanged: dir pool of local files (libvirt\'s own cost)'),
    ('gfapi', 'readdirplus', 'bare readdirplus of the directory (gfapi-seq list, in-process)'),
    ('ours', 'refresh-cold', 'first refresh, no cache, images recorded'),
    ('ours', 'refresh-cold-norecord', 'first refresh, no cache, images not recorded'),
    ('debian', 'refresh-cold', 'pool-start: Debian module'),
    ('netfs', 'refresh-cold', 'pool-start (mount + first refresh): netfs + FUSE'),
    ('dir', 'refresh-cold', 'pool-start: dir pool'),
    ('ours', 'refresh-restart', 'pool-start after a libvirtd restart, cache kept'),
    ('ours', 'refresh-changed', 'pool-refresh after 1 % of the images changed'),
    ('ours', 'vol-list', 'virsh vol-list'),
    ('ours', 'vol-list-details', 'virsh vol-list --details'),
    ('ours', 'create-qcow2', 'vol-create-as qcow2 10G (n = 0: an empty directory)'),
    ('ours', 'vol-delete', 'vol-delete (n = 0: an empty directory)'),
    ('ours', 'cli-vol-list', 'gfpool vol-list (CLI, no cache)'),
    ('ours', 'nbd-list', 'nbdkit plugin list_exports (NBD_OPT_LIST, whole client)'),
    ('ours', 'nbd-list-info', 'nbdinfo --list --json (also opens every export)'),
]


def cells_of(data):
    cells = {}
    for e in data['samples']:
        cells[(e['backend'], e['volume'], e['op'], e['n'])] = e
    return cells


def floors_of(data):
    out = {}
    for e in data['samples']:
        if e['op'] == 'floor':
            out.setdefault(e['backend'], []).extend(e['samples'])
    return {b: statistics.median(s) for b, s in out.items()}


def timing_cell(e):
    if not e or e.get('median') is None:
        return '—'
    if e.get('errors'):
        why = e['errors'][0].strip().splitlines()[-1].replace('|', '/')
        why = re.sub(r'^error: ', '', why)
        return ('fails: "%s"' if e.get('expected_failure') else
                '⚠ %s') % why[:120]
    mark = ' ¹' if len(e['samples']) == 1 else ''
    return fmt_s(e['median']) + mark


def make_table(data):
    meta = data['meta']
    cells = cells_of(data)
    floors = floors_of(data)
    sizes = meta['sizes']
    L = []
    L.append('%s: run %s, %s s in all; gfpool %s (module sha256 %s…); '
             '%s CPUs, %s; load average at start/end %s / %s.' % (
                 RELEASE_TITLE, meta.get('date'), meta.get('elapsed_s'),
                 meta.get('gfpool_rev') or meta.get('gfpool_commit'),
                 meta.get('module_sha256_16'), meta.get('nproc'),
                 meta.get('memory'),
                 ' '.join(meta.get('loadavg_start') or []),
                 ' '.join(meta.get('loadavg_end') or [])))
    L.append('')
    L.append('Medians of %s samples of whole calls (¹: one sample: the first '
             'took over %s s, or the row is slow by design); virsh floor '
             '(`virsh pool-list`, start and end of the run): %s.' % (
                 meta.get('reps'), meta.get('slow_s'), ', '.join(
                     '%s %s' % (b, fmt_s(s)) for b, s in sorted(
                         floors.items()))))
    L.append('')
    vols = meta['volumes']
    head = ['n = %s' % '{:,}'.format(n) for n in sizes]
    for v in vols:
        L.append('#### volume `%s`' % v)
        L.append('')
        L.append('| row | empty dir | %s |' % ' | '.join(head))
        L.append('|---|---|%s' % ('---|' * len(sizes)))
        for b, op, label in ROWS:
            vv = None if b == 'dir' else v
            row = [cells.get((b, vv, op, n)) for n in sizes]
            empty = cells.get((b, vv, op, 0))
            if not any(row) and not empty:
                continue
            L.append('| %s | %s | %s |' % (
                label, timing_cell(empty) if empty else '',
                ' | '.join(timing_cell(e) for e in row)))
        rss_slopes = {}
        for b, label in (('ours', 'libvirtd VmRSS growth, ours'),
                         ('debian', 'libvirtd VmRSS growth, Debian module'),
                         ('dir', 'libvirtd VmRSS growth, dir pool')):
            vv = None if b == 'dir' else v
            row = [cells.get((b, vv, 'rss', n)) for n in sizes]
            if not any(row):
                continue
            L.append('| %s: MiB (per volume) | | %s |' % (label, ' | '.join(
                '%.1f MiB (%.0f B)' % ((e['after_kib'] - e['before_kib']) /
                                       1024.0, e['per_volume_bytes'])
                if e else '—' for e in row)))
            s = slope([(e['n'], (e['after_kib'] - e['before_kib']) * 1024.0)
                       for e in row if e])
            if s is not None:
                rss_slopes[b] = s / 1000.0
        row = [cells.get(('ours', v, 'probe-cache', n)) for n in sizes]
        if any(row):
            L.append('| probe cache file | | %s |' % ' | '.join(
                '%.0f KiB (%.0f B/vol)' % (e['bytes'] / 1024.0,
                                           e['bytes'] / float(n))
                if e and e.get('bytes') else '—'
                for e, n in zip(row, sizes)))
        ph = {(p['volume'], p['n'], p['phase']): p
              for p in data.get('phases', [])}
        for what, label in (('populate', 'populate through gfapi (new images)'),
                            ('vol-record', 'gfpool vol-record (new images)')):
            row = [ph.get((v, n, what)) for n in sizes]
            if any(row):
                L.append('| %s | | %s |' % (label, ' | '.join(
                    '%s in %.0f s (%.0f/s)' % ('{:,}'.format(p['images']),
                                               p['seconds'], p['per_s'])
                    if p else '—' for p in row)))
        L.append('')
        if rss_slopes:
            L.append('- libvirtd VmRSS per added volume (slope over the sizes, '
                     'without what a pool costs whatever its size): %s%s' % (
                         ', '.join('%s %.0f B' % (b, x) for b, x in
                                   sorted(rss_slopes.items())),
                         '; ours beyond libvirt\'s own (ours − dir): %.0f B' %
                         (rss_slopes['ours'] - rss_slopes['dir'])
                         if 'ours' in rss_slopes and 'dir' in rss_slopes
                         else ''))
        for op, label in (('refresh-warm', 'refresh unchanged'),
                          ('refresh-cold', 'first refresh (records)'),
                          ('refresh-changed', 'refresh after 1 % changed')):
            pts = [(n, cells[('ours', v, op, n)]['median']) for n in sizes
                   if ('ours', v, op, n) in cells and
                   cells[('ours', v, op, n)].get('median') is not None]
            s = slope(pts)
            if s is not None:
                L.append('- slope, %s (ours): %.3f s per 1,000 images '
                         '(least squares over %s)' % (
                             label, s, ', '.join('{:,}'.format(n)
                                                 for n, _ in pts)))
        L.append('')
    if data.get('notes'):
        L.append('Notes from the run:')
        L.append('')
        for n in data['notes']:
            L.append('- ' + n)
        L.append('')
    ph = data.get('phases', [])
    if ph:
        L.append('Phases (seconds): ' + '; '.join(
            '%s%s %s %.0f' % (p['volume'] + ' ' if p['volume'] else '',
                              '{:,}'.format(p['n']) if p['n'] else '',
                              p['phase'], p['seconds']) for p in ph))
    return '\n'.join(L) + '\n'


def main(argv):
    if argv[:1] == ['--worker']:
        with open(argv[1]) as f:
            populate_worker(json.load(f))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--sizes', default='5000,16000,20000,50000',
                    help='pool sizes, grown in this order in one directory '
                         '(default %(default)s)')
    ap.add_argument('--volumes', default='rep3',
                    help='comma list of rep3, single (default %(default)s: '
                         'the issue\'s targets are on rep3, and writing and '
                         'recording 50,000 images costs minutes a volume)')
    ap.add_argument('--reps', type=int, default=3,
                    help='samples of a fast row (default %(default)s)')
    ap.add_argument('--slow', type=float, default=3.0,
                    help='a row stops after a sample slower than this '
                         '(seconds, default %(default)s)')
    ap.add_argument('--cd-reps', type=int, default=5,
                    help='vol-create-as / vol-delete samples')
    ap.add_argument('--skip-debian', action='store_true')
    ap.add_argument('--skip-netfs', action='store_true')
    ap.add_argument('--skip-nbdinfo', action='store_true',
                    help='no nbdinfo --list (it opens every export)')
    ap.add_argument('--other-sizes', default='',
                    help='sizes for Debian\'s module and netfs (default: '
                         'the largest)')
    ap.add_argument('--other-volumes', default='rep3',
                    help='volumes for Debian\'s module and netfs '
                         '(default %(default)s)')
    ap.add_argument('--no-norecord', action='store_true',
                    help='skip the first refresh of images not recorded yet')
    ap.add_argument('--populate-procs', type=int, default=4)
    ap.add_argument('--record-procs', type=int, default=2)
    ap.add_argument('--record-batch', type=int, default=2500)
    ap.add_argument('--module', default=testbed.DEFAULT_MODULE)
    ap.add_argument('--out', default=os.path.join(HERE, 'results'))
    ap.add_argument('--report', metavar='JSON',
                    help='only print the table of a saved run')
    args = ap.parse_args(argv)
    if args.report:
        with open(args.report) as f:
            print(make_table(json.load(f)))
        return 0
    b = Scale(args)
    rc = run_guarded(b)
    if b.data['samples']:
        print(make_table(b.data))
    log('results: %s' % b.json_path)
    return rc


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
