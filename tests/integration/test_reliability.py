# SPDX-License-Identifier: LGPL-2.1-or-later
"""Issue 7: reliability. Every test runs its own private libvirtd
(make_libvirtd), because what it does to the servers may hang or crash the
daemon; the session daemon of the other tests is never involved.

1. A node (glusterd + bricks of node 3) killed in the middle of vol-create-as
   (4 GiB qcow2, metadata preallocated), vol-upload (64 MiB), vol-clone
   (64 MiB raw) and pool-refresh (2,000 images) on the replica-3 volume: the
   call succeeds or fails with a clear error; once the node is back, every
   image that was reported created is intact (local copy through
   vol-download: qemu-img check, sha256) and nothing half-written is listed
   or left in the directory. This is checked while GlusterFS still heals, as
   a user would use the volume: its self-heal copies a file with holes
   128 KiB at a time, ~2 min for the 4 GiB preallocated image here
   (docs/reliability.md); the pool's directory is deleted before the wait
   for the heal that the next test needs.
2. Servers gone: every host down -> pool-start fails fast naming the hosts;
   a started pool whose servers all died -> every verb returns in seconds,
   pool-destroy at once; the bricks of rep3 frozen (SIGSTOP) -> calls on a
   rep3 pool fail within gfapi's 4 s ping-timeout (x2) while a pool of the
   same daemon on the `single` volume answers in < 1 s, and the rep3 pools
   work again without a daemon restart once the bricks run.
3. libvirtd restarted after a "reboot" (empty /run): autostart pools come
   back started with their volumes, others stay inactive; an autostart pool
   whose only server never answers costs the daemon's start no more than the
   connect deadline.
4. Concurrency: 8 clients (4 python-libvirt threads, 4 gfpool CLI workers)
   doing 200 creates, clones and deletes of distinct volumes in one pool
   while pool-refresh runs in a loop; same-name creates racing (exactly one
   wins); libvirtd's fd count and RSS over repeated create/delete rounds.
5. Hostile directory entries (newline, quotes, '<', '&', 255 bytes, control
   characters, invalid UTF-8, symlinks out of the pool / looping / dangling,
   a directory, a FIFO, empty and 1-byte files): refresh succeeds, every XML
   printed is well-formed, nothing outside the pool directory changes, the
   daemon stays up.

Heal completion is read from `heal VOL statistics heal-count`
(testbed.Cluster.wait_healed).
"""

import json
import os
import re
import signal
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

import libvirt
import pytest
import testbed

from testbed.pools import (GFPOOL_CLI, TEMP_PREFIX, GlusterPool, SilentListener,
                     define_pool, pool_opts, pool_xml, qemu_img,
                     qemu_img_info, sha256_file, vol_xml_doc)

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

HEAL_TIMEOUT = 90


# ---- helpers -------------------------------------------------------------------

@pytest.fixture
def cleanups(make_libvirtd):
    """Callables run after the test even when it failed half-way (before
    make_libvirtd stops the daemons): pools' cleanup, directories."""
    todo = []
    yield todo
    for f in reversed(todo):
        try:
            f()
        except Exception as e:      # pragma: no cover
            print('cleanup %r failed: %s' % (f, e))


def virsh_argv(d, *args):
    return ['virsh', '-q', '-c', d.uri] + [str(a) for a in args]


def _env():
    env = dict(os.environ, LC_ALL='C')
    env.pop('LIBVIRT_DEFAULT_URI', None)
    return env


def timed_virsh(d, *args, timeout=60):
    """-> (CompletedProcess, seconds); never raises on failure."""
    t0 = time.monotonic()
    r = d.virsh(*args, check=False, timeout=timeout)
    return r, time.monotonic() - t0


def popen_virsh(d, *args):
    # SIGPIPE ignored, as testbed.Libvirtd.virsh runs virsh
    return subprocess.Popen(virsh_argv(d, *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True,
                            env=_env(), restore_signals=False)


def finish(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)




def download(d, pool, vol, local):
    d.virsh('vol-download', '--pool', pool, vol, str(local), '--sparse',
            timeout=180)
    return str(local)


def qemu_img_check(path, fmt='qcow2'):
    r = qemu_img('check', '-f', fmt, path)
    assert r.returncode == 0, 'qemu-img check %s: rc=%d\n%s%s' % (
        path, r.returncode, r.stdout, r.stderr)
    return r.stdout


def wait_healed(cluster, volume='rep3', timeout=HEAL_TIMEOUT):
    """-> seconds until no brick of `volume` has entries waiting for heal
    (the cluster's heal_diagnosis on failure)."""
    try:
        return cluster.wait_healed([volume], timeout=timeout)
    except testbed.TestbedError as e:
        pytest.fail(str(e))


def wait_gfapi(gfapi, path, timeout=60):
    """The tests' own connection answers again after servers came back."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return gfapi.listdir(path)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def rmtree_parallel(gfapi, directory, workers=8):
    """Remove a big flat directory with a few threads (gfapi is
    thread-safe; one unlink on rep3 costs ~3 ms)."""
    try:
        names = gfapi.listdir(directory)
    except FileNotFoundError:
        return
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(lambda n: gfapi.rmtree('%s/%s' % (directory, n)), names))
    gfapi.rmtree(directory)


def listed_formats(d, pool):
    """{name: (format, capacity)} of every volume libvirtd lists (no
    refresh), from each volume's XML."""
    out = {}
    p = d.conn().storagePoolLookupByName(pool)
    for v in p.listAllVolumes():
        doc = vol_xml_doc(v.XMLDesc(0))
        out[v.name()] = (doc['format'], doc['capacity'])
    return out


def clear_error(r, *words):
    """A failed virsh call: exit 1 and an 'error:' line that says
    something (not libvirt's 'unknown error')."""
    assert r.returncode == 1, (r.args, r.returncode, r.stdout, r.stderr)
    assert 'error:' in r.stderr and 'unknown' not in r.stderr.lower(), \
        r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)


def xml_well_formed(xml_bytes, what, tmp_path):
    path = str(tmp_path / 'check.xml')
    with open(path, 'wb') as f:
        f.write(xml_bytes)
    r = subprocess.run(['xmllint', '--noout', path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    assert r.returncode == 0, '%s: XML not well-formed: %s\n%r' % (
        what, r.stderr.decode('utf-8', 'replace'), xml_bytes[:600])


def proc_status(pid):
    """(open fds, VmRSS in bytes) of a process."""
    fds = len(os.listdir('/proc/%d/fd' % pid))
    with open('/proc/%d/status' % pid) as f:
        rss = int(re.search(r'^VmRSS:\s+(\d+) kB', f.read(), re.M).group(1))
    return fds, rss * KiB


# ---- 1. a node killed in the middle of an operation ----------------------------

def _temp_file_seen(gfapi, directory):
    return any(n.startswith(TEMP_PREFIX) for n in gfapi.listdir(directory))


def _run_and_kill(cluster, proc, trigger, node=3, timeout=60):
    """While `proc` runs, poll trigger(); when it is true, kill `node`.
    -> seconds after which the node was killed, or None if proc ended
    first (then nothing was killed)."""
    t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < timeout:
        if trigger(t0):
            if proc.poll() is not None:
                return None
            cluster.stop_node(node)
            return time.monotonic() - t0
        time.sleep(0.002)
    return None


KILL_OPS = ['create-qcow2-prealloc', 'upload', 'clone', 'refresh']


@pytest.mark.parametrize('op', KILL_OPS)
def test_node_killed_mid_operation(op, make_libvirtd, cluster, gfapi_rep3,
                                   unique_name, tmp_path):
    # one node failure at a time: a node killed while rep3 still heals
    # another's absence is a double failure GlusterFS need not heal
    wait_healed(cluster)
    d = make_libvirtd()
    p = GlusterPool(d, cluster, gfapi_rep3, unique_name('kill'), tmp_path)
    try:
        _node_killed(op, d, p, cluster, gfapi_rep3, tmp_path)
    finally:
        cluster.start_stopped_nodes()
        d.virsh('pool-destroy', p.name, check=False)
        rmtree_parallel(gfapi_rep3, p.dir)


def _kill_while_publishing(d, p, cluster, gfapi, name_fmt, argv):
    """Run `virsh argv(name)` for fresh names until a node gets killed
    while the volume's temp file exists (at most 6 tries); a try that ends
    before that must succeed, and its volume is deleted.
    -> (name, result, killed_at or None, tries)"""
    for attempt in range(6):
        name = name_fmt % attempt
        proc = popen_virsh(d, *argv(name))
        killed_at = _run_and_kill(cluster, proc,
                                  lambda t0: _temp_file_seen(gfapi, p.dir))
        r = finish(proc)
        if killed_at is not None:
            break
        assert r.returncode == 0, r.stderr
        d.virsh('vol-delete', '--pool', p.name, name)
    return name, r, killed_at, attempt + 1


def _node_killed(op, d, p, cluster, gfapi_rep3, tmp_path):
    killed_at = None
    report = {'op': op}
    try:
        expected = {}     # name -> what must hold afterwards
        if op == 'create-qcow2-prealloc':
            # 0.1 s on rep3: the node dies once the temp file exists, i.e.
            # while the image is being written; retried until that happens.
            name, r, killed_at, report['attempts'] = _kill_while_publishing(
                d, p, cluster, gfapi_rep3, 'big%d.qcow2',
                lambda n: ('vol-create-as', p.name, n, '4G', '--format',
                           'qcow2', '--prealloc-metadata'))
            if r.returncode == 0:
                expected[name] = ('qcow2', 4 * GiB, None)
        elif op == 'upload':
            local = str(tmp_path / 'up.bin')
            with open(local, 'wb') as f:
                f.write(os.urandom(64 * MiB))
            name = 'up.img'
            d.virsh('vol-create-as', p.name, name, '64M', '--format', 'raw')
            proc = popen_virsh(d, 'vol-upload', '--pool', p.name, name, local)
            killed_at = _run_and_kill(
                cluster, proc, lambda t0: time.monotonic() - t0 > 0.2)
            r = finish(proc)
            if r.returncode != 0:
                # the volume existed before; a failed upload may leave it
                # partly written: it must take a second upload
                report['reupload'] = True
            expected[name] = ('raw', 64 * MiB, sha256_file(local))
        elif op == 'clone':
            local = str(tmp_path / 'src.bin')
            with open(local, 'wb') as f:
                f.write(os.urandom(64 * MiB))
            d.virsh('vol-create-as', p.name, 'src.img', '64M', '--format',
                    'raw')
            d.virsh('vol-upload', '--pool', p.name, 'src.img', local,
                    timeout=120)
            digest = sha256_file(local)
            expected['src.img'] = ('raw', 64 * MiB, digest)
            name, r, killed_at, report['attempts'] = _kill_while_publishing(
                d, p, cluster, gfapi_rep3, 'clone%d.img',
                lambda n: ('vol-clone', '--pool', p.name, 'src.img', n))
            if r.returncode == 0:
                expected[name] = ('raw', 64 * MiB, digest)
        else:
            seed = str(tmp_path / 'seed.qcow2')
            subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o',
                            'cluster_size=512', seed, '1M'], check=True)
            with open(seed, 'rb') as f:
                data = f.read()
            names = ['img%04d.qcow2' % i for i in range(2000)]
            t0 = time.monotonic()
            with ThreadPoolExecutor(8) as ex:
                list(ex.map(lambda n: gfapi_rep3.put(p.path(n), data), names))
            report['put_2000_s'] = round(time.monotonic() - t0, 2)
            for n in names:
                expected[n] = ('qcow2', MiB, None)
            name = None
            proc = popen_virsh(d, 'pool-refresh', p.name)
            killed_at = _run_and_kill(
                cluster, proc, lambda t0: time.monotonic() - t0 > 0.3)
            r = finish(proc)
        report['killed_at_s'] = killed_at and round(killed_at, 3)
        report['rc'] = r.returncode
        report['stderr'] = r.stderr.strip()
        assert killed_at is not None, (
            'the operation ended before node 3 could be killed: %s' % report)
        if r.returncode != 0:
            clear_error(r)
    finally:
        t0 = time.monotonic()
        cluster.start_stopped_nodes()
        report['node_restart_s'] = round(time.monotonic() - t0, 2)

    if op == 'refresh':
        if r.returncode != 0:
            # libvirt stops (and forgets, transient) a pool whose refresh
            # failed: start it again
            if p.name not in d.virsh('pool-list', '--name').stdout:
                d.virsh('pool-create', p.xml_path)
        d.virsh('pool-refresh', p.name, timeout=120)
    elif op == 'upload' and r.returncode != 0:
        d.virsh('vol-upload', '--pool', p.name, 'up.img', local, timeout=120)
    else:
        p.refresh()

    assert p.temp_files() == [], (p.temp_files(), report)
    listed = listed_formats(d, p.name)
    assert sorted(listed) == sorted(expected), (
        'listed %s, expected %s' % (sorted(listed)[:10], sorted(expected)[:10]))
    for n, (fmt, cap, _) in expected.items():
        assert listed[n] == (fmt, cap), (n, listed[n])
    if op == 'create-qcow2-prealloc' and name not in expected:
        assert name not in p.files()
    sample = list(expected)
    if op == 'refresh':
        sample = [sample[0], sample[999], sample[-1]]
    for n in sample:
        fmt, cap, digest = expected[n]
        local = download(d, p.name, n, tmp_path / ('dl-' + n))
        if fmt == 'raw':
            assert os.path.getsize(local) == cap, n
        else:
            qemu_img_check(local)
            assert qemu_img_info(local, 'qcow2')['virtual-size'] == cap
        if digest:
            assert sha256_file(local) == digest, n
        os.unlink(local)
    print('\nRELIABILITY %s' % report)


# ---- 2. every server unreachable ---------------------------------------------

def test_all_servers_down(make_libvirtd, cleanups, cluster, gfapi_rep3,
                          unique_name, tmp_path):
    """(a) pool-start with every host down fails in <= 10 s naming every
    host; (b) a started pool whose servers all died: each verb answers in
    <= 10 s, pool-destroy in < 2 s, the daemon stays responsive; everything
    works again once the servers are back, without a daemon restart."""
    d = make_libvirtd()
    a = GlusterPool(d, cluster, gfapi_rep3, unique_name('dna'), tmp_path)
    c = GlusterPool(d, cluster, gfapi_rep3, unique_name('dnc'), tmp_path)
    # k stays started and untouched while the servers are away
    k = GlusterPool(d, cluster, gfapi_rep3, unique_name('dnk'), tmp_path)
    b_name = unique_name('dnb')
    b_dir = '/' + b_name
    gfapi_rep3.mkdir(b_dir)
    cleanups += [a.cleanup, c.cleanup, k.cleanup,
                 lambda: gfapi_rep3.rmtree(b_dir)]
    define_pool(d, tmp_path, pool_xml(b_name, cluster.addresses,
                                      directory=b_dir))
    d.virsh('vol-create-as', a.name, 'keep.img', '1M')
    d.virsh('vol-create-as', c.name, 'keep.img', '1M')
    times = {}
    try:
        for i in range(1, cluster.nodes + 1):
            cluster.stop_node(i)

        # (a) nothing answers: refused connections, no hang
        r, times['pool-start'] = timed_virsh(d, 'pool-start', b_name)
        clear_error(r, *cluster.addresses)
        assert times['pool-start'] <= 10

        # (b) the started pool a
        r, times['vol-list'] = timed_virsh(d, 'vol-list', a.name)
        # libvirt answers vol-list from its own list: no backend call
        assert r.returncode == 0 and r.stdout.split()[0] == 'keep.img', r
        r, times['vol-info'] = timed_virsh(d, 'vol-info', '--pool', a.name,
                                           'keep.img')
        clear_error(r, 'keep.img')
        r, times['vol-create-as'] = timed_virsh(d, 'vol-create-as', a.name,
                                                'new.img', '1M')
        clear_error(r, 'new.img')
        r, times['vol-delete'] = timed_virsh(d, 'vol-delete', '--pool',
                                             a.name, 'keep.img')
        clear_error(r, 'keep.img')
        r, times['pool-list'] = timed_virsh(d, 'pool-list', '--all')
        assert r.returncode == 0
        r, times['pool-destroy'] = timed_virsh(d, 'pool-destroy', a.name)
        assert r.returncode == 0, r.stderr
        # the refresh of pool c fails; libvirt then stops the pool (and,
        # being transient, forgets it)
        r, times['pool-refresh'] = timed_virsh(d, 'pool-refresh', c.name)
        clear_error(r)
        assert c.name not in d.virsh('pool-list', '--all', '--name').stdout
        assert d.alive()
        for verb, t in times.items():
            assert t <= (2 if verb in ('pool-destroy', 'pool-list', 'vol-list')
                         else 10), (verb, times)
    finally:
        t0 = time.monotonic()
        cluster.start_stopped_nodes()
        times['restart-nodes'] = time.monotonic() - t0
    try:
        wait_gfapi(gfapi_rep3, a.dir)
        # the kept connection of k finds the restarted servers (new brick
        # ports) by itself
        r, times['first call on kept pool'] = timed_virsh(
            d, 'vol-create-as', k.name, 'after.img', '1M')
        assert r.returncode == 0, r.stderr
        assert k.listed() == ['after.img']
        # back: the defined pool starts, the destroyed one can be created
        # again and still has its volume, nothing half-made is there
        r, t = timed_virsh(d, 'pool-start', b_name, timeout=60)
        assert r.returncode == 0, r.stderr
        d.virsh('pool-create', a.xml_path)
        assert a.listed() == ['keep.img']
        assert a.temp_files() == [] and 'new.img' not in a.files()
        d.virsh('vol-create-as', a.name, 'new.img', '1M')
        assert a.listed() == ['keep.img', 'new.img']
        print('\nRELIABILITY all-down %s' % {k: round(v, 2)
                                             for k, v in times.items()})
    finally:
        d.virsh('pool-destroy', b_name, check=False)
        d.virsh('pool-undefine', b_name, check=False)


def _rep3_brick_pids(cluster):
    pids = []
    for i in range(1, cluster.nodes + 1):
        for pid in cluster.node_pids(i):
            try:
                with open('/proc/%d/cmdline' % pid, 'rb') as f:
                    cl = f.read().split(b'\0')
            except OSError:
                continue
            if cl[0].endswith(b'glusterfsd') and any(
                    b'bricks/rep3' in a for a in cl):
                pids.append(pid)
    return pids


def test_hung_bricks_do_not_block_other_pools(make_libvirtd, cleanups,
                                              cluster, gfapi_rep3,
                                              gfapi_single, unique_name,
                                              tmp_path):
    """rep3's bricks frozen (SIGSTOP: connections stay open, nothing
    answers): rep3 calls fail within gfapi's ping-timeout (4 s, set by the
    module) while a pool on `single` in the same daemon answers at once;
    after SIGCONT the rep3 pools work again without a daemon restart."""
    d = make_libvirtd()
    r3 = GlusterPool(d, cluster, gfapi_rep3, unique_name('hr'), tmp_path)
    r3b = GlusterPool(d, cluster, gfapi_rep3, unique_name('hrb'), tmp_path)
    s = GlusterPool(d, cluster, gfapi_single, unique_name('hs'), tmp_path,
                    volume='single')
    cleanups += [r3.cleanup, r3b.cleanup, s.cleanup]
    for p in (r3, r3b, s):
        d.virsh('vol-create-as', p.name, 'keep.img', '1M')
    pids = _rep3_brick_pids(cluster)
    assert len(pids) == 3, pids
    times = {}
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        t0 = time.monotonic()
        refresh = popen_virsh(d, 'pool-refresh', r3.name)
        # (vol-info could be answered from gfapi's attribute cache for a
        # moment; a create has to reach the bricks)
        info = popen_virsh(d, 'vol-create-as', r3b.name, 'hung.img', '1M')
        time.sleep(1)
        for args in (('vol-list', s.name), ('pool-refresh', s.name),
                     ('vol-info', '--pool', s.name, 'keep.img'),
                     ('vol-create-as', s.name, 'during.img', '1M')):
            r, t = timed_virsh(d, *args)
            times[args[0] + ' single'] = t
            assert r.returncode == 0, (args, r.stderr)
            assert t < 1, (args, t)
        assert refresh.poll() is None and info.poll() is None, \
            'rep3 calls did not wait for the frozen bricks'
        # pool-list locks every pool object in turn, and libvirt holds a
        # pool's lock for the whole of its refresh: it waits for the rep3
        # refresh, whose deadline bounds it (libvirt's design, not ours)
        r, t = timed_virsh(d, 'pool-list', '--all')
        times['pool-list'] = t
        assert r.returncode == 0 and t <= 10, (r.stderr, t)
        rr = finish(refresh, timeout=60)
        times['pool-refresh rep3'] = time.monotonic() - t0
        ri = finish(info, timeout=60)
        times['vol-create-as rep3'] = time.monotonic() - t0
        clear_error(rr)
        clear_error(ri, 'hung.img')
        assert times['pool-refresh rep3'] <= 10, times
        assert times['vol-create-as rep3'] <= 10, times
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    # r3's failed refresh stopped it (libvirt does that) and, transient,
    # it is gone: created again it works. r3b stayed active: its kept
    # connection serves the next call.
    assert r3.name not in d.virsh('pool-list', '--all', '--name').stdout
    t0 = time.monotonic()
    r, times['vol-info rep3 after'] = timed_virsh(
        d, 'vol-info', '--pool', r3b.name, 'keep.img')
    first = r
    deadline = time.monotonic() + 30
    while r.returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        r = d.virsh('vol-info', '--pool', r3b.name, 'keep.img',
                    check=False)
    times['rep3 recovered after'] = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    d.virsh('pool-create', r3.xml_path)
    assert r3.listed() == ['keep.img']
    assert r3b.listed() == ['keep.img']
    # the create that timed out left nothing, also once the bricks
    # have worked off what was queued for them
    time.sleep(2)
    assert r3b.files() == ['keep.img'], r3b.files()
    d.virsh('vol-create-as', r3b.name, 'after.img', '1M')
    assert r3b.listed() == ['after.img', 'keep.img']
    print('\nRELIABILITY hung %s first-call-after=%s' % (
        {k: round(v, 2) for k, v in times.items()},
        first.returncode == 0 or first.stderr.strip()))
    assert first.returncode == 0, (
        'first call after the bricks resumed failed: %s' % first.stderr)


def test_hung_bricks_do_not_stall_the_event_loop(make_libvirtd, cleanups,
                                                cluster, gfapi_rep3,
                                                unique_name, tmp_path):
    """An upload whose bricks freeze (SIGSTOP) before its client finishes:
    libvirtd's event loop, which runs the daemon's part of the finish,
    never waits on them, so other clients (`pool-list`, `pool-dumpxml` of
    the same pool; the daemon has no `version` on a storage:/// URI)
    answer in < 1 s; the upload then ends with GlusterFS's error, and the
    pool works once the bricks run."""
    d = make_libvirtd()
    p = GlusterPool(d, cluster, gfapi_rep3, unique_name('el'), tmp_path)
    cleanups.append(p.cleanup)
    d.virsh('vol-create-as', p.name, 'up.img', '16M')
    conn = libvirt.open(d.uri)
    vol = conn.storagePoolLookupByName(p.name).storageVolLookupByName(
        'up.img')
    st = conn.newStream(0)
    vol.upload(st, 0, 0, 0)
    # more than one of the pump's 4 MiB writes, and a partial one that
    # only the end of the stream (or an idle stream) writes out
    data = os.urandom(6 * MiB + 12345)
    sent = 0
    while sent < len(data):
        sent += st.send(data[sent:sent + 256 * KiB])
    pids = _rep3_brick_pids(cluster)
    assert len(pids) == 3, pids
    outcome = {}

    def finish_upload():
        t0 = time.monotonic()
        try:
            st.finish()
            outcome['result'] = 'ok'
        except libvirt.libvirtError as e:
            outcome['result'] = str(e)
        outcome['seconds'] = time.monotonic() - t0

    worst = {'pool-list': 0.0, 'pool-dumpxml': 0.0}
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        finisher = threading.Thread(target=finish_upload, daemon=True)
        finisher.start()
        # gfapi's ping-timeout (4 s) ends the frozen calls; measure before
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            for verb in worst:
                r, t = timed_virsh(d, verb, *([p.name] if verb ==
                                              'pool-dumpxml' else []),
                                   timeout=30)
                assert r.returncode == 0, r.stderr
                worst[verb] = max(worst[verb], t)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    finisher.join(60)
    assert not finisher.is_alive(), 'the upload never ended'
    print('\nRELIABILITY event loop worst=%s upload=%s' % (
        {k: round(v, 2) for k, v in worst.items()}, outcome))
    assert max(worst.values()) < 1, worst
    assert d.alive()
    # the finish gave up on the frozen bricks at once, saying so
    assert outcome['seconds'] < 2, outcome
    assert 'not confirmed' in outcome['result'] or \
        'Transport endpoint' in outcome['result'], outcome
    # libvirt's refresh after the upload failed and emptied the volume
    # list; with the bricks back, the upload's writes land and the next
    # refresh and upload work
    time.sleep(2)
    assert 'up.img' in p.listed()
    d.virsh('vol-upload', '--pool', p.name, 'up.img', '/dev/null')


# ---- 3. libvirtd restarted ---------------------------------------------------

def test_autostart_after_reboot(make_libvirtd, cluster, gfapi_rep3,
                                unique_name, tmp_path):
    """After a "reboot" (libvirtd restarted with an empty /run/libvirt, so
    it remembers no active pool), the autostart pool is started by
    autostart with its volumes; a pool without autostart stays inactive;
    an autostart pool whose only server accepts and never answers stays
    inactive and delays the daemon's start by no more than the connect
    deadline."""
    d = make_libvirtd()
    auto, manual, dead = (unique_name('aut'), unique_name('man'),
                          unique_name('ded'))
    silent = SilentListener('127.0.0.1')
    for n in (auto, manual):
        gfapi_rep3.mkdir('/' + n)
        x = tmp_path / (n + '.xml')
        x.write_text(pool_xml(n, cluster.addresses, directory='/' + n))
        d.virsh('pool-define', str(x))
        d.virsh('pool-start', n)
        d.virsh('vol-create-as', n, 'a.qcow2', '1G', '--format', 'qcow2')
        d.virsh('vol-create-as', n, 'b.img', '1M')
    x = tmp_path / (dead + '.xml')
    x.write_text(pool_xml(dead, ['127.0.0.1'], directory='/x',
                          port=silent.port))
    d.virsh('pool-define', str(x))
    d.virsh('pool-autostart', auto)
    d.virsh('pool-autostart', dead)
    try:
        t0 = time.monotonic()
        d.restart(reboot=True)
        start_s = time.monotonic() - t0
        assert d.last_exit == 0, d.last_exit
        info = d.virsh('pool-info', auto).stdout
        assert re.search(r'State:\s+running', info), info
        assert re.search(r'Autostart:\s+yes', info), info
        assert sorted(d.conn().storagePoolLookupByName(auto).listVolumes()) \
            == ['a.qcow2', 'b.img']
        fmts = listed_formats(d, auto)
        assert fmts == {'a.qcow2': ('qcow2', GiB), 'b.img': ('raw', MiB)}
        info = d.virsh('pool-info', manual).stdout
        assert re.search(r'State:\s+inactive', info), info
        info = d.virsh('pool-info', dead).stdout
        assert re.search(r'State:\s+inactive', info), info
        # the daemon's start waited for the dead pool's connect deadline,
        # not for ever
        assert start_s < 15, start_s
        # and works on
        d.virsh('vol-create-as', auto, 'c.img', '1M')
        d.virsh('pool-start', manual)
        assert sorted(d.conn().storagePoolLookupByName(manual).listVolumes()) \
            == ['a.qcow2', 'b.img']
        print('\nRELIABILITY autostart restart %.2f s' % start_s)
    finally:
        silent.close()
        for n in (auto, manual, dead):
            d.virsh('pool-destroy', n, check=False)
            d.virsh('pool-undefine', n, check=False)
        for n in (auto, manual):
            gfapi_rep3.rmtree('/' + n)


# ---- 4. concurrency ------------------------------------------------------------

def _vol_xml(name, fmt, cap):
    return ("<volume><name>%s</name><capacity unit='bytes'>%d</capacity>"
            "<target><format type='%s'/></target></volume>" % (name, cap, fmt))


RAW_CAP = MiB
QCOW2_CAP = 16 * MiB
OPS_PER_CLIENT = 25     # 8 clients: 200 operations


class Ledger:
    """What every client did, and what must therefore be in the pool."""

    def __init__(self):
        self.lock = threading.Lock()
        self.present = {}       # name -> (format, capacity)
        self.deleted = set()
        self.ops = []           # (client, verb, name, seconds)
        self.errors = []

    def done(self, client, verb, name, secs, fmt=None, cap=None):
        with self.lock:
            self.ops.append((client, verb, name, secs))
            if verb == 'delete':
                del self.present[name]
                self.deleted.add(name)
            else:
                assert name not in self.present and name not in self.deleted, \
                    'name %s used twice' % name
                self.present[name] = (fmt, cap)

    def failed(self, client, verb, name, msg):
        with self.lock:
            self.errors.append((client, verb, name, msg))


def _plan(client):
    """25 operations on the client's own names, in cycles of create raw,
    create qcow2, clone raw, clone qcow2, delete raw (the last cycle is
    cut short)."""
    ops = []
    c = 0
    while len(ops) < OPS_PER_CLIENT:
        a, b = '%s-%d.img' % (client, c), '%s-%d.qcow2' % (client, c)
        ops += [('create', a, 'raw', RAW_CAP, None),
                ('create', b, 'qcow2', QCOW2_CAP, None),
                ('clone', '%s-%d-clone.img' % (client, c), 'raw', RAW_CAP, a),
                ('clone', '%s-%d-clone.qcow2' % (client, c), 'qcow2',
                 QCOW2_CAP, b),
                ('delete', a, None, None, None)]
        c += 1
    return ops[:OPS_PER_CLIENT]


def _py_client(d, pool_name, client, ledger):
    conn = libvirt.open(d.uri)
    try:
        pool = conn.storagePoolLookupByName(pool_name)
        for verb, name, fmt, cap, src in _plan(client):
            t0 = time.monotonic()
            try:
                if verb == 'create':
                    pool.createXML(_vol_xml(name, fmt, cap), 0)
                elif verb == 'clone':
                    pool.createXMLFrom(_vol_xml(name, fmt, cap),
                                       pool.storageVolLookupByName(src), 0)
                else:
                    pool.storageVolLookupByName(name).delete(0)
            except libvirt.libvirtError as e:
                ledger.failed(client, verb, name, str(e))
                continue
            ledger.done(client, verb, name, time.monotonic() - t0, fmt, cap)
    finally:
        conn.close()


def _cli(p, *args):
    return subprocess.run(
        [GFPOOL_CLI] + [str(a) for a in args[:1]] +
        pool_opts(p.cluster, p.dir, p.volume) + [str(a) for a in args[1:]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, timeout=120, env=dict(os.environ, LC_ALL='C'))


def _cli_client(p, client, ledger):
    for verb, name, fmt, cap, src in _plan(client):
        t0 = time.monotonic()
        if verb == 'create':
            r = _cli(p, 'vol-create-as', name, cap, '--format', fmt)
        elif verb == 'clone':
            r = _cli(p, 'vol-clone', src, name)
        else:
            r = _cli(p, 'vol-delete', name)
        if r.returncode != 0:
            ledger.failed(client, verb, name, 'rc=%d %s' % (r.returncode,
                                                           r.stderr.strip()))
            continue
        ledger.done(client, verb, name, time.monotonic() - t0, fmt, cap)


ASYNC_JOBS = 'has asynchronous jobs running'


def _refresher(d, pool_name, stop, counts):
    conn = libvirt.open(d.uri)
    try:
        pool = conn.storagePoolLookupByName(pool_name)
        while not stop.is_set():
            try:
                pool.refresh(0)
                counts['ok'] += 1
            except libvirt.libvirtError as e:
                # libvirt refuses to refresh a pool while a volume is being
                # built in it: that is the one acceptable failure
                if ASYNC_JOBS in str(e):
                    counts['busy'] += 1
                else:
                    counts['failed'].append(str(e))
                    return
            time.sleep(0.05)
    finally:
        conn.close()


def _fail_stuck(d, what, stuck):
    """An explicit failure for clients that did not finish in time (a call
    that never returns is a daemon that stalls): which ones, and what every
    thread of the daemon was doing."""
    pytest.fail('%s: %s did not finish in time (stuck in libvirtd?)\n'
                '--- libvirtd thread stacks ---\n%s\n--- libvirtd log ---\n%s'
                % (what, ', '.join(stuck), d.thread_stacks(), d.log_tail(40)),
                pytrace=False)


def _join_all(d, what, threads, timeout):
    """Join threads within one shared deadline; fail naming the ones still
    running. Threads are daemons: a stuck one cannot hold up the run."""
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        _fail_stuck(d, what, stuck)


def _race(d, p, kinds, name, py_delay=0.0):
    """Two clients create `name` at the same moment, one raw 1 MiB, the
    other qcow2 2 MiB; a python client waits py_delay first (a CLI process
    needs some 20-50 ms to connect). -> [(kind, fmt, cap, ok, error)]"""
    barrier = threading.Barrier(len(kinds), timeout=60)
    out = [None] * len(kinds)
    errors = []
    specs = [('raw', MiB), ('qcow2', 2 * MiB)]

    def run(i, kind):
        try:
            _race_client(i, kind)
        except BaseException as e:
            barrier.abort()
            errors.append('%s #%d: %r' % (kind, i, e))

    def _race_client(i, kind):
        fmt, cap = specs[i]
        if kind == 'py':
            conn = libvirt.open(d.uri)
            pool = conn.storagePoolLookupByName(p.name)
            barrier.wait()
            time.sleep(py_delay)
            try:
                pool.createXML(_vol_xml(name, fmt, cap), 0)
                out[i] = (kind, fmt, cap, True, '')
            except libvirt.libvirtError as e:
                assert e.get_error_code() == libvirt.VIR_ERR_STORAGE_VOL_EXIST, e
                out[i] = (kind, fmt, cap, False, str(e))
            finally:
                conn.close()
        else:
            argv = [GFPOOL_CLI, 'vol-create-as'] + pool_opts(
                p.cluster, p.dir, p.volume) + [name, str(cap), '--format', fmt]
            barrier.wait()
            r = subprocess.run(argv, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, universal_newlines=True,
                               timeout=60)
            assert r.returncode in (0, 4), r.stderr
            out[i] = (kind, fmt, cap, r.returncode == 0, r.stderr.strip())

    threads = [threading.Thread(target=run, args=(i, k), daemon=True,
                                name='%s client #%d creating %s' % (k, i, name))
               for i, k in enumerate(kinds)]
    for t in threads:
        t.start()
    _join_all(d, 'same-name race on %s' % name, threads, 90)
    assert not errors, errors
    return out


def test_concurrent_clients(make_libvirtd, cluster, gfapi_rep3, unique_name,
                            tmp_path):
    d = make_libvirtd()
    p = GlusterPool(d, cluster, gfapi_rep3, unique_name('cc'), tmp_path)
    try:
        ledger = Ledger()
        stop = threading.Event()
        counts = {'ok': 0, 'busy': 0, 'failed': []}
        refresher = threading.Thread(target=_refresher,
                                     args=(d, p.name, stop, counts),
                                     daemon=True, name='pool-refresh loop')
        workers = [threading.Thread(target=_py_client,
                                    args=(d, p.name, 'py%d' % i, ledger),
                                    daemon=True, name='python client py%d' % i)
                   for i in range(4)]
        workers += [threading.Thread(target=_cli_client,
                                     args=(p, 'cli%d' % i, ledger),
                                     daemon=True, name='CLI client cli%d' % i)
                    for i in range(4)]
        t0 = time.monotonic()
        refresher.start()
        for w in workers:
            w.start()
        try:
            _join_all(d, 'concurrent create/clone/delete', workers, 300)
        finally:
            stop.set()
        _join_all(d, 'pool-refresh loop', [refresher], 60)
        elapsed = time.monotonic() - t0
        assert ledger.errors == [], ledger.errors[:5]
        assert len(ledger.ops) == 8 * OPS_PER_CLIENT
        assert counts['failed'] == [], counts['failed'][:3]
        assert counts['ok'] > 0, counts

        # same-name races: exactly one creator wins
        races = []
        for i, (kinds, delay) in enumerate([
                (('py', 'cli'), 0), (('cli', 'py'), 0.02),
                (('py', 'cli'), 0.04), (('cli', 'py'), 0.06),
                (('py', 'py'), 0), (('cli', 'cli'), 0),
                (('py', 'py'), 0), (('cli', 'cli'), 0)]):
            name = 'race%d.img' % i
            res = _race(d, p, kinds, name, delay)
            winners = [x for x in res if x[3]]
            assert len(winners) == 1, res
            for x in res:
                if not x[3]:
                    assert ('already exists' in x[4] or
                            'exists already' in x[4]), res
            ledger.present[name] = winners[0][1:3]
            races.append((kinds, winners[0][0]))

        # afterwards: exactly the volumes that were reported created and
        # not deleted, each of the format and size it was made with
        assert p.temp_files() == []
        p.refresh()
        listed = listed_formats(d, p.name)
        assert sorted(listed) == sorted(ledger.present), (
            set(listed) ^ set(ledger.present))
        for n, want in ledger.present.items():
            assert listed[n] == want, (n, listed[n], want)
        assert not set(p.files()) & ledger.deleted
        for n in ('py0-0-clone.qcow2', 'cli3-4-clone.qcow2', 'py2-3.qcow2',
                  'cli1-2.qcow2'):
            local = download(d, p.name, n, tmp_path / n)
            qemu_img_check(local)
            assert qemu_img_info(local, 'qcow2')['virtual-size'] == QCOW2_CAP
            os.unlink(local)
        for n in ('py1-1-clone.img', 'cli0-4-clone.img'):
            local = download(d, p.name, n, tmp_path / n)
            assert os.path.getsize(local) == RAW_CAP
            os.unlink(local)
        print('\nRELIABILITY concurrency: %d ops in %.1f s (slowest %.2f s), '
              '%d volumes, refreshes ok=%d busy=%d, races %s' % (
                  len(ledger.ops), elapsed, max(o[3] for o in ledger.ops),
                  len(ledger.present), counts['ok'], counts['busy'], races))

        # resources: rounds of 20 creates + 20 deletes
        conn = d.conn()
        pool = conn.storagePoolLookupByName(p.name)
        samples = [proc_status(d.pid)]
        for rnd in range(3):
            for i in range(20):
                pool.createXML(_vol_xml('leak%d-%d.qcow2' % (rnd, i), 'qcow2',
                                        QCOW2_CAP), 0)
            for i in range(20):
                pool.storageVolLookupByName('leak%d-%d.qcow2' % (rnd, i)) \
                    .delete(0)
            samples.append(proc_status(d.pid))
        print('RELIABILITY fds %s rss MiB %s' % (
            [s[0] for s in samples], [round(s[1] / MiB, 1) for s in samples]))
        fds = [s[0] for s in samples]
        assert max(fds[1:]) - min(fds[1:]) <= 4, fds
        rss = [s[1] for s in samples]
        for a, b in zip(rss[1:], rss[2:]):
            assert b - a <= 20 * MiB, [round(x / MiB, 1) for x in rss]
        assert p.temp_files() == []
    finally:
        d.virsh('pool-destroy', p.name, check=False)
        rmtree_parallel(gfapi_rep3, p.dir)


FAULT_SHIM = os.path.join(testbed.BUILD, 'tests', 'fault', 'gfapi_fault.so')


@pytest.mark.parametrize('hold', ['fsync', 'link'])
def test_refresh_spares_a_creator_at_work(hold, make_libvirtd, cluster,
                                         gfapi_rep3, unique_name, tmp_path):
    """The clone that once failed in test_concurrent_clients ("cannot
    publish volume ...: No such file or directory"), made to happen every
    time: a CLI clone is held (fault shim) once its temp file is written,
    before its fsync (the file still open) or before glfs_link publishes
    it (closed); meanwhile libvirtd, whose listings hand
    out temp names with no times (fault shim: an iatt gfapi could not
    refresh, ctime 0), runs pool-refresh. A sweep that judged temp names by
    the listing's attributes read mtime 0 as decades old and removed the
    creator's file, so the link answered ENOENT; the sweep judges by a
    fresh lstat and leaves it to its creator."""
    if not os.path.exists(FAULT_SHIM):
        pytest.skip('fault shim not built: %s' % FAULT_SHIM)
    d = make_libvirtd(extra_env={'LD_PRELOAD': FAULT_SHIM,
                                 'GFPOOL_FAULT_RDP_NO_TIMES': TEMP_PREFIX})
    p = GlusterPool(d, cluster, gfapi_rep3, unique_name('hl'), tmp_path)
    release = str(tmp_path / 'release-link')
    clone = None
    try:
        d.virsh('vol-create-as', p.name, 'src.img', '1M', '--format', 'raw')
        clone = subprocess.Popen(
            [GFPOOL_CLI, 'vol-clone'] + pool_opts(cluster, p.dir, p.volume) +
            ['src.img', 'clone.img'], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, universal_newlines=True,
            env=dict(os.environ, LC_ALL='C', LD_PRELOAD=FAULT_SHIM,
                     **{'GFPOOL_FAULT_HOLD_LINK' if hold == 'link' else
                        'GFPOOL_FAULT_HOLD': TEMP_PREFIX + ':' + release}))
        deadline = time.monotonic() + 60
        while not os.path.exists(release + '.held'):
            assert clone.poll() is None, clone.communicate()
            assert time.monotonic() < deadline, 'the clone was never held'
            time.sleep(0.05)
        held = p.temp_files()
        assert len(held) == 1, held
        p.refresh()
        # the sweep runs off the pool's lock, a moment after the refresh
        deadline = time.monotonic() + 3
        while p.temp_files() == held and time.monotonic() < deadline:
            time.sleep(0.1)
        swept = p.temp_files() != held
        with open(release, 'w'):
            pass
        out, err = clone.communicate(timeout=60)
        print('\nRELIABILITY clone held at %s: temp file swept=%s, clone '
              'rc=%d %s' % (hold, swept, clone.returncode, err.strip()))
        assert not swept, 'the refresh removed the temp file of a live creator'
        assert clone.returncode == 0, err
        assert p.temp_files() == []
        assert 'clone.img' in p.listed()
    finally:
        if clone is not None and clone.poll() is None:
            clone.kill()
            clone.wait()
        d.virsh('pool-destroy', p.name, check=False)
        rmtree_parallel(gfapi_rep3, p.dir)


_LOCK_HOLDER = r"""
import ctypes, json, os, sys, time
sys.path.insert(0, %r)
from gfapi_ctypes import Gfapi
g = Gfapi('rep3', json.loads(sys.argv[1]))
fd = g._open(sys.argv[2], os.O_RDWR)
buf = ctypes.create_string_buffer(b'x' * 4096, 4096)
assert g._lib.glfs_pwrite(fd, buf, 4096, 0, 0, None, None) == 4096
print('holding', flush=True)
time.sleep(3600)
"""


def test_delete_parked_by_glusterfs_does_not_hold_the_pool(
        make_libvirtd, cluster, gfapi_rep3, unique_name, tmp_path):
    """GlusterFS 10.3 parks an unlink of a file on which another client
    holds an inode lock (AFR's eager lock of a writer), asks that client to
    let go, and when the client goes away instead, releases its locks
    without waking the unlink: the unlink never returns. libvirt calls
    deleteVol with the pool locked, so that used to hold every lookup of
    the pool for ever. Made here on purpose: a writer holds its eager lock,
    is stopped (it cannot answer the request to let go), vol-delete starts,
    the writer is killed. The delete must fail with a timeout naming the
    volume, and the pool must answer meanwhile and afterwards."""
    d = make_libvirtd(extra_env={'GFPOOL_DELETE_WAIT_S': '5'})
    p = GlusterPool(d, cluster, gfapi_rep3, unique_name('pk'), tmp_path)
    holder = None
    try:
        d.virsh('vol-create-as', p.name, 'held.img', '1M')
        holder = subprocess.Popen(
            ['/usr/bin/python3', '-c', _LOCK_HOLDER % testbed.HERE,
             json.dumps(cluster.volume_hosts('rep3')), p.path('held.img')],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            universal_newlines=True)
        assert holder.stdout.readline().strip() == 'holding'
        os.kill(holder.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        delete = subprocess.Popen(
            ['virsh', '-q', '-c', d.uri, 'vol-delete', '--pool', p.name,
             'held.img'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            universal_newlines=True)
        time.sleep(1)
        holder.kill()
        holder.wait()
        # the pool answers while the removal waits on the bricks
        r = d.virsh('pool-info', p.name, timeout=20)
        assert 'running' in r.stdout, r.stdout
        try:
            out, err = delete.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            delete.kill()
            delete.wait()
            _fail_stuck(d, 'vol-delete of a volume whose unlink GlusterFS '
                        'parked', ['virsh vol-delete'])
        took = time.monotonic() - t0
        print('\nRELIABILITY parked delete: rc=%d in %.1f s: %s'
              % (delete.returncode, took, err.strip()))
        if delete.returncode == 0:
            # GlusterFS answered after all (a release that won the race
            # with the kill): nothing to show, but nothing stalled either
            return
        assert 'held.img' in err and 'has not answered' in err, err
        assert took < 30, took
        t1 = time.monotonic()
        d.conn().storagePoolLookupByName(p.name).refresh(0)
        assert time.monotonic() - t1 < 10
    finally:
        if holder is not None and holder.poll() is None:
            holder.kill()
            holder.wait()
        d.virsh('pool-destroy', p.name, check=False)
        # the parked unlink keeps AFR's entry lock on held.img until its
        # client, libvirtd, goes
        d.stop()
        rmtree_parallel(gfapi_rep3, p.dir)


# ---- 5. hostile directory entries ------------------------------------------------

LONG_NAME = 'L' * 251 + '.img'          # 255 bytes
HOSTILE_FILES = {
    'quote"s.img': b'x' * 512,
    "apos'trophe.img": b'x' * 512,
    'lt<gt>.img': b'x' * 512,
    'amp&amp;.img': b'x' * 512,
    ']]>cdata.img': b'x' * 512,
    LONG_NAME: b'x' * 512,
    'empty.img': b'',
    'one.img': b'\x01',
}
# names XML 1.0 cannot carry as they are, and the three XML attribute
# normalisation turns into spaces: not volumes
CONTROL_NAMES = ['ctl\x01\x1b.img', 'new\nline.img', 'tab\there.img']
BAD_UTF8_NAME = b'bad-\xff\xfe.img'


def test_hostile_entries(make_libvirtd, cluster, gfapi_rep3, unique_name,
                         tmp_path):
    d = make_libvirtd()
    p = GlusterPool(d, cluster, gfapi_rep3, unique_name('hn'), tmp_path)
    outside = p.dir + '-outside'
    secret = os.urandom(4096)
    gfapi_rep3.mkdir(outside)
    gfapi_rep3.put(outside + '/secret.img', secret)
    etc_before = {f: os.stat('/etc/' + f).st_mtime_ns
                  for f in ('passwd', 'group', 'hosts')}
    try:
        for n, data in HOSTILE_FILES.items():
            gfapi_rep3.put(p.path(n), data)
        gfapi_rep3.put(p.path('real.qcow2'), qcow2_bytes(tmp_path))
        links = {
            'up-etc': '../../etc',
            'up-passwd': '../../etc/passwd',
            'abs-passwd': '/etc/passwd',
            'outside-link.img': '../%s/secret.img' % outside.lstrip('/'),
            'loop-a': 'loop-b', 'loop-b': 'loop-a', 'self-loop': 'self-loop',
            'dangling': 'no-such-file',
            'to-real.qcow2': 'real.qcow2',
        }
        for n, target in links.items():
            gfapi_rep3.symlink(target, p.path(n))
        gfapi_rep3.mkdir(p.path('subdir'))
        gfapi_rep3.put(p.path('subdir/inner.img'), b'i' * 512)
        try:
            gfapi_rep3.mkfifo(p.path('fifo'))
            have_fifo = True
        except OSError:
            have_fifo = False

        r, t = timed_virsh(d, 'pool-refresh', p.name)
        assert r.returncode == 0, r.stderr
        assert d.alive()
        conn = d.conn()
        pool = conn.storagePoolLookupByName(p.name)
        vols = {v.name(): v for v in pool.listAllVolumes()}
        # what is listed: files and directories, links followed when they
        # resolve inside the volume; loops, dangling links and the FIFO
        # are not volumes
        expect = set(HOSTILE_FILES) | {'real.qcow2', 'to-real.qcow2',
                                       'outside-link.img', 'subdir'}
        listed = set(vols)
        missing = expect - listed
        assert not missing, missing
        for n in ('loop-a', 'loop-b', 'self-loop', 'dangling', 'fifo',
                  'up-etc', 'up-passwd', 'abs-passwd'):
            assert n not in listed, (n, sorted(listed))
        extra = listed - expect
        report = {'refresh_s': round(t, 2), 'fifo': have_fifo,
                  'listed': len(listed), 'extra': sorted(extra)}

        # every volume's XML, three ways, is well-formed
        for n, v in vols.items():
            xml = v.XMLDesc(0)
            xml_well_formed(xml.encode(), 'python XMLDesc %r' % n, tmp_path)
            doc = ET.fromstring(xml)
            assert doc.findtext('name') == n, (n, doc.findtext('name'))
            r = subprocess.run(virsh_argv(d, 'vol-dumpxml', '--pool', p.name,
                                          n), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=_env(), timeout=60)
            assert r.returncode == 0, (n, r.stderr)
            xml_well_formed(r.stdout, 'virsh vol-dumpxml %r' % n, tmp_path)
            r = subprocess.run([GFPOOL_CLI, 'vol-dumpxml'] + pool_opts(
                cluster, p.dir) + [n], stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, timeout=60)
            assert r.returncode == 0, (n, r.stderr)
            xml_well_formed(r.stdout, 'gfpool vol-dumpxml %r' % n, tmp_path)
        xml_well_formed(d.virsh('pool-dumpxml', p.name).stdout.encode(),
                        'pool-dumpxml', tmp_path)
        r = subprocess.run([GFPOOL_CLI, 'vol-list', '--details'] + pool_opts(
            cluster, p.dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            timeout=60)
        assert r.returncode == 0, r.stderr
        r = d.virsh('vol-list', '--details', p.name, check=False)
        assert r.returncode == 0, r.stderr

        # the right things are read through the links
        fmts = listed_formats(d, p.name)
        assert fmts['to-real.qcow2'] == ('qcow2', GiB)
        assert fmts['real.qcow2'] == ('qcow2', GiB)
        assert fmts['empty.img'] == ('raw', 0)
        assert fmts['one.img'] == ('raw', 1)
        assert fmts[LONG_NAME] == ('raw', 512)

        # deleting the outward link removes the link, not its target
        d.virsh('vol-delete', '--pool', p.name, 'outside-link.img')
        assert 'outside-link.img' not in p.files()
        assert gfapi_rep3.read(outside + '/secret.img') == secret
        for n in ('lt<gt>.img', LONG_NAME):
            d.virsh('vol-delete', '--pool', p.name, n)
            assert n not in p.files()

        assert d.alive()
        assert p.listed() and d.alive()
        assert gfapi_rep3.read(outside + '/secret.img') == secret
        assert {f: os.stat('/etc/' + f).st_mtime_ns
                for f in etc_before} == etc_before
        assert p.temp_files() == []
        print('\nRELIABILITY hostile %s' % report)
    finally:
        d.virsh('pool-destroy', p.name, check=False)
        for n in ('loop-a', 'loop-b', 'self-loop'):
            gfapi_rep3.unlink(p.path(n), missing_ok=True)
        gfapi_rep3.rmtree(p.dir)
        gfapi_rep3.rmtree(outside)


def qcow2_bytes(tmp_path):
    path = str(tmp_path / 'seed1g.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', path, '1G'],
                   check=True)
    with open(path, 'rb') as f:
        return f.read()


def test_names_xml_cannot_carry(make_libvirtd, cluster, gfapi_rep3,
                                unique_name, tmp_path):
    """A file whose name is not valid UTF-8, or holds a control character
    (XML 1.0 cannot represent most of them even as &#x1;, and attribute
    normalisation turns tab, LF and CR into spaces), cannot be a volume:
    its <name> would make every XML it appears in malformed, and
    python-libvirt's listAllVolumes() raises UnicodeDecodeError for the
    whole pool. Such entries are skipped by refresh and the CLI listing,
    and refused as new names; the rest of the pool is unaffected."""
    d = make_libvirtd()
    p = GlusterPool(d, cluster, gfapi_rep3, unique_name('xn'), tmp_path)
    try:
        for n in CONTROL_NAMES:
            gfapi_rep3.put(p.path(n), b'c' * 512)
        gfapi_rep3.put(p.dir.encode() + b'/' + BAD_UTF8_NAME, b'u' * 512)
        gfapi_rep3.put(p.path('ok.img'), b'o' * 512)
        d.virsh('pool-refresh', p.name)
        assert d.alive()
        pool = d.conn().storagePoolLookupByName(p.name)
        names = [v.name() for v in pool.listAllVolumes()]
        assert names == ['ok.img'], names
        r = subprocess.run([GFPOOL_CLI, 'vol-list'] + pool_opts(
            cluster, p.dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            timeout=60)
        assert r.returncode == 0 and b'ok.img' in r.stdout, r
        for n in (b'ctl', b'bad-', b'new', b'tab'):
            assert n not in r.stdout, r.stdout
        for n in [c.encode() for c in CONTROL_NAMES] + [BAD_UTF8_NAME]:
            r = subprocess.run([GFPOOL_CLI, 'vol-create-as'] + pool_opts(
                cluster, p.dir) + [b'new-' + n, '1M'], stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, timeout=60)
            assert r.returncode == 2, (n, r)
            assert b'invalid volume name' in r.stderr, r.stderr
        assert sorted(gfapi_rep3.listdir(p.dir)) == sorted(
            CONTROL_NAMES + [os.fsdecode(BAD_UTF8_NAME), 'ok.img'])
    finally:
        d.virsh('pool-destroy', p.name, check=False)
        gfapi_rep3.rmtree(p.dir)
