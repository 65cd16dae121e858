#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""gfpool benchmark: our gluster storage backend vs what Debian 12 offers.

Run as root with Debian's python (python3-libvirt lives there):

    /usr/bin/python3 bench/run.py [--quick] [--out bench/results]

One run starts ONE private GlusterFS cluster (tests/testbed/cluster.py: volumes
`rep3` and `single` on 127.x addresses) and compares, on the same volumes:

  ours    our module (build/src/guard/libvirt_storage_backend_gluster.so,
          copied to the work dir at start so a concurrent rebuild cannot
          swap it mid-run) in a private libvirtd;
  debian  Debian's libvirt_storage_backend_gluster.so in a second private
          libvirtd;
  netfs   a libvirt `netfs` pool (format glusterfs) in a third private
          libvirtd (stock Debian modules): libvirt mounts the volume
          directory with mount.glusterfs (FUSE) inside the daemon's mount
          namespace and uses the fs backend on it;
  qemu-img  `qemu-img create -f qcow2 gluster://ADDR/VOL/DIR/x.qcow2 1G`.

Every measurement is the wall time of one whole `virsh -c URI ...`
subprocess (or qemu-img).  The floor of a virsh call (`virsh pool-list`, a
no-op) is measured on each daemon in the same run; tables show each median
raw and above that daemon's floor.

Images for refresh: one real qcow2 (`qemu-img create -f qcow2 x 1G`, 192 KiB)
copied through gfapi (tests/testbed/gfapi_ctypes.py) under N names into
/gfbench/nN of each volume; every backend's pools of a size share that
directory.  Create/delete runs in a per-backend directory.

"First refresh with nothing cached" is a `pool-start` after `pool-destroy`
(libvirt's pool-start is startPool + refreshPool): for ours with the probe
cache file (/var/cache/libvirt/gfpool/<uuid>.probe in the daemon's
namespace = <workdir>/cache/libvirt/gfpool/<uuid>.probe on the host) deleted
first; for netfs a fresh FUSE mount; Debian's module has no cache at all.
"First refresh after a daemon restart, cache kept" is a `pool-start` of the
pool (destroyed before the restart) right after libvirtd was restarted.

Writes <out>/<stamp>.json (raw samples, written as it goes), <out>/<stamp>.png
(log-scale bars, if matplotlib is importable) and, in full mode, the results
table into bench/README.md between the BEGIN/END MANAGEMENT RESULTS markers.

Cleans up cluster, daemons, FUSE mounts and their logs on exit, Ctrl-C or
SIGTERM (and testbed's reapers kill what is left if this process is killed).
"""

import argparse
import concurrent.futures
import json
import os
import re
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests'))

import testbed  # noqa: E402
from benchlib import (DEBIAN_MODULE, fmt_s, README, RELEASE_TITLE,  # noqa: E402
                      VirshBench, loadavg, log, machine_facts, replace_block,
                      run_guarded, sh, snapshot_module, teardown, timed)
from testbed.gfapi_ctypes import Gfapi  # noqa: E402

# One block of results per Debian release, side by side in README.md.
BEGIN = '<!-- BEGIN MANAGEMENT RESULTS %s (written by bench/run.py) -->' % testbed.RELEASE
END = '<!-- END MANAGEMENT RESULTS %s -->' % testbed.RELEASE
BASE = '/gfbench'
BACKENDS = ('ours', 'debian', 'netfs')
LABEL = {'ours': 'ours (gfpool)', 'debian': 'Debian module',
         'netfs': 'netfs + FUSE', 'qemu-img': 'qemu-img gluster://'}

# Issue targets for ours: (op key, volume or None, kind, limit seconds)
# kind 'raw': median <= limit; 'floor': median - floor <= limit.
TARGETS = [
    ('refresh-warm-5000', None, 'raw', 0.3,
     'refresh of 5,000 unchanged <= 0.3 s'),
    ('refresh-cold-5000', 'single', 'raw', 1.0,
     'first refresh, nothing cached, 5,000 <= 1 s (single)'),
    ('refresh-cold-5000', 'rep3', 'raw', 3.5,
     'first refresh, nothing cached, 5,000 <= 3.5 s (rep3)'),
    ('refresh-restart-5000', None, 'raw', 0.5,
     'first refresh after restart, unchanged, 5,000 <= 0.5 s'),
    ('create-qcow2', None, 'floor', 0.015, 'vol-create-as qcow2 <= floor + 15 ms'),
    ('create-raw', None, 'floor', 0.008, 'vol-create-as raw <= floor + 8 ms'),
    ('vol-delete', None, 'floor', 0.005, 'vol-delete <= floor + 5 ms'),
]


class Bench(VirshBench):
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.stamp = time.strftime('%Y-%m-%d-%H%M%S') + (
            '-quick' if self.quick else '')
        self.out = os.path.abspath(args.out)
        os.makedirs(self.out, exist_ok=True)
        super().__init__(os.path.join(self.out, self.stamp + '.json'))
        self.png_path = os.path.join(self.out, self.stamp + '.png')
        if self.quick:
            self.volumes = ['rep3']
            self.sizes = [0, 1000]
            self.reps = 2            # fast ops (ours, netfs)
            self.reps_netfs_big = 2  # netfs refreshes of the largest size
            self.reps_slow = 1       # Debian ops, qemu-img (~10-20 s each)
            self.floor_reps = 5
        else:
            self.volumes = ['rep3', 'single']
            self.sizes = [0, 1000, 5000]
            self.reps = 5
            self.reps_netfs_big = 3
            self.reps_slow = 3
            self.floor_reps = 7
        if args.reps:
            self.reps = args.reps
        self.big = max(self.sizes)

    # -- setup -------------------------------------------------------------
    def machine_facts(self):
        facts = machine_facts(self.module_copy)
        facts.update({
            'mode': 'quick' if self.quick else 'full',
            'module': self.args.module,
            'loadavg_start': loadavg(),
            'volumes': self.volumes,
            'sizes': self.sizes,
            'reps': {'fast': self.reps, 'netfs_big': self.reps_netfs_big,
                     'slow': self.reps_slow, 'floor': self.floor_reps},
        })
        return facts

    def setup(self):
        self.work = tempfile.mkdtemp(prefix='gfbench', dir='/tmp')
        log('work dir %s' % self.work)
        if not os.path.exists(self.args.module):
            raise SystemExit('module not built: %s (run scripts/build.sh)'
                             % self.args.module)
        # snapshot the module: others may rebuild ./build during the run
        self.module_copy = snapshot_module(self.args.module, self.work)
        self.data['meta'] = self.machine_facts()
        self.save()

        # one real qcow2
        tpl = os.path.join(self.work, 'x.qcow2')
        p = sh('qemu-img', 'create', '-q', '-f', 'qcow2', tpl, '1G')
        if p.returncode != 0:
            raise SystemExit('qemu-img create failed: %s' % p.stderr)
        with open(tpl, 'rb') as f:
            self.qcow2 = f.read()
        self.data['meta']['image_bytes'] = len(self.qcow2)

        t = time.monotonic()
        self.cluster = testbed.Cluster()
        self.cluster.start()
        self.addr = self.cluster.addresses[0]
        log('cluster up in %.1f s: %s' % (time.monotonic() - t,
                                          self.cluster.addresses))
        self.data['meta']['cluster_addresses'] = self.cluster.addresses
        for v in self.volumes:
            self.gf[v] = Gfapi(v, self.cluster.volume_hosts(v),
                               logfile=os.path.join(self.work,
                                                    'gfapi-%s.log' % v))

        # daemons: storage-only, warnings only in the log (no debug I/O)
        mods = {'ours': self.module_copy, 'debian': DEBIAN_MODULE,
                'netfs': DEBIAN_MODULE}
        for b in BACKENDS:
            d = testbed.Libvirtd(os.path.join(self.work, b), module=mods[b],
                                 log_filters='3:*')
            self.daemons[b] = d
            d.start()
            maps = d.maps()
            if os.path.realpath(mods[b]) not in maps:
                raise SystemExit('%s daemon did not load %s' % (b, mods[b]))
        log('daemons up')

        # images
        for v in self.volumes:
            g = self.gf[v]
            for n in self.sizes:
                self.fill(v, n)
            for b in BACKENDS:
                g.mkdir('%s/cd-%s' % (BASE, b), parents=True)
            g.mkdir('%s/qemu-img' % BASE, parents=True)

        # pools
        self.mnt = os.path.join(self.work, 'mnt')
        os.makedirs(self.mnt, exist_ok=True)
        for v in self.volumes:
            for b in BACKENDS:
                for n in self.sizes:
                    self.define(b, v, 'n%d' % n)
                self.define(b, v, 'cd-%s' % b)

    def fill(self, vol, n):
        g = self.gf[vol]
        d = '%s/n%d' % (BASE, n)
        g.mkdir(d, parents=True)
        t = time.monotonic()
        names = ['%s/img-%05d.qcow2' % (d, i) for i in range(n)]
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            for _ in ex.map(lambda p: g.put(p, self.qcow2, parents=False),
                            names):
                pass
        got = len(g.listdir(d))
        if got != n:
            raise SystemExit('%s:%s holds %d files, wanted %d' % (
                vol, d, got, n))
        log('%s: %d images in %s in %.1f s' % (vol, n, d,
                                              time.monotonic() - t))

    def pool_name(self, b, v, sub):
        return '%s-%s-%s' % (b, v, sub)

    def define(self, b, v, sub):
        self.define_pool(b, self.pool_name(b, v, sub), volume=v,
                         directory='%s/%s' % (BASE, sub))

    # -- helpers -----------------------------------------------------------
    def floor(self, tag):
        for b in BACKENDS:
            self.measure(b, None, 'floor', None, ['pool-list'],
                         self.floor_reps)
            self.data['samples'][-1]['tag'] = tag
        self.save()

    # -- measurements ------------------------------------------------------
    def bench_volume(self, v):
        reps, slow = self.reps, self.reps_slow
        # Debian's module: ~10 s a call; on `single` only what is cheap
        deb_sizes = self.sizes if v == 'rep3' else [0, self.big]

        # pool-start of an empty directory (pool-destroy between runs)
        for b in BACKENDS:
            pool = self.pool_name(b, v, 'n0')
            r = slow if b == 'debian' else reps

            def before(i, b=b, pool=pool):
                self.destroy(b, pool)
            self.measure(b, v, 'pool-start', 0, ['pool-start', pool], r,
                         before=before)
            if b == 'netfs':
                self.netfs_active.add((b, pool))

        # refresh, unchanged images
        for n in self.sizes:
            for b in BACKENDS:
                if b == 'debian' and n not in deb_sizes:
                    continue
                pool = self.pool_name(b, v, 'n%d' % n)
                self.ensure_started(b, pool)
                got = self.count_vols(b, pool)
                if got != n:
                    self.data['notes'].append(
                        '%s %s: vol-list shows %d volumes, %d files' % (
                            b, pool, got, n))
                    log('WARNING: ' + self.data['notes'][-1])
                r = slow if b == 'debian' else (
                    self.reps_netfs_big if b == 'netfs' and n >= 1000
                    else reps)
                self.measure(b, v, 'refresh-warm', n, ['pool-refresh', pool],
                             r)

        # first refresh with nothing cached: pool-start after pool-destroy
        for n in self.sizes:
            if n == 0:
                continue
            for b in BACKENDS:
                if b == 'debian' and (v != 'rep3' or n != self.big):
                    continue
                pool = self.pool_name(b, v, 'n%d' % n)
                r = slow if b == 'debian' else (
                    self.reps_netfs_big if b == 'netfs' and n >= 1000
                    else reps)
                cache = self.cache_file(pool) if b == 'ours' else None
                if cache and not os.path.exists(cache):
                    self.data['notes'].append(
                        'ours %s: no probe cache file %s after refresh' %
                        (pool, cache))
                    log('WARNING: ' + self.data['notes'][-1])

                def before(i, b=b, pool=pool, cache=cache):
                    self.destroy(b, pool)
                    if cache:
                        try:
                            os.unlink(cache)
                        except FileNotFoundError:
                            pass
                self.measure(b, v, 'refresh-cold', n, ['pool-start', pool],
                             r, before=before)
                if b == 'netfs':
                    self.netfs_active.add((b, pool))
                if cache and not os.path.exists(cache):
                    self.data['notes'].append(
                        'ours %s: pool-start did not rewrite %s' %
                        (pool, cache))

        # first refresh after a daemon restart, cache kept (ours only)
        pool = self.pool_name('ours', v, 'n%d' % self.big)
        cache = self.cache_file(pool)
        restarts = []

        def before(i):
            self.destroy('ours', pool)
            if not os.path.exists(cache):
                self.data['notes'].append('ours %s: cache file missing '
                                          'before restart' % pool)
            t = time.perf_counter()
            self.daemons['ours'].restart()
            restarts.append(round(time.perf_counter() - t, 3))
        ent = self.measure('ours', v, 'refresh-restart', self.big,
                           ['pool-start', pool], reps, before=before)
        ent['daemon_restart_s'] = restarts
        self.save()

        # volume create / delete
        for b in BACKENDS:
            pool = self.pool_name(b, v, 'cd-%s' % b)
            self.ensure_started(b, pool)
            r = slow if b == 'debian' else reps
            tag = '%d-%s' % (int(time.time()), v)
            q = ['q-%s-%d.qcow2' % (tag, i) for i in range(r)]
            w = ['r-%s-%d.img' % (tag, i) for i in range(r)]
            self.measure(b, v, 'create-qcow2', None,
                         lambda i: ['vol-create-as', pool, q[i], '10G',
                                    '--format', 'qcow2'], r)
            self.measure(b, v, 'create-raw', None,
                         lambda i: ['vol-create-as', pool, w[i], '1G',
                                    '--format', 'raw'], r)
            if b != 'debian':
                # without --allocation libvirt sets allocation = capacity,
                # i.e. a preallocated (fallocate) raw file; the sparse one:
                w += ['s-%s-%d.img' % (tag, i) for i in range(r)]
                self.measure(b, v, 'create-raw-sparse', None,
                             lambda i: ['vol-create-as', pool, w[r + i], '1G',
                                        '--allocation', '0',
                                        '--format', 'raw'], r)
            if b == 'debian':
                # it cannot create: keep its error text, then give it
                # files to delete (written through gfapi + one refresh)
                errs = [s for s in self.data['samples'][-2:]]
                for e in errs:
                    e['expected_failure'] = True
                    e['error_text'] = (e.get('errors') or ['(succeeded?)'])[0]
                for name in q:
                    self.gf[v].put('%s/cd-debian/%s' % (BASE, name),
                                   self.qcow2, parents=False)
                self.run_virsh(b, 'pool-refresh', pool)
                self.measure(b, v, 'vol-delete', None,
                             lambda i: ['vol-delete', '--pool', pool, q[i]],
                             r)
            else:
                names = q + w
                self.measure(b, v, 'vol-delete', None,
                             lambda i: ['vol-delete', '--pool', pool,
                                        names[i]], len(names))
            left = self.gf[v].listdir('%s/cd-%s' % (BASE, b))
            if left:
                self.data['notes'].append('%s %s: left after vol-delete: %s'
                                          % (b, pool, left[:5]))

        # qemu-img create gluster://
        samples, errors = [], []
        for i in range(slow):
            name = 'x-%d-%d.qcow2' % (int(time.time()), i)
            url = 'gluster://%s/%s%s/qemu-img/%s' % (self.addr, v, BASE, name)
            dt, rc, out, err = timed(['qemu-img', 'create', '-q', '-f',
                                      'qcow2', url, '1G'], timeout=300)
            samples.append(dt)
            if rc != 0:
                errors.append(err.strip())
            self.gf[v].unlink('%s/qemu-img/%s' % (BASE, name),
                              missing_ok=True)
        self.record('qemu-img', v, 'create-qcow2', None, samples, errors)

        # stop this volume's pools: keep the daemons quiet for the next one
        for b in BACKENDS:
            for sub in ['n%d' % n for n in self.sizes] + ['cd-%s' % b]:
                self.destroy(b, self.pool_name(b, v, sub))

    def run(self):
        self.setup()
        self.floor('start')
        for v in self.volumes:
            log('=== volume %s ===' % v)
            self.bench_volume(v)
        self.floor('end')
        self.data['meta']['loadavg_end'] = loadavg()
        self.save()

    # -- teardown --------------------------------------------------------------
    def cleanup(self):
        teardown(self.work, self.daemons.values(), self.cluster,
                 [(self.daemons[b], pool) for b, pool in
                  sorted(self.netfs_active)])


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
def fmt_above(x):
    if x is None:
        return ''
    sign = '+' if x >= 0 else '−'
    return ' (%s%s)' % (sign, fmt_s(abs(x)))


ROWS = [
    ('pool-start', 0, 'pool-start, empty dir'),
    ('refresh-warm', 0, 'pool-refresh, 0 images'),
    ('refresh-warm', 1000, 'pool-refresh, 1,000 unchanged'),
    ('refresh-warm', 5000, 'pool-refresh, 5,000 unchanged'),
    ('refresh-cold', 1000, 'first refresh, nothing cached, 1,000 ¹'),
    ('refresh-cold', 5000, 'first refresh, nothing cached, 5,000 ¹'),
    ('refresh-restart', 1000, 'first refresh after daemon restart, cache kept, 1,000 ²'),
    ('refresh-restart', 5000, 'first refresh after daemon restart, cache kept, 5,000 ²'),
    ('create-qcow2', None, 'vol-create-as qcow2 10G ³'),
    ('create-raw', None, 'vol-create-as raw 1G (allocation = capacity: preallocated) ⁴'),
    ('create-raw-sparse', None, 'vol-create-as raw 1G --allocation 0 (sparse)'),
    ('vol-delete', None, 'vol-delete'),
]


def analyse(data):
    """-> (floors {backend: median}, cells {(vol, op, n, backend): entry})"""
    floors = {}
    for b in BACKENDS:
        s = [x for e in data['samples'] if e['backend'] == b and
             e['op'] == 'floor' for x in e['samples']]
        floors[b] = statistics.median(s) if s else None
    cells = {}
    for e in data['samples']:
        if e['op'] == 'floor':
            continue
        cells[(e['volume'], e['op'], e['n'], e['backend'])] = e
    return floors, cells


def local_floor(e, floors):
    """The floor next to a measurement (one pool-list before each timed
    call), else the run's floor of that daemon."""
    if e.get('floor_median') is not None:
        return e['floor_median']
    return floors.get(e['backend']) or 0.0


def ratio(a, b):
    if a is None or b is None or b <= 0:
        return '—'
    r = a / b
    return '%.0f×' % r if r >= 10 else '%.1f×' % r


def target_status(data, floors, cells):
    out = []
    vols = data['meta'].get('volumes', [])
    for op, vol, kind, lim, text in TARGETS:
        m = re.match(r'(.*)-(\d+)$', op)
        key_op, n = (m.group(1), int(m.group(2))) if m else (op, None)
        for v in vols:
            if vol and v != vol:
                continue
            e = cells.get((v, key_op, n, 'ours'))
            if not e or e.get('median') is None:
                out.append((text, v, None, None, 'not measured'))
                continue
            val = e['median']
            if kind == 'floor':
                val = val - local_floor(e, floors)
            ok = val <= lim and not e.get('errors')
            out.append((text, v, val, lim, 'met' if ok else '**MISSED**'))
    return out


def make_table(data):
    floors, cells = analyse(data)
    meta = data['meta']
    L = []
    L.append('Run: %s, %s mode, %s s in all. Medians of whole `virsh` calls: '
             'raw, and in brackets above the floor, i.e. minus the median of '
             'a no-op `virsh pool-list` on the same daemon run right before '
             'each timed call.' % (
                 meta.get('date'), meta.get('mode'), meta.get('elapsed_s')))
    L.append('')
    L.append('Machine: %s CPUs (%s), %s RAM, kernel %s, Debian %s; %s; %s; '
             '%s; gfpool %s (module sha256 %s…). Load average at start/end: '
             '%s / %s (other test clusters may share the machine).' % (
                 meta.get('nproc'), meta.get('cpu'), meta.get('memory'),
                 meta.get('kernel'), meta.get('debian'), meta.get('libvirt'),
                 meta.get('glusterfs'), meta.get('qemu-img'),
                 meta.get('gfpool_commit'), meta.get('module_sha256_16'),
                 ' '.join(meta.get('loadavg_start') or []),
                 ' '.join(meta.get('loadavg_end') or [])))
    L.append('')
    reps = meta.get('reps', {})
    L.append('Repetitions: %s per fast op (netfs refresh of ≥1,000: %s), %s '
             'for Debian-module ops and qemu-img, %s for the floor at the '
             'start and again at the end.' % (
                 reps.get('fast'), reps.get('netfs_big'), reps.get('slow'),
                 reps.get('floor')))
    L.append('')
    L.append('Floor of the whole run (`virsh pool-list`, a no-op; start '
             'and end): ' + ', '.join(
        '%s %s' % (LABEL[b], fmt_s(floors[b])) for b in BACKENDS))
    L.append('')
    for v in meta.get('volumes', []):
        L.append('#### volume `%s`' % v)
        L.append('')
        L.append('| operation | ours | Debian module | netfs + FUSE | '
                 'qemu-img gluster:// | Debian / ours | netfs / ours | '
                 'qemu-img / ours |')
        L.append('|---|---|---|---|---|---|---|---|')
        for op, n, text in ROWS:
            if not any((v, op, n, b) in cells for b in BACKENDS):
                continue
            row = [text]
            med = {}
            for b in BACKENDS:
                e = cells.get((v, op, n, b))
                if not e:
                    row.append('n/a' if op == 'refresh-restart' and
                               b != 'ours' else '—')
                    continue
                if e.get('expected_failure'):
                    why = e['error_text'].strip().splitlines()[-1]
                    why = re.sub(r'^error: ', '', why).replace('|', '/')
                    row.append('cannot: "%s"' % why)
                    continue
                m = e['median']
                med[b] = m
                above = m - local_floor(e, floors)
                bad = ' ⚠ %d failed' % len(e['errors']) if e.get('errors') \
                    else ''
                row.append(fmt_s(m) + fmt_above(above) + bad)
            q = cells.get((v, op, n, 'qemu-img'))
            row.append(fmt_s(q['median']) + (' ⚠ failed' if q.get('errors')
                                              else '') if q else '')
            row.append(ratio(med.get('debian'), med.get('ours')))
            row.append(ratio(med.get('netfs'), med.get('ours')))
            row.append(ratio(q['median'], med.get('ours')) if q else '')
            L.append('| ' + ' | '.join(row) + ' |')
        L.append('')
    L.append('¹ `pool-start` after `pool-destroy` (libvirt\'s pool-start is '
             'startPool + refreshPool): ours with its probe cache file '
             'deleted, netfs with a fresh FUSE mount; Debian\'s module caches '
             'nothing (every refresh is a first refresh).  '
             '² `pool-start` right after a libvirtd restart (pool inactive '
             'across the restart, cache file kept); only ours has a cache.  '
             '³ the qemu-img column is `qemu-img create -f qcow2 '
             'gluster://ADDR/VOL/DIR/x.qcow2 1G`, one whole process (no '
             'virsh, so no floor).  '
             '⁴ `virsh vol-create-as` without `--allocation` sends no '
             '<allocation>, and libvirt then sets allocation = capacity: '
             'both ours and the fs backend preallocate (fallocate) the file.')
    L.append('')
    L.append('Targets for ours:')
    L.append('')
    L.append('| target | volume | measured | status |')
    L.append('|---|---|---|---|')
    for text, v, val, lim, st in target_status(data, floors, cells):
        L.append('| %s | %s | %s | %s |' % (
            text, v, fmt_s(val) + (' above floor' if 'floor' in text
                                   and val is not None else ''), st))
    if data.get('notes'):
        L.append('')
        L.append('Notes from the run:')
        L.append('')
        for n in data['notes']:
            L.append('- ' + n)
    return '\n'.join(L) + '\n'


def make_plot(data, path):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        log('matplotlib not importable: no plot')
        return None
    floors, cells = analyse(data)
    vols = data['meta'].get('volumes', [])
    fig, axes = plt.subplots(len(vols), 1, figsize=(13, 5.2 * len(vols)),
                             squeeze=False)
    colours = {'ours': '#2b8cbe', 'debian': '#e34a33', 'netfs': '#fdbb84',
               'qemu-img': '#756bb1'}
    short = {
        ('pool-start', 0): 'pool-start\nempty',
        ('refresh-warm', 0): 'refresh\n0',
        ('refresh-warm', 1000): 'refresh\n1k unchanged',
        ('refresh-warm', 5000): 'refresh\n5k unchanged',
        ('refresh-cold', 1000): 'first refresh\n1k, no cache',
        ('refresh-cold', 5000): 'first refresh\n5k, no cache',
        ('refresh-restart', 5000): 'after restart\n5k, cache kept',
        ('create-qcow2', None): 'create\nqcow2 10G',
        ('create-raw', None): 'create\nraw 1G',
        ('create-raw-sparse', None): 'create raw 1G\n--allocation 0',
        ('vol-delete', None): 'vol-delete',
    }
    for ax, v in zip(axes[:, 0], vols):
        keys = [k for k in short if any((v, k[0], k[1], b) in cells
                                        for b in BACKENDS)]
        series = list(BACKENDS) + ['qemu-img']
        width = 0.8 / len(series)
        for j, b in enumerate(series):
            xs, ys = [], []
            for i, (op, n) in enumerate(keys):
                e = cells.get((v, op, n, b))
                if e and not e.get('expected_failure') and e['median']:
                    xs.append(i + (j - (len(series) - 1) / 2) * width)
                    ys.append(e['median'])
            if xs:
                ax.bar(xs, ys, width, label=LABEL[b],
                              color=colours[b])
                for x, y in zip(xs, ys):
                    ax.text(x, y * 1.08, fmt_s(y).replace(' ', ''),
                            ha='center', va='bottom', fontsize=6.5,
                            rotation=90)
        for b, ls in (('ours', '--'), ('debian', ':')):
            if floors.get(b):
                ax.axhline(floors[b], color=colours[b], linestyle=ls,
                           linewidth=0.8,
                           label='virsh floor (%s) %s' % (LABEL[b],
                                                          fmt_s(floors[b])))
        ax.set_yscale('log')
        ax.set_ylim(0.005, 100)
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels([short[k] for k in keys], fontsize=8)
        ax.set_ylabel('seconds per whole call (median, log)')
        ax.set_title('gfpool vs Debian module vs netfs+FUSE — volume %s' % v)
        ax.legend(fontsize=7, loc='upper left', ncol=3)
        ax.grid(axis='y', which='both', alpha=0.25)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def update_readme(table, png_rel, json_rel):
    replace_block(BEGIN, END, '%s\n\n### %s\n\n%s\nRaw samples: [`%s`](%s)%s\n\n%s' % (
        BEGIN, RELEASE_TITLE, table, json_rel, json_rel,
        ('; plot: [`%s`](%s)\n\n![benchmark](%s)' % (png_rel, png_rel,
                                                      png_rel)
         if png_rel else ''), END))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--quick', action='store_true',
                    help='smoke run (~3 min): rep3 only, 0 and 1,000 '
                         'images, fewer repetitions')
    ap.add_argument('--out', default=os.path.join(HERE, 'results'),
                    help='directory for <date>.json and <date>.png')
    ap.add_argument('--module', default=testbed.DEFAULT_MODULE,
                    help='our module (default: %(default)s)')
    ap.add_argument('--reps', type=int, default=0,
                    help='repetitions of the fast ops (default 5, quick 2)')
    ap.add_argument('--readme', choices=('auto', 'yes', 'no'), default='auto',
                    help='write the table into bench/README.md (auto: only '
                         'in full mode)')
    ap.add_argument('--report', metavar='JSON',
                    help='only print the table (and plot) of a saved run')
    args = ap.parse_args(argv)
    if args.report:
        with open(args.report) as f:
            data = json.load(f)
        print(make_table(data))
        png = os.path.splitext(args.report)[0] + '.png'
        make_plot(data, png)
        if args.readme == 'yes':
            update_readme(make_table(data), os.path.relpath(png, HERE),
                          os.path.relpath(args.report, HERE))
        return 0
    b = Bench(args)
    rc = run_guarded(b)
    if not b.data['samples']:
        return rc or 1
    table = make_table(b.data)
    print(table)
    png = make_plot(b.data, b.png_path)
    if args.readme == 'yes' or (args.readme == 'auto' and not b.quick
                                and rc == 0):
        update_readme(table, os.path.relpath(png, HERE) if png else None,
                      os.path.relpath(b.json_path, HERE))
        log('wrote %s' % README)
    log('results: %s%s' % (b.json_path, ', ' + png if png else ''))
    return rc


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
