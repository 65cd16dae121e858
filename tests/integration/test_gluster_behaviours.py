# SPDX-License-Identifier: LGPL-2.1-or-later
"""The GlusterFS behaviours gfpool works around (docs/design.md, "GlusterFS
behaviours worked around"), checked on the GlusterFS of the release under
test (10.3 on Debian 12, 11.1 on Debian 13) through plain gfapi.

Each test asserts the behaviour as it is documented. One that fails says
that this GlusterFS changed it: the docs and the workaround it names must
then be revisited (use the better path where the release fixed it). The
property the workarounds protect, that gfpool's own copies are right on
every brick, is checked here too.
"""

import contextlib
import errno
import hashlib
import json
import os
import shutil
import re
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import testbed
from testbed import make_unique_name, unavailable
from testbed.gfapi_ctypes import Gfapi
from testbed.pools import GlusterPool, gfpool_cli

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
                          testbed.HERE, hosts],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    fini = float(out.stdout.strip())
    print('GlusterFS %s: glfs_fini %.2f s (whole process %.2f s)' % (
        glusterfs_version(), fini, time.monotonic() - t))
    assert fini > 2.0, (
        'GlusterFS %s: glfs_fini took %.2f s; the wait of docs/design.md '
        'may be gone' % (glusterfs_version(), fini))


# extended attributes ---------------------------------------------------------
# gfpool records a volume's format in an extended attribute of its image
# (docs/design.md, "Extended attributes on GlusterFS"). These tests are what
# that record can and cannot rely on, on the release under test.

QEMU_UID = 64055                  # Debian's libvirt-qemu
NAMESPACES = ('trusted', 'user', 'security')
FORMAT_ATTR = 'trusted.gfpool.format'

_AS_UID = r'''
import errno, json, os, sys
req = json.loads(sys.argv[1])
sys.path.insert(0, req['tests'])
if req['uid']:
    os.setgroups([])
    os.setgid(req['uid'])
    os.setuid(req['uid'])
from gfapi_ctypes import Gfapi
print('connecting', flush=True)
g = Gfapi(req['volume'], [tuple(h) for h in req['hosts']])
print('connected', flush=True)
if req['claim'] is not None:
    g.set_identity(req['claim'], req['claim'])
if req['pid'] is not None:
    g.set_pid(req['pid'])
out = []
for op, path, name in req['ops']:
    try:
        if op == 'put':
            g.put(path, b'x')
        elif op in ('setxattr', 'fsetxattr'):
            getattr(g, op)(path, name, str(req['uid']).encode())
        else:
            getattr(g, op)(path, name)
        out.append('ok')
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e.errno)))
print(json.dumps(out), flush=True)
'''


def _as_uid_cmd(cluster, volume, uid, ops, claim=None, pid=None):
    req = dict(tests=testbed.HERE, uid=uid, claim=claim,
               pid=pid, volume=volume, hosts=cluster.volume_hosts(volume),
               ops=ops)
    return [sys.executable, '-c', _AS_UID, json.dumps(req)]


def gfapi_as(cluster, volume, uid, ops, claim=None, pid=None):
    """`ops` [(op, path, name)] through a gfapi client of its own in a
    child process running as `uid` (which glfs_setfsuid/gid turns into
    `claim` on the wire when given; glfs_setfspid sends `pid` when given):
    -> ['ok' | errno name, ...]. A setxattr writes the child's uid as the
    value."""
    p = subprocess.run(_as_uid_cmd(cluster, volume, uid, ops, claim, pid),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.splitlines()[-1])


def brick_xattr(cluster, volume, path, name):
    """{node: value | errno name} of `name` on every brick's copy."""
    out = {}
    for host, brick in cluster.volumes[volume]:
        i = cluster.addresses.index(host) + 1
        try:
            out[i] = os.getxattr(os.path.join(brick, path.lstrip('/')), name)
        except OSError as e:
            out[i] = errno.errorcode.get(e.errno, str(e.errno))
    return out


@contextlib.contextmanager
def extra_volume(cluster, prefix, nodes, options=None):
    """A started volume of its own on `nodes` (replicated when more than
    one) with `options` set before the start; stopped, deleted and its
    bricks removed afterwards. -> its name."""
    name = make_unique_name(prefix).replace('-', '')[:24]
    dirs = [cluster.brick_path(i, name) for i in nodes]
    try:
        try:
            cluster.create_volume(name, nodes=nodes, options=options,
                                  replica=len(nodes) if len(nodes) > 1
                                  else None)
        except testbed.TestbedError as e:
            unavailable('cannot make volume %s: %s' % (name, e))
        yield name
    finally:
        if name in cluster.volumes:
            dirs += [b for _, b in cluster.volumes[name]]
            cluster.cli('volume', 'stop', name, check=False)
            cluster.cli('volume', 'delete', name, check=False)
            cluster.volumes.pop(name, None)
            cluster._save_state()
        for d in set(dirs):
            shutil.rmtree(d, ignore_errors=True)


def test_xattr_who_sets_what(cluster, gfapi_rep3, workdir):
    """Nothing in GlusterFS keeps trusted.* from a client that is not
    root. The bricks run every syscall as root (posix's SET_FS_ID is
    compiled out: `#undef HAVE_SET_FSID`), so the kernel never refuses a
    name; the only check is the access-control translator's, which wants
    write permission for any name outside the POSIX ACLs
    (`setxattr_scrutiny`), skips every fd operation
    (`FD_MODE_CHECK_IS_IMPLEMENTED` is never defined) and has no
    fremovexattr at all. So a uid that can merely read an image sets and
    removes any attribute through a read-only descriptor, and a process
    becomes root on the volume with glfs_setfsuid(0): the uid is whatever
    the client sends."""
    g = gfapi_rep3
    files = {'own': (QEMU_UID, 0o644), 'ro': (0, 0o644), 'secret': (0, 0o600)}
    for f, (uid, mode) in files.items():
        p = '%s/%s' % (workdir, f)
        g.put(p, b'x')
        g.chmod(p, mode)
        g.chown(p, uid, uid)
        for ns in NAMESPACES:
            g.setxattr(p, ns + '.gfpool.probe', b'root')
    steps = ('getxattr', 'setxattr', 'removexattr', 'fsetxattr',
             'fremovexattr')
    ops = []
    for f in files:
        for ns in NAMESPACES:
            p = '%s/%s' % (workdir, f)
            ops += [(op, p, ns + ('.gfpool.probe' if op == 'getxattr'
                                  else '.gfpool.format')) for op in steps]
    # left in place, for the bricks to show who wrote it last
    ops.append(('fsetxattr', workdir + '/ro', FORMAT_ATTR))

    def table(results):
        rows = {}
        k = 0
        for f in files:
            for ns in NAMESPACES:
                rows['%s %s' % (f, ns)] = results[k:k + len(steps)]
                k += len(steps)
        rows['ro fsetxattr kept'] = results[k:]
        return rows

    ok = ['ok'] * len(steps)
    refused = ['EACCES'] * len(steps)
    want = {
        'root': {'%s %s' % (f, ns): ok for f in files for ns in NAMESPACES},
        'qemu': dict({'own %s' % ns: ok for ns in NAMESPACES},
                     **{'ro %s' % ns: ['ok', 'EACCES', 'EACCES', 'ok', 'ok']
                        for ns in NAMESPACES},
                     **{'secret %s' % ns: refused for ns in NAMESPACES}),
    }
    want['qemu claiming root'] = want['root']
    for who in want:
        want[who]['ro fsetxattr kept'] = ['ok']
    got = {}
    for who, uid, claim in (('root', 0, None), ('qemu', QEMU_UID, None),
                            ('qemu claiming root', QEMU_UID, 0)):
        got[who] = table(gfapi_as(cluster, 'rep3', uid, ops, claim=claim))
        on_bricks = brick_xattr(cluster, 'rep3', workdir + '/ro',
                                FORMAT_ATTR)
        assert set(on_bricks.values()) == {str(uid).encode()}, (who,
                                                                 on_bricks)
    print('GlusterFS %s: %s' % (glusterfs_version(), got))
    assert got == want, (
        'GlusterFS %s: who may set which extended attribute changed: '
        'revisit docs/design.md ("Extended attributes on GlusterFS")\n'
        'got  %s\nwant %s' % (glusterfs_version(), got, want))


# name: what a root client's setxattr and fsetxattr get on `rep3`, and
# whether the bricks then hold the value it sent
RESERVED = {
    FORMAT_ATTR: ('ok', True),
    'trusted.afr.x': ('EPERM', False),            # afr_setxattr
    'trusted.glusterfs.afr.x': ('EPERM', False),  # afr_setxattr
    'trusted.gfid2path.x': ('ENOTSUP', False),    # posix_handle_pair
    'trusted.glusterfs.pathinfo': ('EACCES', False),
    'trusted.bit-rot.version': ('EINVAL', False),  # bit-rot-stub
    'trusted.gfid': ('ok', False),                # dropped by posix_setxattr
    'trusted.glusterfs.volume-id': ('ok', False),  # dropped too
    'glusterfs.x': ('ENOTSUP', False),            # no such namespace on disk
    'system.x': ('ENOTSUP', False),
}


@pytest.mark.parametrize('volume', ['rep3', 'single'])
def test_xattr_reserved_names(cluster, gfapi_rep3, gfapi_single, workdir,
                              volume):
    """The names GlusterFS refuses or drops, as root. trusted.gfpool.* is
    an ordinary name. trusted.afr.* is refused by the replicate
    translator of the client's own graph, so on a volume without one
    (`single`) it is written: what a translator reserves is up to the
    client, not the bricks."""
    g = gfapi_rep3 if volume == 'rep3' else gfapi_single
    p = workdir + '/f'
    g.put(p, b'x')
    want = dict(RESERVED)
    if volume == 'single':
        want['trusted.afr.x'] = want['trusted.glusterfs.afr.x'] = ('ok', True)
    got = {}
    for name in want:
        res = []
        for op in ('setxattr', 'fsetxattr'):
            try:
                getattr(g, op)(p, name, b'gfpool')
                res.append('ok')
            except OSError as e:
                res.append(errno.errorcode.get(e.errno, str(e.errno)))
        kept = set(brick_xattr(cluster, volume, p, name).values()) == {
            b'gfpool'}
        got[name] = (res[0] if res[0] == res[1] else '/'.join(res), kept)
    assert got == want, (
        'GlusterFS %s (%s): the names it reserves changed: revisit '
        'docs/design.md ("Extended attributes on GlusterFS")\ngot  %s\n'
        'want %s' % (glusterfs_version(), volume, got, want))


def _brick_log(cluster, node, brick):
    return os.path.join(cluster.node_dir(node), 'log', 'bricks',
                        brick.strip('/').replace('/', '-') + '.log')


def test_xattr_privileged_ports_keep_other_uids_out(cluster):
    """With server.allow-insecure off and client.bind-insecure off only
    processes that can bind a port below 1024 reach the bricks: the one
    setting that keeps a non-root gfapi client (QEMU's gluster driver as
    libvirt-qemu) from writing trusted.*. Such a client is refused at its
    first request ("Request received from non-privileged port", rpcsvc.c),
    and glfs_init does not fail: it waits, without retrying (36 minutes
    seen), so a caller needs a deadline of its own."""
    opts = {'server.allow-insecure': 'off', 'client.bind-insecure': 'off'}
    with extra_volume(cluster, 'xsec', [1], opts) as vol:
        assert gfapi_as(cluster, vol, 0, [
            ('put', '/f', ''), ('setxattr', '/f', FORMAT_ATTR),
            ('getxattr', '/f', FORMAT_ATTR)]) == ['ok'] * 3
        log = _brick_log(cluster, 1, cluster.volumes[vol][0][1])
        seen = os.path.getsize(log)
        child = subprocess.Popen(
            _as_uid_cmd(cluster, vol, QEMU_UID, [('setxattr', '/f',
                                                  FORMAT_ATTR)]),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            refused = False
            while not refused and time.monotonic() < deadline \
                    and child.poll() is None:
                with open(log, errors='replace') as f:
                    f.seek(seen)
                    refused = 'Request received from non-privileged port' \
                        in f.read()
                time.sleep(0.1)
            # the refusal is logged: glfs_init has not returned a moment
            # later either
            try:
                child.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
            running = child.poll() is None
        finally:
            child.kill()
            out, err = child.communicate()
        assert refused, (out, err[-2000:])
        assert running and out.split() == ['connecting'], (
            'GlusterFS %s: a client on an unprivileged port now gets an '
            'answer: %r %r' % (glusterfs_version(), out, err[-2000:]))
        assert set(brick_xattr(cluster, vol, '/f', FORMAT_ATTR).values()) \
            == {b'0'}


def test_xattr_root_squash_escaped_by_daemon_pids(cluster):
    """server.root-squash turns uid 0 into 65534 for clients such as
    ours, but not for requests carrying the pid of one of GlusterFS's own
    daemons (server-helpers.c: -1 gsyncd, -3 rebalance, -4 "no root
    squash", -5 quota, -6 self-heal), and glfs_setfspid lets any process
    send those: squashing does not stop a non-root client that claims
    uid 0 either. (It applies to clients that logged in with the volume's
    credentials, which glusterd hands with the volfile to clients on its
    own machine (glusterd-handshake.c, `glusterd_gf_is_local_addr`): every
    client on the loopback test bed, and a hypervisor that is also a
    GlusterFS server; clients elsewhere are squashed whatever their
    pid.)"""
    with extra_volume(cluster, 'xsq', [1]) as vol:
        assert gfapi_as(cluster, vol, 0, [('put', '/f', '')]) == ['ok']
        cluster.cli('volume', 'set', vol, 'server.root-squash', 'on')
        ops = [('setxattr', '/f', FORMAT_ATTR)]
        # the brick fetches its new volfile after `volume set` returns
        deadline = time.monotonic() + 30
        while gfapi_as(cluster, vol, 0, ops) != ['EACCES']:
            assert time.monotonic() < deadline, 'root-squash never applied'
        got = {
            'root': gfapi_as(cluster, vol, 0, ops),
            'root, pid -4': gfapi_as(cluster, vol, 0, ops, pid=-4),
            'qemu claiming root': gfapi_as(cluster, vol, QEMU_UID, ops,
                                           claim=0),
            'qemu claiming root, pid -6': gfapi_as(cluster, vol, QEMU_UID,
                                                   ops, claim=0, pid=-6),
        }
        want = {'root': ['EACCES'], 'root, pid -4': ['ok'],
                'qemu claiming root': ['EACCES'],
                'qemu claiming root, pid -6': ['ok']}
        assert got == want, (glusterfs_version(), got)
        assert set(brick_xattr(cluster, vol, '/f', FORMAT_ATTR).values()) \
            == {str(QEMU_UID).encode()}


_FUSE = r'''
import errno, json, os, subprocess, sys
host, volume, mnt, log, d = sys.argv[1:6]
subprocess.run(['glusterfs', '--volfile-server=' + host,
                '--volfile-id=' + volume, '--log-file=' + log, mnt],
               check=True)
try:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.setgroups([])
        os.setgid(int(sys.argv[6]))
        os.setuid(int(sys.argv[6]))
        res = {}
        for f in ('own', 'ro'):
            p = os.path.join(mnt, d.lstrip('/'), f)
            for ns in ('trusted', 'user', 'security'):
                name = ns + '.gfpool.format'
                row = []
                for op in ('get', 'set', 'remove'):
                    try:
                        if op == 'get':
                            os.getxattr(p, name)
                        elif op == 'set':
                            os.setxattr(p, name, b'fuse')
                        else:
                            os.removexattr(p, name)
                        row.append('ok')
                    except OSError as e:
                        row.append(errno.errorcode[e.errno])
                res['%s %s' % (f, ns)] = row
        os.write(w, json.dumps(res).encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    print(os.read(r, 65536).decode())
finally:
    subprocess.run(['umount', mnt])
'''


def test_xattr_fuse_mount_non_root(cluster, gfapi_rep3, workdir):
    """On a FUSE mount the kernel decides before GlusterFS sees the call:
    trusted.* is CAP_SYS_ADMIN's (a write is EPERM, a read ENODATA), a
    security.* write needs it too (commoncap), user.* needs write
    permission (and FUSE has no fd-based setxattr, so the bricks' fd hole
    is out of reach). Only gfapi clients can write trusted.* unprivileged."""
    glusterfs = shutil.which('glusterfs') or '/usr/sbin/glusterfs'
    if not os.path.exists(glusterfs) or not os.path.exists('/dev/fuse'):
        unavailable('no glusterfs FUSE client or /dev/fuse here')
    g = gfapi_rep3
    for f, uid in (('own', QEMU_UID), ('ro', 0)):
        p = '%s/%s' % (workdir, f)
        g.put(p, b'x')
        g.chmod(p, 0o644)
        g.chown(p, uid, uid)
        for ns in NAMESPACES:
            g.setxattr(p, ns + '.gfpool.format', b'raw')
    mnt = tempfile.mkdtemp(prefix='gfx', dir='/tmp')
    try:
        os.chmod(mnt, 0o755)
        p = subprocess.run(
            ['unshare', '-m', '--propagation', 'private', sys.executable,
             '-c', _FUSE, cluster.addresses[0], 'rep3', mnt,
             os.path.join(cluster.base_dir, 'fuse-xattr.log'), workdir,
             str(QEMU_UID)], capture_output=True, text=True, timeout=60)
    finally:
        os.rmdir(mnt)
    assert p.returncode == 0, p.stderr[-2000:]
    got = json.loads(p.stdout.splitlines()[-1])
    want = {'own trusted': ['ENODATA', 'EPERM', 'EPERM'],
            'own user': ['ok', 'ok', 'ok'],
            'own security': ['ok', 'EPERM', 'EPERM'],
            'ro trusted': ['ENODATA', 'EPERM', 'EPERM'],
            'ro user': ['ok', 'EACCES', 'EACCES'],
            'ro security': ['ok', 'EPERM', 'EPERM']}
    assert got == want, (glusterfs_version(), got)
    assert g.getxattr(workdir + '/ro', FORMAT_ATTR) == b'raw'


def test_xattr_published_by_link_on_every_brick(cluster, gfapi_rep3,
                                                 workdir):
    """gfpool's publish (write under a temp name, fsetxattr, fsync, link
    to the final name, unlink the temp name) leaves the attribute on
    every brick's copy: it belongs to the inode, which the link shares."""
    g = gfapi_rep3
    tmp, final = workdir + '/.gfpool-tmp-x', workdir + '/img'
    g.put(tmp, b'q' * 4096)
    g.fsetxattr(tmp, FORMAT_ATTR, b'qcow2', open_flags=os.O_RDWR)
    g.link(tmp, final)
    g.unlink(tmp)
    assert brick_xattr(cluster, 'rep3', final, FORMAT_ATTR) == {
        1: b'qcow2', 2: b'qcow2', 3: b'qcow2'}
    assert not any(os.path.exists(os.path.join(b, tmp.lstrip('/')))
                   for _, b in cluster.volumes['rep3'])
    assert g.getxattr(final, FORMAT_ATTR) == b'qcow2'


def test_xattr_set_keeps_ctime(cluster, gfapi_rep3, workdir):
    """With features.ctime on (the default), the ctime a client sees is
    the one GlusterFS keeps in trusted.glusterfs.mdata, and the utime
    translator stamps it for removexattr but not for setxattr or
    fsetxattr (utime-gen-fops-c.py, `utime_ops`). So a listing's stat does
    not change when the attribute is written (each brick's own ctime
    does): a cache keyed on ino/size/mtime/ctime does not notice a
    new format record."""
    g = gfapi_rep3
    p = workdir + '/img'
    g.put(p, b'x' * 512)

    def seen():
        st = dict(g.readdirplus(workdir))['img']
        return (st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                st.st_ctim.tv_sec, st.st_ctim.tv_nsec)

    before = seen()
    g.setxattr(p, FORMAT_ATTR, b'raw')
    after_set = seen()
    assert set(brick_xattr(cluster, 'rep3', p, FORMAT_ATTR).values()) == {
        b'raw'}
    g.fsetxattr(p, FORMAT_ATTR, b'qcow2')
    after_fset = seen()
    assert set(brick_xattr(cluster, 'rep3', p, FORMAT_ATTR).values()) == {
        b'qcow2'}
    g.removexattr(p, FORMAT_ATTR)
    after_remove = seen()
    assert before == after_set == after_fset, (
        'GlusterFS %s: setting an attribute changes the ctime clients see '
        'now: %s %s %s' % (glusterfs_version(), before, after_set,
                           after_fset))
    assert after_remove[:4] == before[:4] and after_remove[4:] != before[4:]


def test_xattr_healed_onto_a_returning_brick(cluster, gfapi_rep3, workdir):
    """Set on a replica while one brick's node is down (an existing file's
    attribute, and a file created with it and published by link), the
    attribute reaches the returning brick by the self-heal daemons' index
    heal (a metadata heal, an entry heal), which starts on its own when
    the brick comes back: no `heal` command is given until the test
    bed's own wait at the end."""
    g = gfapi_rep3
    a, b, tmp = workdir + '/a', workdir + '/b', workdir + '/.gfpool-tmp-b'
    g.put(a, b'a' * 4096)
    back = cluster.brick_path(3, 'rep3')
    cluster.stop_node(3)
    g.setxattr(a, FORMAT_ATTR, b'raw')
    g.put(tmp, b'b' * 4096)
    g.fsetxattr(tmp, FORMAT_ATTR, b'qcow2')
    g.link(tmp, b)
    g.unlink(tmp)
    arrived = {}
    t0 = time.monotonic()

    def watch():
        while len(arrived) < 2 and time.monotonic() - t0 < 60:
            for n in (a, b):
                try:
                    if n not in arrived and os.getxattr(
                            os.path.join(back, n.lstrip('/')), FORMAT_ATTR):
                        arrived[n] = time.monotonic() - t0
                except OSError:
                    pass
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        cluster.start_node(3)
        online = time.monotonic() - t0
    finally:
        watcher.join()
    print('GlusterFS %s: node 3 back in %.2f s, attribute there after %s'
          % (glusterfs_version(), online,
             {os.path.basename(k): round(v, 2) for k, v in arrived.items()}))
    assert len(arrived) == 2, (
        'GlusterFS %s: the attribute did not reach the returning brick '
        'within 60 s: %s\n%s' % (glusterfs_version(), arrived,
                                 cluster.heal_diagnosis('rep3')))
    for n, v in ((a, b'raw'), (b, b'qcow2')):
        assert set(brick_xattr(cluster, 'rep3', n, FORMAT_ATTR).values()) \
            == {v}


def test_xattr_copied_to_a_replaced_brick(cluster):
    """A brick replaced by an empty directory (`replace-brick ... commit
    force`) gets every file back with its attributes from a full heal."""
    with extra_volume(cluster, 'xrep', [1, 2, 3]) as vol:
        g = Gfapi(vol, cluster.volume_hosts(vol))
        g.mkdir('/d')
        g.put('/d/a', b'a' * 65536)
        g.setxattr('/d/a', FORMAT_ATTR, b'raw')
        g.put('/d/b', b'')
        g.fsetxattr('/d/b', 'user.gfpool.format', b'qcow2')
        host, old = cluster.volumes[vol][2]
        new = old + '-new'
        cluster.cli('volume', 'replace-brick', vol, '%s:%s' % (host, old),
                    '%s:%s' % (host, new), 'commit', 'force')
        cluster.volumes[vol][2] = (host, new)
        cluster._save_state()
        shutil.rmtree(old, ignore_errors=True)
        t0 = time.monotonic()
        kicked = 0
        got = {}
        while time.monotonic() - t0 < 60:
            if time.monotonic() - kicked > 5:
                # the first "heal full" can reach a self-heal daemon
                # before it sees the new brick: repeat it
                cluster.cli('volume', 'heal', vol, 'full', check=False)
                kicked = time.monotonic()
            got = {n: brick_xattr(cluster, vol, '/d/' + n, a)[3]
                   for n, a in (('a', FORMAT_ATTR),
                                ('b', 'user.gfpool.format'))}
            if got == {'a': b'raw', 'b': b'qcow2'}:
                break
            time.sleep(0.1)
        print('GlusterFS %s: replaced brick healed in %.2f s' % (
            glusterfs_version(), time.monotonic() - t0))
        assert got == {'a': b'raw', 'b': b'qcow2'}, (
            got, cluster.heal_diagnosis(vol))
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
            [sys.executable, '-c', _CLIENT, testbed.HERE, volume,
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
