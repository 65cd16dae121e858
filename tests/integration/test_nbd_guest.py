"""Guests whose disks come from nbdkit-gfpool-plugin, with no QEMU gluster
driver at all: QEMU's block-gluster.so is absent from the private
libvirtd's namespace, QEMU runs as libvirt-qemu (64055), and libvirt's
qemu hook (gfpool nbd-hook) tells the plugin which volumes each guest may
open. Two guests on qcow2 chains share one nbdkit and its one gfapi
client; neither can open the other's volume."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import _cleanup_libvirtd, _start_libvirtd, make_unique_name, module_path
from helpers import REPO, GlusterPool, gfpool_cli, tcp_peers
from guest import bootsector, guestlib
from test_guest import running_guest
from test_nbd import PLUGIN, Nbdkit
import testbed

QEMU_UID = 64055
CLI = os.path.join(testbed.BUILD, 'src', 'tools', 'gfpool')


def _hook():
    """The hook the package installs, calling this build's CLI."""
    with open(os.path.join(REPO, 'src', 'tools', 'gfpool-nbd.hook')) as f:
        return f.read().replace('/usr/bin/gfpool', CLI)


@pytest.fixture(scope='module')
def nbd_libvirtd():
    if not os.path.exists(PLUGIN):
        pytest.skip('nbdkit plugin not built')
    d = _start_libvirtd(module_path(), with_qemu=True, qemu_user='libvirt-qemu',
                        qemu_hide_modules=('block-gluster.so',),
                        hooks={'qemu.d/gfpool-nbd': _hook()})
    try:
        yield d
    finally:
        _cleanup_libvirtd(d)


@pytest.fixture(scope='module')
def nbd_setup(nbd_libvirtd, cluster, gfapi_rep3, tmp_path_factory):
    """A pool with a ticking boot volume and two overlays on it, and an
    nbdkit serving it on a socket QEMU (64055) may use, with allow-dir."""
    work = tmp_path_factory.mktemp('nbdguest')
    pool = GlusterPool(nbd_libvirtd, cluster, gfapi_rep3, make_unique_name('nbdg'), work)
    # a socket dir QEMU can reach (pytest's tmp dirs are root's 0700)
    sockdir = tempfile.mkdtemp(prefix='gfpool-nbd-', dir='/tmp')
    os.chmod(sockdir, 0o755)
    n = None
    try:
        message = 'GFPOOL-NBD-BOOT ' + pool.name
        img = bootsector.write_image(str(work / 'boot.img'), message, ticks=True)
        pool.virsh('vol-create-as', pool.name, 'base.raw', '1M', '--format', 'raw')
        pool.virsh('vol-upload', '--pool', pool.name, 'base.raw', img)
        for v in ('a.qcow2', 'b.qcow2'):
            pool.virsh('vol-create-as', pool.name, v, '1M', '--format', 'qcow2',
                       '--backing-vol', 'base.raw', '--backing-vol-format', 'raw')
        sock = os.path.join(sockdir, 'pool.sock')
        os.mkdir(sock + '.allow')
        n = Nbdkit(work, pool.xml_path, 'allow-dir=' + sock + '.allow', sock=sock)
        os.chown(sock, 0, QEMU_UID)
        os.chmod(sock, 0o660)
        yield pool, n, message, work
    finally:
        if n:
            n.stop()
        pool.cleanup()
        shutil.rmtree(sockdir, ignore_errors=True)


def _disk(pool, n, vol):
    return gfpool_cli('disk-xml', '--pool-xml', pool.xml_path, '--nbd', n.sock, vol,
                      check=0).stdout


def _blockdev_add(g, export, node):
    cmd = ('{"execute":"blockdev-add","arguments":{"driver":"nbd","node-name":"%s",'
           '"server":{"type":"unix","path":"%s"},"export":"%s","read-only":true}}'
           % (node, g.sock, export))
    return g.d.virsh('qemu-monitor-command', g.name, cmd, check=False)


def test_two_guests_one_nbdkit_no_gluster_driver(nbd_libvirtd, nbd_setup, cluster):
    pool, n, message, work = nbd_setup
    d = nbd_libvirtd
    hosts = [h for h, _ in cluster.volume_hosts('rep3')]
    with running_guest(d, work, 'nbda', _disk(pool, n, 'a.qcow2'), message) as ga, \
            running_guest(d, work, 'nbdb', _disk(pool, n, 'b.qcow2'), message) as gb:
        for g, vol in ((ga, 'a.qcow2'), (gb, 'b.qcow2')):
            qpid = d.qemu_pid(g.name)
            with open('/proc/%d/status' % qpid) as f:
                assert '\nUid:\t%d\t' % QEMU_UID in f.read()
            # QEMU could not have used its gluster driver: it is not there
            assert not os.path.exists('/proc/%d/root%s/block-gluster.so'
                                      % (qpid, testbed.QEMU_MODULE_DIR))
            assert '/block-gluster.so' not in guestlib.maps_of(qpid)
            qb = g.query_block()
            assert ('"driver": "nbd"' in qb or '\\"driver\\": \\"nbd\\"' in qb) \
                and 'gluster' not in qb, qb
            assert tcp_peers(qpid, hosts) == []
            with open(os.path.join(n.sock + '.allow', g.name)) as f:
                assert sorted(f.read().split()) == sorted([vol, 'base.raw'])
        # one gfapi client for both guests
        peers = tcp_peers(n.proc.pid, hosts)
        assert [p for p in peers if p[1] == 24007] == [(hosts[0], 24007)], peers

        # isolation: guest a's QEMU opens its own export again, not b's
        ga.sock = gb.sock = n.sock
        p = _blockdev_add(ga, 'b.qcow2', 'peek')
        assert p.returncode != 0 or '"error"' in p.stdout, p.stdout
        p = _blockdev_add(ga, 'a.qcow2', 'again')
        assert p.returncode == 0 and '"error"' not in p.stdout, p.stdout + p.stderr
        ga.d.virsh('qemu-monitor-command', ga.name,
                   '{"execute":"blockdev-del","arguments":{"node-name":"again"}}')
        assert "export 'b.qcow2': no such volume" in n.output()
    # released: the hook removed the guests' lists
    assert os.listdir(n.sock + '.allow') == []


# <reconnect delay=''/> of an NBD source came with libvirt 9.2.
RECONNECT_DELAY_SINCE = 9002000


def _guest_io(g, command):
    """A qemu-io command on the guest's disk inside its QEMU: requests that
    go through the guest's own block graph (its qcow2 layer, its NBD
    client), as the guest's writes and flushes do. qemu-io prints to
    QEMU's stdout, the domain's log. -> (True when it printed no failure,
    what it printed)"""
    before = len(g.d.qemu_log(g.name, 100000))
    blocks = json.loads(g.d.virsh('qemu-monitor-command', g.name,
                                  '{"execute":"query-block"}').stdout)['return']
    dev = [b['qdev'] for b in blocks if 'inserted' in b][0]
    p = g.d.virsh('qemu-monitor-command', '--hmp', g.name,
                  'qemu-io -d %s "%s"' % (dev, command), check=False, timeout=90)
    out = p.stdout + p.stderr + g.d.qemu_log(g.name, 100000)[before:]
    return p.returncode == 0 and 'fail' not in out.lower() and 'error' not in out.lower(), out


def _volume_holds(pool, work, vol, pattern, offset, length):
    """The guest-visible bytes of qcow2 `vol` at offset hold `pattern`, as a
    fresh gfapi client reads the image (gfpool vol-download), the image's
    own clusters only (no backing)."""
    local = str(work / ('check-%d.qcow2' % time.monotonic_ns()))
    gfpool_cli('vol-download', '--pool-xml', pool.xml_path, vol, local)
    spec = ('json:{"driver":"qcow2","file":{"driver":"file","filename":"%s"},'
            '"backing":null}' % local)
    p = subprocess.run(['qemu-io', '-r', spec, '-c',
                        'read -P %d %d %d' % (pattern, offset, length)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=60)
    os.unlink(local)
    return p.returncode == 0 and 'read %d/%d bytes' % (length, length) in p.stdout \
        and 'fail' not in p.stdout.lower(), p.stdout


def _serve(pool, work, sock):
    n = Nbdkit(work, pool.xml_path, 'allow-dir=' + sock + '.allow', sock=sock)
    os.chown(sock, 0, QEMU_UID)
    os.chmod(sock, 0o660)
    return n


def test_guest_flush_survives_a_killed_nbdkit(nbd_libvirtd, nbd_setup):
    """A running guest writes and flushes through its NBD disk; nbdkit is
    then killed (SIGKILL): what the flush acknowledged is in the volume.
    nbdkit is started again on the same socket; where libvirt can say so
    (<reconnect delay/>, libvirt >= 9.2), QEMU reconnects and the guest's
    next write and flush land too. The guest runs on throughout."""
    pool, n0, message, work = nbd_setup
    d = nbd_libvirtd
    reconnect = d.conn().getLibVersion() >= RECONNECT_DELAY_SINCE
    pool.virsh('vol-create-as', pool.name, 'c.qcow2', '1M', '--format', 'qcow2',
               '--backing-vol', 'base.raw', '--backing-vol-format', 'raw')
    sock = os.path.join(os.path.dirname(n0.sock), 'crash.sock')
    os.mkdir(sock + '.allow')
    n = _serve(pool, work, sock)
    disk = gfpool_cli('disk-xml', '--pool-xml', pool.xml_path, '--nbd', sock,
                      *(('--reconnect-delay', '30') if reconnect else ()),
                      'c.qcow2').stdout
    try:
        with running_guest(d, work, 'nbdc', disk, message) as g:
            for cmd in ('write -P 0x5a 512k 64k', 'flush'):
                ok, out = _guest_io(g, cmd)
                assert ok, cmd + ': ' + out
            n.stop(signal.SIGKILL)
            ok, out = _volume_holds(pool, work, 'c.qcow2', 0x5a, 512 << 10, 64 << 10)
            assert ok, 'the flushed write is not in the volume: ' + out

            os.unlink(sock)
            n = _serve(pool, work, sock)
            if reconnect:
                for cmd in ('write -P 0xa5 256k 64k', 'flush'):
                    ok, out = _guest_io(g, cmd)
                    assert ok, cmd + ' after the restart: ' + out
                ok, out = _volume_holds(pool, work, 'c.qcow2', 0xa5, 256 << 10, 64 << 10)
                assert ok, 'the write after the reconnect is not in the volume: ' + out
            last = max(bootsector.parse_ticks(open(g.serial, 'rb').read()) or [-1])
            ok, text = guestlib.wait_serial(
                g.serial, None, timeout=60, alive=g.running,
                until=lambda t: max(bootsector.parse_ticks(t) or [-1]) > last + 1)
            assert ok, 'the guest stopped after nbdkit was killed: %r' % text[-200:]
    finally:
        n.stop()
        pool.virsh('vol-delete', '--pool', pool.name, 'c.qcow2', check=False)
