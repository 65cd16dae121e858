#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""gfpool data-path benchmark: clone, upload, download, resize, wipe.

Run as root with Debian's python (python3-libvirt lives there), after
scripts/build.sh:

    /usr/bin/python3 bench/data.py [--quick] [--reps N] [--volumes rep3,single]

One run starts ONE private GlusterFS cluster (tests/testbed/) and
compares, on the same volume, in the same run:

  ours    `virsh` against a private libvirtd with our module
          (vol-clone, vol-upload, vol-download, vol-resize, vol-wipe);
  netfs   the same `virsh` verbs against a private libvirtd with a `netfs`
          pool (format glusterfs): libvirt's fs backend on a FUSE mount;
  gfapi   the data-path limit: build/bench/gfapi-seq, one plain sequential
          stream of 4 MiB glfs_read/glfs_write calls moving the same bytes
          (for a clone: a write plus a read of the data the clone copies);
  stream  libvirt's own stream limit: vol-upload/vol-download into a `dir`
          pool on tmpfs in our libvirtd, no gluster at all;
  debian  Debian's gluster module, once per verb: it implements none of
          them, and the error it gives is recorded.

Every ours/netfs/stream number is the wall time of a whole `virsh`
subprocess (median of --reps); gfapi numbers are the transfer time measured
inside gfapi-seq (connecting not counted, which favours the anchor).

Writes bench/results/data-<stamp>.json (raw samples, as it goes),
data-<stamp>.png (bars; needs python3-matplotlib) and, unless --quick, the
table into bench/README.md between the BEGIN/END DATA RESULTS markers.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests'))

import testbed  # noqa: E402
from testbed.gfapi_ctypes import Gfapi  # noqa: E402
from testbed.pools import (netfs_pool_xml, pool_xml, sha256_file,  # noqa: E402
                           sparse_file)
from benchlib import (DEBIAN_MODULE, RELEASE_TITLE, loadavg, log,  # noqa: E402
                      replace_block, run_guarded, sh, source_rev, teardown, timed,
                      virsh_cmd)

README = os.path.join(HERE, 'README.md')
BEGIN = '<!-- BEGIN DATA RESULTS %s (written by bench/data.py) -->' % testbed.RELEASE
END = '<!-- END DATA RESULTS %s -->' % testbed.RELEASE
BUILD = testbed.BUILD
SEQ = os.path.join(BUILD, 'bench', 'gfapi-seq')
CLI = os.path.join(BUILD, 'src', 'tools', 'gfpool')
MODULE = os.path.join(BUILD, 'src', 'guard',
                      'libvirt_storage_backend_gluster.so')
BASE = '/gfdata'
MiB = 1 << 20
GiB = 1 << 30

# (key, label, issue target)
OPS = [
    ('clone-raw', 'vol-clone, 1 GiB raw holding 512 MiB',
     '≤ gfapi read+write; ≥ 3× netfs'),
    ('clone-qcow2', 'vol-clone, qcow2 (1 GiB) holding 256 MiB',
     '≤ gfapi read+write; ≥ 3× netfs'),
    ('upload-512', 'vol-upload 512 MiB', '≥ 90 % of gfapi'),
    ('upload-1024', 'vol-upload 1 GiB', '≥ 90 % of gfapi'),
    ('download-512', 'vol-download 512 MiB', '≥ 90 % of gfapi; ≥ 4× netfs'),
    ('download-1024', 'vol-download 1 GiB', '≥ 90 % of gfapi; ≥ 4× netfs'),
    ('resize-qcow2', 'vol-resize qcow2 1 GiB → 100 GiB', ''),
    ('wipe-1024', 'vol-wipe 1 GiB raw (algorithm zero)', ''),
]

SHORT = {'clone-raw': 'clone raw\n(512 MiB data)',
         'clone-qcow2': 'clone qcow2\n(256 MiB data)',
         'upload-512': 'upload\n512 MiB', 'upload-1024': 'upload\n1 GiB',
         'download-512': 'download\n512 MiB',
         'download-1024': 'download\n1 GiB',
         'resize-qcow2': 'resize qcow2\n1 → 100 GiB',
         'wipe-1024': 'wipe 1 GiB\n(zero)'}




class DataBench:
    def __init__(self, args):
        self.args = args
        self.reps = args.reps or (1 if args.quick else 3)
        self.volumes = args.volumes.split(',')
        self.stamp = time.strftime('%Y-%m-%d-%H%M%S') + (
            '-quick' if args.quick else '')
        self.out = os.path.abspath(args.out)
        os.makedirs(self.out, exist_ok=True)
        self.json_path = os.path.join(self.out, 'data-%s.json' % self.stamp)
        self.png_path = os.path.join(self.out, 'data-%s.png' % self.stamp)
        self.data = {'meta': {}, 'samples': []}
        self.work = self.cluster = None
        self.daemons = {}
        self.gf = {}
        self.netfs_pools = []
        self.t0 = time.monotonic()

    # -- recording ---------------------------------------------------------
    def save(self):
        self.data['meta']['elapsed_s'] = round(time.monotonic() - self.t0, 1)
        tmp = self.json_path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(self.data, f, indent=1)
        os.replace(tmp, self.json_path)

    def record(self, backend, volume, op, samples, errors=None):
        ent = {'backend': backend, 'volume': volume, 'op': op,
               'samples': [round(s, 4) for s in samples],
               'median': round(statistics.median(samples), 4)
               if samples else None, 'loadavg': loadavg()}
        if errors:
            ent['errors'] = errors
        self.data['samples'].append(ent)
        self.save()
        log('%-7s %-6s %-14s median %s  %s%s' % (
            backend, volume, op,
            '%.3f s' % ent['median'] if samples else '-',
            ' '.join('%.3f' % s for s in samples),
            '  ERR: %s' % errors[0][:160] if errors else ''))
        return ent

    # -- tools ---------------------------------------------------------------
    def virsh(self, b, *args, check=True, timeout=900):
        dt, rc, out, err = timed(virsh_cmd(self.daemons[b], *args),
                                 timeout=timeout)
        if check and rc != 0:
            raise testbed.TestbedError('virsh %s (%s): %s' % (
                ' '.join(map(str, args)), b, err.strip()))
        return dt, rc, out, err

    def cli(self, v, sub, *args):
        hosts = []
        for h in self.cluster.addresses:
            hosts += ['--host', h]
        p = sh(CLI, args[0], *hosts, '--volume', v, '--dir',
               '%s/%s' % (BASE, sub), *args[1:])
        if p.returncode != 0:
            raise testbed.TestbedError('gfpool %s: %s' % (
                ' '.join(args), p.stderr.strip()))
        return p.stdout

    def seq(self, v, *args):
        p = sh(SEQ, args[0], ','.join(self.cluster.addresses), v, *args[1:])
        if p.returncode != 0:
            raise testbed.TestbedError('gfapi-seq %s: %s' % (
                ' '.join(args), p.stderr.strip()))
        return json.loads(p.stdout)['seconds']

    # -- setup ---------------------------------------------------------------
    def setup(self):
        for path in (SEQ, CLI, MODULE):
            if not os.path.exists(path):
                raise SystemExit('%s not built (run scripts/build.sh)' % path)
        self.work = tempfile.mkdtemp(prefix='gfdata', dir='/tmp')
        log('work dir %s' % self.work)
        module = os.path.join(self.work, os.path.basename(MODULE))
        shutil.copy2(MODULE, module)    # a rebuild mid-run cannot swap it
        self.data['meta'] = {
            'date': time.strftime('%Y-%m-%d %H:%M:%S %Z'),
            'mode': 'quick' if self.args.quick else 'full',
            'reps': self.reps, 'nproc': os.cpu_count(),
            'gfpool_commit': source_rev(), 'loadavg_start': loadavg(),
            'libvirt': sh('libvirtd', '--version').stdout.strip(),
            'glusterfs': sh('glusterfs', '--version').stdout.splitlines()[0],
        }

        # local inputs: incompressible data, holes where a clone source
        # has them
        self.files = {}
        f = self.files
        f['d512'] = os.path.join(self.work, 'dense512.bin')
        f['d1024'] = os.path.join(self.work, 'dense1024.bin')
        f['d256'] = os.path.join(self.work, 'dense256.bin')
        f['sparse'] = os.path.join(self.work, 'sparse1g.raw')
        f['qcow2'] = os.path.join(self.work, 'src.qcow2')
        sparse_file(f['d1024'], GiB, [(0, GiB)])
        with open(f['d1024'], 'rb') as i, open(f['d512'], 'wb') as o:
            o.write(i.read(512 * MiB))
        with open(f['d1024'], 'rb') as i, open(f['d256'], 'wb') as o:
            o.write(i.read(256 * MiB))
        # 1 GiB raw, 512 MiB of it data: 64 MiB extents every 128 MiB
        sparse_file(f['sparse'], GiB, [(i * 128 * MiB, 64 * MiB)
                                        for i in range(8)])
        # qcow2 of 1 GiB holding 256 MiB: four 64 MiB extents
        q_raw = os.path.join(self.work, 'q.raw')
        sparse_file(q_raw, GiB, [(i * 256 * MiB, 64 * MiB)
                                  for i in range(4)])
        p = sh('qemu-img', 'convert', '-O', 'qcow2', q_raw, f['qcow2'])
        if p.returncode:
            raise SystemExit('qemu-img convert: %s' % p.stderr)
        os.unlink(q_raw)
        log('local inputs written')

        self.cluster = testbed.Cluster()
        self.cluster.start()
        log('cluster up: %s' % self.cluster.addresses)
        self.data['meta']['cluster_addresses'] = self.cluster.addresses

        mods = {'ours': module, 'netfs': DEBIAN_MODULE,
                'debian': DEBIAN_MODULE}
        for b, m in mods.items():
            d = testbed.Libvirtd(os.path.join(self.work, b), module=m,
                                 log_filters='3:*')
            self.daemons[b] = d
            d.start()

        # libvirt's stream limit: a dir pool on tmpfs in our daemon
        self.shm = tempfile.mkdtemp(prefix='gfdata-dir', dir='/dev/shm')
        xml = os.path.join(self.work, 'dirpool.xml')
        with open(xml, 'w') as fh:
            fh.write("<pool type='dir'><name>shm</name><target><path>%s"
                     "</path></target></pool>" % self.shm)
        self.virsh('ours', 'pool-create', xml)

        for v in self.volumes:
            g = Gfapi(v, self.cluster.volume_hosts(v),
                      logfile=os.path.join(self.work, 'gfapi-%s.log' % v))
            for sub in ('ours', 'netfs', 'debian', 'plain'):
                g.mkdir('%s/%s' % (BASE, sub), parents=True)
            for b in ('ours', 'netfs', 'debian'):
                self.define(b, v)
                self.put_sources(v, b, data=b != 'debian')
                self.virsh(b, 'pool-refresh', self.pool(b, v))

    def pool(self, b, v):
        return '%s-%s' % (b, v)

    def define(self, b, v):
        name = self.pool(b, v)
        if b == 'netfs':
            target = os.path.join(self.work, 'mnt', name)
            os.makedirs(target, exist_ok=True)
            xml = netfs_pool_xml(name, self.cluster.addresses[0], v, BASE + '/netfs',
                                 target)
        else:
            xml = pool_xml(name, self.cluster.addresses, volume=v,
                           directory='%s/%s' % (BASE, b))
        path = os.path.join(self.work, name + '.xml')
        with open(path, 'w') as fh:
            fh.write(xml)
        self.virsh(b, 'pool-define', path)
        self.virsh(b, 'pool-start', name)
        if b == 'netfs':
            self.netfs_pools.append(name)

    def put_sources(self, v, sub, data=True):
        """The clone and download sources, written by our CLI (gfapi);
        only their names for Debian's module, which reads none of them."""
        f = self.files
        for name, path, sparse in (('src.img', f['sparse'], True),
                                   ('src.qcow2', f['qcow2'], True),
                                   ('dl512.img', f['d512'], False),
                                   ('dl1024.img', f['d1024'], False)):
            self.cli(v, sub, 'vol-create-as', name,
                     str(os.path.getsize(path)), '--format', 'raw')
            if data:
                self.cli(v, sub, 'vol-upload', name, path,
                         *(['--sparse'] if sparse else []))

    # -- measurements --------------------------------------------------------
    def run_op(self, v, op, cases):
        """cases: {label: fn(i) -> (seconds, error)}.  Repetitions are
        interleaved across labels: writes on this machine swing 2x with the
        kernel's writeback of the bricks' dirty pages, and a drift must hit
        every column alike."""
        samples = {k: [] for k in cases}
        errors = {k: [] for k in cases}
        for i in range(self.reps):
            for label, fn in cases.items():
                dt, err = fn(i)
                if err is None:
                    samples[label].append(dt)
                else:
                    errors[label].append(err)
        for label in cases:
            self.record(label, v, op, samples[label], errors[label])

    def virsh_case(self, b, v, argv, before=None, after=None, pool=None):
        """A timed whole `virsh` call on daemon b, with untimed set-up and
        clean-up around it."""
        pool = pool or self.pool(b, v)

        def fn(i):
            if before:
                before(b, pool)
            dt, rc, out, err = self.virsh(b, *argv(pool), check=False)
            if after:
                after(b, pool)
            return dt, None if rc == 0 else (err or out).strip()
        return fn

    def gfapi_case(self, v, write=None, read=None):
        """The same bytes through one plain gfapi stream: `write` a local
        file to a new file of the volume, and/or `read` a file of it (for
        a clone, both: what a copy through the client must at least do)."""
        def fn(i):
            t = 0.0
            name = '%s/plain/w-%d' % (BASE, i)
            try:
                if write:
                    t += self.seq(v, 'write', name, write)
                if read:
                    t += self.seq(v, 'read', name if read is True else read)
            except testbed.TestbedError as e:
                return None, str(e)
            finally:
                if write:
                    self.gf[v].unlink(name, missing_ok=True)
            return t, None
        return fn

    def bench_volume(self, v):
        f = self.files
        self.gf[v] = Gfapi(v, self.cluster.volume_hosts(v),
                           logfile=os.path.join(self.work, 'gfapi-%s.log'
                                                % v))

        def delete(name):
            return lambda b, pool: self.virsh(b, 'vol-delete', name,
                                              '--pool', pool, check=False)

        def create(name, size, fmt='raw'):
            return lambda b, pool: self.virsh(
                b, 'vol-create-as', pool, name, size, '--format', fmt)

        backends = ('ours', 'netfs')

        def clone(src, dst):
            return {b: self.virsh_case(b, v, lambda p: (
                'vol-clone', src, dst, '--pool', p), after=delete(dst))
                for b in backends}
        self.run_op(v, 'clone-raw', dict(
            clone('src.img', 'c.img'),
            gfapi=self.gfapi_case(v, write=f['d512'], read=True)))
        self.run_op(v, 'clone-qcow2', dict(
            clone('src.qcow2', 'c.qcow2'),
            gfapi=self.gfapi_case(v, write=f['d256'], read=True)))

        # libvirt's stream limit: the same verb on a dir pool on tmpfs
        self.virsh('ours', 'vol-create-as', 'shm', 'dl512.img', '512M')
        self.virsh('ours', 'vol-upload', 'dl512.img', f['d512'], '--pool',
                   'shm')
        self.virsh('ours', 'vol-create-as', 'shm', 'dl1024.img', '1024M')
        self.virsh('ours', 'vol-upload', 'dl1024.img', f['d1024'], '--pool',
                   'shm')
        for size in (512, 1024):
            src = f['d%d' % size]
            up = {b: self.virsh_case(b, v, lambda p: (
                'vol-upload', 'up.img', src, '--pool', p),
                before=create('up.img', '%dM' % size),
                after=delete('up.img')) for b in backends}
            up['stream'] = self.virsh_case('ours', v, lambda p: (
                'vol-upload', 'up.img', src, '--pool', p),
                before=create('up.img', '%dM' % size),
                after=delete('up.img'), pool='shm')
            up['gfapi'] = self.gfapi_case(v, write=src)
            self.run_op(v, 'upload-%d' % size, up)

            dl = 'dl%d.img' % size
            down = {b: self.virsh_case(b, v, lambda p: (
                'vol-download', dl, '/dev/null', '--pool', p))
                for b in backends}
            down['stream'] = self.virsh_case('ours', v, lambda p: (
                'vol-download', dl, '/dev/null', '--pool', p), pool='shm')
            down['gfapi'] = self.gfapi_case(v, read='%s/ours/%s' % (BASE, dl))
            self.run_op(v, 'download-%d' % size, down)
        for name in ('dl512.img', 'dl1024.img'):
            self.virsh('ours', 'vol-delete', name, '--pool', 'shm')

        self.run_op(v, 'resize-qcow2', {b: self.virsh_case(b, v, lambda p: (
            'vol-resize', 'r.qcow2', '100G', '--pool', p),
            before=create('r.qcow2', '1G', 'qcow2'),
            after=delete('r.qcow2')) for b in backends})
        self.run_op(v, 'wipe-1024', {b: self.virsh_case(b, v, lambda p: (
            'vol-wipe', 'w.img', '--pool', p),
            before=create('w.img', '1G'), after=delete('w.img'))
            for b in backends})

        # Debian's module: one call per verb, for the record
        if v == self.volumes[0]:
            p = self.pool('debian', v)
            for op, argv in (
                    ('clone-raw', ('vol-clone', 'src.img', 'c.img')),
                    ('upload-512', ('vol-upload', 'dl512.img', f['d512'])),
                    ('download-512', ('vol-download', 'dl512.img',
                                      '/dev/null')),
                    ('resize-qcow2', ('vol-resize', 'src.qcow2', '2G')),
                    ('wipe-1024', ('vol-wipe', 'dl1024.img'))):
                dt, rc, out, err = self.virsh('debian', *argv, '--pool', p,
                                              check=False)
                ent = self.record('debian', v, op, [dt] if rc == 0 else [],
                                  [(err or out).strip()] if rc else None)
                ent['seconds_to_error'] = round(dt, 2)
                self.save()

    def verify(self, v):
        """One clone per backend read back through gfapi and compared, so
        a fast wrong answer cannot pass for a result."""
        clone = os.path.join(self.work, 'check.img')
        for b in ('ours', 'netfs'):
            p = self.pool(b, v)
            self.virsh(b, 'vol-clone', 'src.img', 'k.img', '--pool', p)
            self.cli(v, b, 'vol-download', 'k.img', clone)
            same = sha256_file(clone) == sha256_file(self.files['sparse'])
            self.virsh(b, 'vol-delete', 'k.img', '--pool', p)
            os.unlink(clone)
            if not same:
                raise SystemExit('%s clone on %s differs from its source'
                                 % (b, v))
        log('%s: clones verified' % v)

    def run(self):
        self.setup()
        for v in self.volumes:
            log('=== volume %s ===' % v)
            self.verify(v)
            self.bench_volume(v)
        self.data['meta']['loadavg_end'] = loadavg()
        self.save()

    def cleanup(self):
        teardown(self.work, self.daemons.values(), self.cluster,
                 [(self.daemons['netfs'], n) for n in self.netfs_pools])
        if getattr(self, 'shm', None):
            shutil.rmtree(self.shm, ignore_errors=True)


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
def medians(data):
    m = {}
    for e in data['samples']:
        m[(e['backend'], e['volume'], e['op'])] = e
    return m


def fmt(e):
    if not e or e.get('median') is None:
        return '—'
    x = e['median']
    return '%.2f s' % x if x >= 1 else '%.0f ms' % (x * 1000)


def ratio(a, b):
    if not a or not b or a.get('median') is None or b.get('median') is None \
            or not b['median']:
        return ''
    r = a['median'] / b['median']
    return '%.2f×' % r if r < 10 else '%.0f×' % r


def make_table(data):
    m = medians(data)
    meta = data['meta']
    lines = [
        'Run: %s, %s mode, %d repetitions, %s s in all; gfpool %s; '
        'load average at start/end: %s / %s.' % (
            meta.get('date'), meta.get('mode'), meta.get('reps', 0),
            meta.get('elapsed_s'), meta.get('gfpool_commit'),
            ' '.join(meta.get('loadavg_start') or []),
            ' '.join(meta.get('loadavg_end') or [])),
        '',
        'Columns: medians of whole `virsh` calls (ours, netfs + FUSE, '
        'libvirt stream to tmpfs); plain gfapi = the same bytes moved by '
        '`gfapi-seq` (read+write for clones). "gfapi / ours" is the share '
        'of the plain-gfapi rate we reach (1.00× = the limit; above 1 = '
        'faster than one plain stream).',
    ]
    vols = []
    for e in data['samples']:
        if e['volume'] not in vols:
            vols.append(e['volume'])
    for v in vols:
        lines += ['', '#### volume `%s`' % v, '',
                  '| operation | ours | netfs + FUSE | plain gfapi | '
                  'libvirt stream, tmpfs | netfs / ours | gfapi / ours | '
                  'target |',
                  '|---|---|---|---|---|---|---|---|']
        for key, label, target in OPS:
            ours = m.get(('ours', v, key))
            netfs = m.get(('netfs', v, key))
            gf = m.get(('gfapi', v, key))
            st = m.get(('stream', v, key))
            lines.append('| %s | %s | %s | %s | %s | %s | %s | %s |' % (
                label, fmt(ours), fmt(netfs), fmt(gf) if gf else '',
                fmt(st) if st else '', ratio(netfs, ours),
                ratio(gf, ours) if gf else '', target))
    deb = [e for e in data['samples'] if e['backend'] == 'debian']
    if deb:
        lines += ['', "Debian's gluster module (one call each, on `%s`):"
                  % deb[0]['volume'], '']
        for e in deb:
            err = (e.get('errors') or [''])[0].replace('\n', ' ')
            lines.append('- %s: %s after %.1f s' % (
                e['op'], '`%s`' % err if err else 'ok',
                e.get('seconds_to_error', 0)))
    return '\n'.join(lines)


def make_plot(data, path):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        log('matplotlib not importable: no plot')
        return False
    m = medians(data)
    vols = sorted({e['volume'] for e in data['samples']},
                  key=lambda x: x != 'rep3')
    fig, axes = plt.subplots(len(vols), 1, figsize=(11, 4.2 * len(vols)),
                             squeeze=False)
    series = (('ours', 'ours (gfpool)', '#2b7bba'),
              ('netfs', 'netfs + FUSE', '#d95f02'),
              ('gfapi', 'plain gfapi (same bytes)', '#7f7f7f'),
              ('stream', 'libvirt stream to tmpfs', '#66a61e'))
    for ax, v in zip(axes[:, 0], vols):
        width = 0.2
        for j, (b, label, color) in enumerate(series):
            xs, ys = [], []
            for i, (key, _, _) in enumerate(OPS):
                e = m.get((b, v, key))
                if e and e.get('median') is not None:
                    xs.append(i + (j - 1.5) * width)
                    ys.append(e['median'])
            ax.bar(xs, ys, width, label=label, color=color)
        ax.set_xticks(range(len(OPS)))
        ax.set_xticklabels([SHORT[key] for key, _, _ in OPS], fontsize=8)
        ax.set_ylabel('seconds (lower is better)')
        ax.set_title('volume %s' % v)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return True


def update_readme(table, png, js):
    replace_block(BEGIN, END, '%s\n\n### %s\n\n%s\n\nPlot: [%s](%s); raw samples: [%s](%s)\n\n%s' % (
        BEGIN, RELEASE_TITLE, table, os.path.basename(png),
        os.path.relpath(png, HERE), os.path.basename(js),
        os.path.relpath(js, HERE), END))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--quick', action='store_true',
                    help='1 repetition, rep3 only, no README update')
    ap.add_argument('--reps', type=int, default=0)
    ap.add_argument('--volumes', default=None,
                    help='comma-separated: rep3,single (default both)')
    ap.add_argument('--out', default=os.path.join(HERE, 'results'))
    ap.add_argument('--report', metavar='JSON',
                    help='only re-render table and plot from a result file')
    args = ap.parse_args(argv)
    if args.volumes is None:
        args.volumes = 'rep3' if args.quick else 'rep3,single'
    if args.report:
        with open(args.report) as f:
            data = json.load(f)
        print(make_table(data))
        make_plot(data, os.path.splitext(args.report)[0] + '.png')
        return 0
    b = DataBench(args)
    rc = run_guarded(b)
    if rc:
        return rc
    table = make_table(b.data)
    print(table)
    make_plot(b.data, b.png_path)
    if not args.quick:
        update_readme(table, b.png_path, b.json_path)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
