"""The GlusterFS behaviours gfpool works around (docs/design.md, "GlusterFS
behaviours worked around"), checked on the GlusterFS of the release under
test (10.3 on Debian 12, 11.1 on Debian 13) through plain gfapi.

Each test asserts the behaviour as it is documented. One that fails says
that this GlusterFS changed it: the docs and the workaround it names must
then be revisited (use the better path where the release fixed it). The
property the workarounds protect, that gfpool's own copies are right on
every brick, is checked here too.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import time

import pytest

from helpers import GlusterPool, gfpool_cli
import testbed

MiB = 1 << 20


def glusterfs_version():
    out = subprocess.run([testbed.GLUSTERD, '--version'], capture_output=True,
                         text=True).stdout
    return out.split('\n')[0].split()[1] if out else '?'


def brick_files(cluster, volume, path):
    """The copies of `path` on every brick of `volume`: {node: bytes|None}."""
    out = {}
    for i in range(1, cluster.nodes + 1):
        p = os.path.join(cluster.brick_path(i, volume), path.lstrip('/'))
        if os.path.isdir(cluster.brick_path(i, volume)):
            try:
                with open(p, 'rb') as f:
                    out[i] = f.read()
            except FileNotFoundError:
                out[i] = None
    return out


@pytest.fixture
def workdir(gfapi_single, gfapi_rep3, unique_name):
    d = '/' + unique_name('gb')
    for g in (gfapi_single, gfapi_rep3):
        g.mkdir(d)
    yield d
    for g in (gfapi_single, gfapi_rep3):
        g.rmtree(d)


# 1 -------------------------------------------------------------------------
def test_copy_file_range_ignores_source_offset(gfapi_single, workdir):
    """glfs_copy_file_range copies from offset 0 whatever off_in says (the
    client translator puts it in args.offset, the v2 RPC sends
    args.off_in): gfpool only ever asks for whole files from 0."""
    g = gfapi_single
    g.put(workdir + '/src', b'A' * 1024 + b'B' * 1024)
    g.put(workdir + '/dst', b'')
    n = g.copy_file_range(workdir + '/src', 1024, workdir + '/dst', 0, 1024)
    got = g.read(workdir + '/dst')
    assert n == 1024
    assert got == b'A' * 1024, (
        'GlusterFS %s honours the source offset of copy_file_range now '
        '(got %r...): revisit docs/design.md item 1' % (glusterfs_version(),
                                                        got[:8]))


# 2 -------------------------------------------------------------------------
def test_copy_file_range_on_replica_writes_one_brick(cluster, gfapi_rep3,
                                                      workdir):
    """On a replica volume glfs_copy_file_range lands on one brick only:
    afr has no copy_file_range, so it passes through to its first child
    with no pending-heal marks. gfpool copies through the client there."""
    g = gfapi_rep3
    data = os.urandom(4 * MiB)
    g.put(workdir + '/src', data)
    g.put(workdir + '/dst', b'')
    g.copy_file_range(workdir + '/src', 0, workdir + '/dst', 0, len(data))
    copies = brick_files(cluster, 'rep3', workdir + '/dst')
    right = sorted(i for i, b in copies.items() if b == data)
    assert len(copies) == 3
    assert len(right) < 3, (
        'GlusterFS %s copied to all three bricks of a replica-3 volume: '
        'server-side copy could be used on replicas (docs/design.md item 2)'
        % glusterfs_version())


@pytest.mark.parametrize('volume', ['rep3', 'single'])
def test_clone_is_on_every_brick(cluster, gfapi_rep3, gfapi_single, volume,
                                 unique_name, tmp_path):
    """What the workaround protects: a vol-clone (server-side copy on
    `single`, through the client on `rep3`) leaves the same bytes on every
    brick that holds the file."""
    g = gfapi_rep3 if volume == 'rep3' else gfapi_single
    pool = GlusterPool(None, cluster, g, unique_name('gbc'), tmp_path,
                       volume=volume)
    try:
        data = os.urandom(3 * MiB) + b'\0' * (2 * MiB) + os.urandom(MiB)
        g.put(pool.path('a.img'), data)
        pool.cli('vol-clone', 'a.img', 'b.img', check=0)
        copies = brick_files(cluster, volume, pool.path('b.img'))
        held = {i: b for i, b in copies.items() if b is not None}
        assert held, copies.keys()
        for i, b in held.items():
            assert b is not None and hashlib.sha256(b).digest() == \
                hashlib.sha256(data).digest(), 'brick %d differs' % i
        if volume == 'rep3':
            assert len(held) == 3
    finally:
        pool.cleanup()


# 3 -------------------------------------------------------------------------
def test_get_volfile_copies_the_whole_buffer(gfapi_single):
    """glfs_get_volfile(buf, len) with len larger than the volfile copies
    len bytes (memcpy(buf, fs->oldvolfile, len)): past its own copy. The
    first call with len 0 returns minus the size, which gfpool uses to ask
    for exactly that. (A small overrun only, so this test cannot crash.)"""
    r, _ = gfapi_single.get_volfile(0)
    assert r < 0
    size = -r
    r, buf = gfapi_single.get_volfile(size)
    assert r == size and b'volume ' in buf
    r, buf = gfapi_single.get_volfile(size + 16)
    assert r == size + 16, (
        'GlusterFS %s returns %d for a buffer of %d (volfile %d): the '
        'overrun of docs/design.md item 3 may be fixed' % (
            glusterfs_version(), r, size + 16, size))


# glfs_fini ------------------------------------------------------------------
_FINI = r'''
import sys, time
sys.path.insert(0, sys.argv[1])
from gfapi_ctypes import Gfapi
g = Gfapi('single', [(h, 24007) for h in sys.argv[2].split(',')])
g.stat('/')
t = time.monotonic()
g._lib.glfs_fini(g._fs)
print('%.2f' % (time.monotonic() - t))
'''


def test_glfs_fini_waits(cluster):
    """glfs_fini returns only at the next tick of gfapi's 10 s call-bail
    timer (GlusterFS #2606, #4320): no caller of gfpool's ever waits for
    it. Measured here in a process of its own."""
    hosts = ','.join(h for h, _ in cluster.volume_hosts('single'))
    t = time.monotonic()
    out = subprocess.run([sys.executable, '-c', _FINI,
                          os.path.dirname(testbed.__file__), hosts],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    fini = float(out.stdout.strip())
    print('GlusterFS %s: glfs_fini %.2f s (whole process %.2f s)' % (
        glusterfs_version(), fini, time.monotonic() - t))
    assert fini > 2.0, (
        'GlusterFS %s: glfs_fini took %.2f s; the wait of docs/design.md '
        'may be gone' % (glusterfs_version(), fini))


# gfapi and a volume that changes under a client -----------------------------
@pytest.fixture(scope='module')
def scratch_volume(cluster):
    """A volume of its own (one brick, node 2) that these tests stop and
    reconfigure while a client holds it."""
    name = 'gbscratch%s' % os.urandom(3).hex()
    cluster.create_volume(name, nodes=[2])
    try:
        yield name
    finally:
        cluster.cli('volume', 'stop', name, 'force', check=False)
        cluster.cli('volume', 'delete', name, check=False)
        cluster.volumes.pop(name, None)
        cluster._save_state()


# A client of its own process (never finalized, its reconnects end with it):
# every line on stdin, it prints what it sees of the volume as JSON.
_CLIENT = r'''
import ctypes, errno, json, os, sys
sys.path.insert(0, sys.argv[1])
from gfapi_ctypes import Gfapi
g = Gfapi(sys.argv[2], json.loads(sys.argv[3]), logfile=sys.argv[4], loglevel=7,
          xlator_options=[('*-client-*', 'ping-timeout', '4')])
def seen():
    out = {}
    for p in ('/', '/.'):
        try:
            out['stat ' + p] = g.stat(p).mode
        except OSError as e:
            out['stat ' + p] = errno.errorcode[e.errno]
        ctypes.set_errno(0)
        d = g._lib.glfs_opendir(g._fs, p.encode())
        out['opendir ' + p] = 'ok' if d else errno.errorcode.get(ctypes.get_errno())
        if d:
            g._lib.glfs_closedir(d)
    r, _ = g.get_volfile(0)
    out['volfile'] = g.get_volfile(-r)[1].decode()
    print(json.dumps(out), flush=True)
seen()
for line in sys.stdin:
    seen()
os._exit(0)
'''


class _Client:
    def __init__(self, cluster, volume, log):
        self.log = log
        self.p = subprocess.Popen(
            [sys.executable, '-c', _CLIENT, os.path.dirname(testbed.__file__), volume,
             json.dumps(cluster.volume_hosts(volume)), log],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.first = json.loads(self.p.stdout.readline())

    def seen(self):
        self.p.stdin.write('\n')
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def close(self):
        self.p.stdin.close()
        self.p.wait(10)


def test_root_lookup_failure_is_hidden(cluster, scratch_volume, tmp_path):
    """gfapi resolves exactly "/" without checking its lookup of the root
    (glfs_resolve_at ignores glfs_resolve_root's result): with the bricks
    gone, glfs_stat("/") succeeds with a zeroed stat and glfs_opendir("/")
    fails with ENOTDIR. "/." is looked up and checked: ENOTCONN. gfpool
    names the root "/." (gfpool_conn_dir)."""
    c = _Client(cluster, scratch_volume, str(tmp_path / 'client.log'))
    try:
        assert c.first['stat /'] == c.first['stat /.'] and c.first['stat /'] & 0o40000
        assert c.first['opendir /'] == c.first['opendir /.'] == 'ok'
        cluster.cli('volume', 'stop', scratch_volume, 'force')
        seen = c.seen()
    finally:
        c.close()
        cluster.cli('volume', 'start', scratch_volume, check=False)
        cluster.wait_volume_online(scratch_volume)
    assert seen['stat /.'] == 'ENOTCONN' and seen['opendir /.'] == 'ENOTCONN', seen
    assert seen['stat /'] == 0 and seen['opendir /'] == 'ENOTDIR', (
        'GlusterFS %s reports a failed lookup of "/" now (%s): revisit '
        'gfpool_conn_dir' % (glusterfs_version(), seen))


def test_volume_set_reconfigures_clients_in_place(cluster, scratch_volume, tmp_path):
    """A `volume set` that keeps the graph's shape reaches a running gfapi
    client as an in-place reconfigure, no graph switch: its volfile
    changes and protocol/client's reconfigure() runs on the translators it
    has. That function takes timeouts and a few flags, never the
    transport's settings (TLS, source ports): a client keeps those as it
    was built, which test_tls.py shows against a locked-down volume.
    gfpool replaces a connection whose volfile changed
    (gfpool_conn_outdated)."""
    log = str(tmp_path / 'client.log')
    c = _Client(cluster, scratch_volume, log)
    try:
        cluster.cli('volume', 'set', scratch_volume, 'performance.md-cache-timeout', '2')
        deadline = time.monotonic() + 30
        seen = c.seen()
        while seen['volfile'] == c.first['volfile'] and time.monotonic() < deadline:
            time.sleep(0.2)
            seen = c.seen()
    finally:
        c.close()
        cluster.cli('volume', 'reset', scratch_volume, 'performance.md-cache-timeout',
                    check=False)
    assert seen['volfile'] != c.first['volfile'], 'the client never got the new volfile'
    assert 'md-cache-timeout 2' in seen['volfile']
    with open(log) as f:
        text = f.read()
    assert text.count('switched to graph') == 1, (
        'GlusterFS %s switched graphs on an option change: revisit '
        'gfpool_conn_outdated' % glusterfs_version())
    # the reconfigure of protocol/client, in place (the option gfpool set
    # on the client survives it)
    assert re.findall(r'client-0: option ping-timeout using set value (\d+)', text) == ['4']
