# SPDX-License-Identifier: LGPL-2.1-or-later
"""Two hypervisors list one pool while a third writes it (issue 25).

Hosts A and B are two private libvirtds that define and start the same
gluster pool of 2,000 images. A third party writes the pool for a while:
the gfpool CLI (creates of raw and qcow2, deletes of images that were
there and of images it just made, clones) and a third libvirtd through
python3-libvirt (creates and deletes). Meanwhile A and B pool-refresh in
loops: no refresh may fail and no listing may show a temporary name.
Once the writers stop, each daemon's next refresh must list exactly the
directory's entries (gfapi readdir, temporary names left out), each with
the format and capacity gfpool reads.

The writer is never A or B: libvirt refuses a pool-refresh of a pool with
a volume being built in the same daemon ("has asynchronous jobs
running"), which is libvirt's rule, not the backend's.
"""

import os
import random
import re
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

from testbed.pools import (GFPOOL_CLI, TEMP_PREFIX, gfpool_cli, pool_opts,
                           pool_xml, qemu_img, run_parallel)

IMAGES = 2000
QCOW2_EVERY = 8             # every 8th image is a qcow2 copied from a template
QCOW2_CAPACITY = 64 << 20
WRITE_S = 15
MiB = 1 << 20


def human_size(v):
    """gfpool's own rendering of a size (src/tools/gfpool.c human_size)."""
    units = ('B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB')
    d, i = float(v), 0
    while d >= 1024.0 and i + 1 < len(units):
        d /= 1024.0
        i += 1
    return '%d B' % v if i == 0 else '%.2f %s' % (d, units[i])


def _populate(gfapi, directory, tmp_path):
    """IMAGES files straight into the directory: sparse raw ones of a few
    MiB and qcow2 copies of a qemu-img template. -> {name: (format,
    capacity)}"""
    tmpl = os.path.join(str(tmp_path), 'template.qcow2')
    # small clusters: a small file to copy 250 times
    p = qemu_img('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', tmpl,
                 str(QCOW2_CAPACITY))
    assert p.returncode == 0, p.stderr
    with open(tmpl, 'rb') as f:
        qcow2 = f.read()
    want = {}
    for i in range(IMAGES):
        if i % QCOW2_EVERY == 0:
            want['q%04d.qcow2' % i] = ('qcow2', QCOW2_CAPACITY)
        else:
            want['r%04d.img' % i] = ('raw', (1 + i % 7) * MiB)

    def put(item):
        name, (fmt, cap) = item
        path = '%s/%s' % (directory, name)
        if fmt == 'qcow2':
            gfapi.put(path, qcow2, parents=False)
        else:
            gfapi.put_sparse(path, cap, parents=False)

    # ctypes lets go of the GIL around each gfapi call
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(put, want.items()))
    return want


def _record(cluster, directory, want):
    """One vol-record per format, the raw names in two halves, at once."""
    cmds = []
    for fmt in ('raw', 'qcow2'):
        names = sorted(n for n, (f, _) in want.items() if f == fmt)
        for part in (names[:len(names) // 2], names[len(names) // 2:]):
            if part:
                cmds.append([GFPOOL_CLI, 'vol-record'] +
                            pool_opts(cluster, directory) +
                            ['--format', fmt] + part)
    for r in run_parallel(cmds):
        assert r.returncode == 0, r.stderr


def _listed(d, pool):
    return sorted(v.name() for v in
                  d.conn().storagePoolLookupByName(pool).listAllVolumes())


def _dumped(conn, pool, names):
    """{name: (format, capacity)} from each volume's XML (vol-dumpxml)."""
    p = conn.storagePoolLookupByName(pool)

    def one(name):
        root = ET.fromstring(p.storageVolLookupByName(name).XMLDesc(0))
        fmt = root.find('target/format')
        return name, (fmt.get('type') if fmt is not None else None,
                      int(root.findtext('capacity')))

    with ThreadPoolExecutor(4) as ex:
        return dict(ex.map(one, names))


_DETAILS = re.compile(r'^ (\S+)\s+(network|netdir)\s+(\S+)\s+(\d+ B|[\d.]+ \S+)'
                      r'\s+(\d+ B|[\d.]+ \S+)\s+(\S+)\s*$')


def _cli_details(cluster, directory):
    """{name: (format, capacity as gfpool prints it)} from gfpool vol-list
    --details."""
    out = gfpool_cli('vol-list', '--details', *pool_opts(cluster, directory),
                     timeout=120, check=0).stdout
    got = {}
    for line in out.splitlines()[2:]:
        m = _DETAILS.match(line)
        assert m, 'unparsed vol-list line %r' % line
        got[m.group(1)] = (m.group(3), m.group(4))
    return got


def _cli_info(cluster, directory, name):
    """(format, capacity as gfpool prints it) from gfpool vol-info."""
    out = gfpool_cli('vol-info', *pool_opts(cluster, directory), name,
                     check=0).stdout
    fmt = re.search(r'^Format:\s+(\S+)', out, re.M).group(1)
    cap = re.search(r'^Capacity:\s+(.+)$', out, re.M).group(1).strip()
    return fmt, cap


class _Writer(threading.Thread):
    """Runs `step` until told to stop; keeps what failed."""

    def __init__(self, name, step):
        super().__init__(name=name, daemon=True)
        self.step = step
        self.stop = threading.Event()
        self.errors = []
        self.ops = 0

    def run(self):
        while not self.stop.is_set():
            try:
                self.step()
                self.ops += 1
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.errors.append('%s: %r' % (self.name, e))


def test_two_hosts_list_what_a_third_writes(cluster, gfapi_rep3, make_libvirtd,
                                            unique_name, tmp_path):
    name = unique_name('two')
    directory = '/' + name
    gfapi_rep3.mkdir(directory)
    daemons = []
    try:
        t0 = time.monotonic()
        want = _populate(gfapi_rep3, directory, tmp_path)
        _record(cluster, directory, want)
        populate_s = time.monotonic() - t0

        hosts = [h for h, _ in cluster.volume_hosts('rep3')]
        xml = pool_xml(name, hosts, directory=directory)
        xml_path = tmp_path / 'pool.xml'
        xml_path.write_text(xml)

        def start(_):
            d = make_libvirtd()
            d.virsh('pool-define', str(xml_path))
            d.virsh('pool-start', name)
            return d

        with ThreadPoolExecutor(3) as ex:
            daemons.extend(ex.map(start, range(3)))
        a, b, c = daemons
        for d in (a, b):
            assert _listed(d, name) == sorted(want)

        # what the pool must hold: {name: (format, capacity)}, kept by the
        # writers as they go
        expect = dict(want)
        rng = random.Random(name)
        pre = sorted(want)
        rng.shuffle(pre)
        # the images each writer may delete: its own share, no races
        # between the two writers over one name
        cli_victims, lv_victims = pre[:300], pre[300:600]
        untouched = pre[600:]
        made = {'cli': [], 'lv': []}
        opts = pool_opts(cluster, directory)
        seq = iter(range(1 << 30))

        def cli_step():
            n = next(seq)
            op = n % 5
            if op in (0, 1):
                fmt = 'qcow2' if op else 'raw'
                new = 'cli%05d.%s' % (n, 'qcow2' if op else 'img')
                gfpool_cli('vol-create-as', *opts, '--format', fmt, new,
                           '%dM' % (1 + n % 9), check=0)
                expect[new] = (fmt, (1 + n % 9) * MiB)
                made['cli'].append(new)
            elif op == 2 and cli_victims:
                old = cli_victims.pop()
                gfpool_cli('vol-delete', *opts, old, check=0)
                del expect[old]
            elif op == 3 and made['cli']:
                old = made['cli'].pop()
                gfpool_cli('vol-delete', *opts, old, check=0)
                del expect[old]
            else:
                src = rng.choice(untouched)
                new = 'clone%05d-%s' % (n, src)
                gfpool_cli('vol-clone', *opts, '--quiet', src, new, check=0)
                expect[new] = want[src]
                made['cli'].append(new)

        cpool = c.conn().storagePoolLookupByName(name)

        def lv_step():
            n = next(seq)
            op = n % 3
            if op == 0:
                fmt = rng.choice(('raw', 'qcow2'))
                new = 'lv%05d.%s' % (n, fmt)
                cpool.createXML(
                    "<volume><name>%s</name><capacity unit='MiB'>%d</capacity>"
                    "<target><format type='%s'/></target></volume>"
                    % (new, 1 + n % 5, fmt), 0)
                expect[new] = (fmt, (1 + n % 5) * MiB)
                made['lv'].append(new)
            elif op == 1 and lv_victims or op == 2 and made['lv']:
                old = (lv_victims if op == 1 else made['lv']).pop()
                cpool.storageVolLookupByName(old).delete(0)
                del expect[old]

        refresh_errors = []
        temp_listed = []
        refreshes = {}

        def refresher(d):
            def step():
                r = d.virsh('pool-refresh', name, check=False, timeout=120)
                if r.returncode != 0:
                    refresh_errors.append('%r: rc=%d %s' % (d, r.returncode,
                                                            r.stderr.strip()))
                    return
                refreshes[d] = refreshes.get(d, 0) + 1
                temp_listed.extend(n for n in _listed(d, name)
                                   if n.startswith(TEMP_PREFIX))
            return step

        threads = [_Writer('cli-writer', cli_step),
                   _Writer('libvirt-writer', lv_step),
                   _Writer('refresh-a', refresher(a)),
                   _Writer('refresh-b', refresher(b))]
        for t in threads:
            t.start()
        time.sleep(WRITE_S)
        for t in threads[:2]:
            t.stop.set()
        for t in threads[:2]:
            t.join(120)
        for t in threads[2:]:
            t.stop.set()
        for t in threads[2:]:
            t.join(120)
        assert not any(t.is_alive() for t in threads)
        errors = sum((t.errors for t in threads), [])
        assert errors == [], errors
        assert refresh_errors == [], refresh_errors
        assert temp_listed == [], temp_listed
        assert threads[0].ops >= 5 and threads[1].ops >= 5, \
            [(t.name, t.ops) for t in threads]
        assert refreshes.get(a, 0) >= 2 and refreshes.get(b, 0) >= 2, refreshes

        entries = sorted(n for n in gfapi_rep3.listdir(directory)
                         if not n.startswith(TEMP_PREFIX))
        assert entries == sorted(expect), (
            'not deleted', sorted(set(entries) - set(expect)),
            'not created', sorted(set(expect) - set(entries)))
        assert entries != sorted(want)
        # gfpool's word: vol-list --details for all, vol-info for what the
        # writers made and a few of the rest (it prints capacities rounded)
        details = _cli_details(cluster, directory)
        assert details == {n: (f, human_size(cap)) for n, (f, cap) in expect.items()}
        sample = [n for n in entries if n not in want][:40] + \
            rng.sample([n for n in entries if n in want], 20)
        with ThreadPoolExecutor(4) as ex:
            info = dict(zip(sample, ex.map(
                lambda n: _cli_info(cluster, directory, n), sample)))
        assert info == {n: details[n] for n in sample}

        for d in (a, b):
            d.virsh('pool-refresh', name)
            listed = _listed(d, name)
            assert listed == entries, (
                d, 'ghosts', sorted(set(listed) - set(entries)),
                'missed', sorted(set(entries) - set(listed)))
            dumped = _dumped(d.conn(), name, listed)
            wrong = {n: (v, expect[n]) for n, v in dumped.items()
                     if v != expect[n]}
            assert wrong == {}, (d, wrong)
        print('populate %.1f s; writer ops cli %d libvirt %d; refreshes %s'
              % (populate_s, threads[0].ops, threads[1].ops,
                 sorted(refreshes.values())))
    finally:
        for d in daemons:
            d.virsh('pool-destroy', name, check=False)
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda n: gfapi_rep3.unlink('%s/%s' % (directory, n),
                                                    missing_ok=True),
                        gfapi_rep3.listdir(directory)))
        gfapi_rep3.rmtree(directory)
