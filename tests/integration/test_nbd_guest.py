# SPDX-License-Identifier: LGPL-2.1-or-later
"""Guests whose disks come from nbdkit-gfpool-plugin, with no QEMU gluster
driver at all: QEMU's block-gluster.so is absent from the private
libvirtd's namespace, QEMU runs as libvirt-qemu (64055), and the plugin
(guests=libvirt) knows each client from the private libvirtd's own
records (its /run/libvirt/qemu, a directory of the daemon's work dir) and
lets it open what its domain's live definition names. Two guests on qcow2
chains share one nbdkit and its one gfapi client for the whole module:
neither can open the other's volume nor can a process that claims to be
one; disks attached, blockcopy destinations and snapshot overlays work
through `gfpool nbd-grant`; a detached disk's volume is refused after."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import testbed
import testbed.guests
from testbed import (bootsector, cleanup_libvirtd, make_unique_name,
                     module_path, start_libvirtd)
from testbed.pools import REPO, GlusterPool, gfpool_cli, tcp_peers
from test_guest import running_guest
from test_nbd import PLUGIN, Nbdkit

QEMU_UID = 64055
CLI = os.path.join(testbed.BUILD, 'src', 'tools', 'gfpool')
CLIENT = os.path.join(testbed.HERE, 'nbd_client.py')


@pytest.fixture(scope='module')
def nbd_libvirtd():
    if not os.path.exists(PLUGIN):
        pytest.skip('nbdkit plugin not built')
    d = start_libvirtd(module_path(), with_qemu=True, qemu_user='libvirt-qemu',
                        qemu_hide_modules=('block-gluster.so',))
    try:
        yield d
    finally:
        cleanup_libvirtd(d)


def _serve(d, pool, work, sock):
    """nbdkit on `sock` for QEMU's uid, checking guests against daemon
    d's records, grants next to the socket."""
    n = Nbdkit(work, pool.xml_path, 'guests=libvirt',
               'state-dir=' + os.path.join(d.workdir, 'run', 'qemu'),
               'grant-dir=' + _grant_dir(sock), sock=sock)
    os.chown(sock, 0, QEMU_UID)
    os.chmod(sock, 0o660)
    return n


def _grant_dir(sock):
    return os.path.join(os.path.dirname(sock), 'grants')


@pytest.fixture(scope='module')
def nbd_setup(nbd_libvirtd, cluster, gfapi_rep3, tmp_path_factory):
    """A pool with a ticking boot volume and two overlays on it, and an
    nbdkit serving it on a socket QEMU (64055) may use, guests=libvirt."""
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
        n = _serve(nbd_libvirtd, pool, work, os.path.join(sockdir, 'pool.sock'))
        yield pool, n, message, work
    finally:
        if n:
            n.stop()
        pool.cleanup()
        shutil.rmtree(sockdir, ignore_errors=True)


def _disk(pool, n, vol, *opts):
    return gfpool_cli('disk-xml', '--pool-xml', pool.xml_path, '--nbd', n.sock, *opts, vol,
                      check=0).stdout


@pytest.fixture(scope='module')
def guests(nbd_libvirtd, nbd_setup):
    """Guests a (on a.qcow2) and b (on b.qcow2), running for the whole
    module: every check below reuses them."""
    pool, n, message, work = nbd_setup
    with contextlib.ExitStack() as stack:
        try:
            ga = stack.enter_context(running_guest(nbd_libvirtd, work, 'nbda',
                                                   _disk(pool, n, 'a.qcow2'), message))
            gb = stack.enter_context(running_guest(nbd_libvirtd, work, 'nbdb',
                                                   _disk(pool, n, 'b.qcow2'), message))
        except AssertionError as e:
            raise AssertionError('%s\n--- nbdkit ---\n%s' % (e, n.output()[-3000:]))
        ga.sock = gb.sock = n.sock
        yield ga, gb
    # nothing outlives the guests: no grant is left
    gd = _grant_dir(n.sock)
    assert not os.path.isdir(gd) or os.listdir(gd) == []


def _blockdev_add(g, export, node):
    cmd = ('{"execute":"blockdev-add","arguments":{"driver":"nbd","node-name":"%s",'
           '"server":{"type":"unix","path":"%s"},"export":"%s","read-only":true}}'
           % (node, g.sock, export))
    return g.d.virsh('qemu-monitor-command', g.name, cmd, check=False)


def _opens(g, export):
    """Can guest g's QEMU open `export` now (a blockdev-add of its own,
    removed again)?"""
    node = 'probe%d' % time.monotonic_ns()
    p = _blockdev_add(g, export, node)
    ok = p.returncode == 0 and '"error"' not in p.stdout
    if ok:
        g.d.virsh('qemu-monitor-command', g.name,
                  '{"execute":"blockdev-del","arguments":{"node-name":"%s"}}' % node)
    return ok


def _grant(d, n, g, *args, check=0):
    p = subprocess.run([CLI, 'nbd-grant', '--state-dir', os.path.join(d.workdir, 'run', 'qemu'),
                        '--grant-dir', _grant_dir(n.sock), g.name, n.sock] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=180)
    assert p.returncode == check, (args, p.returncode, p.stdout, p.stderr + g.diag())
    return p


def test_two_guests_one_nbdkit_no_gluster_driver(nbd_libvirtd, nbd_setup, guests, cluster):
    pool, n, message, work = nbd_setup
    d = nbd_libvirtd
    ga, gb = guests
    hosts = [h for h, _ in cluster.volume_hosts('rep3')]
    for g in (ga, gb):
        qpid = d.qemu_pid(g.name)
        with open('/proc/%d/status' % qpid) as f:
            assert '\nUid:\t%d\t' % QEMU_UID in f.read()
        # QEMU could not have used its gluster driver: it is not there
        assert not os.path.exists('/proc/%d/root%s/block-gluster.so'
                                  % (qpid, testbed.QEMU_MODULE_DIR))
        assert '/block-gluster.so' not in testbed.guests.maps_of(qpid)
        qb = g.query_block()
        assert ('"driver": "nbd"' in qb or '\\"driver\\": \\"nbd\\"' in qb) \
            and 'gluster' not in qb, qb
        assert tcp_peers(qpid, hosts) == []
        # QEMU holds its pid file's write lock (libvirt hands it the locked
        # descriptor across its exec): the plugin relies on it when the
        # wall clock was stepped since the guest started
        st = os.stat(os.path.join(d.workdir, 'run', 'qemu', g.name + '.pid'))
        want = ': POSIX  ADVISORY  WRITE %d %02x:%02x:%d ' % (
            qpid, os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
        with open('/proc/locks') as f:
            assert want in f.read(), want
    # one gfapi client for both guests
    peers = tcp_peers(n.proc.pid, hosts)
    assert [p for p in peers if p[1] == 24007] == [(hosts[0], 24007)], peers

    # isolation: guest a's QEMU opens its own exports again, not b's
    assert not _opens(ga, 'b.qcow2')
    assert _opens(ga, 'base.raw')
    assert "export 'b.qcow2': no such volume" in n.output()


def test_a_claimed_name_opens_nothing(nbd_setup, guests):
    """A process of QEMU's uid with guest b's name on its command line,
    as QEMU has it (`-name guest=NAME,debug-threads=on`), is no guest."""
    pool, n, message, work = nbd_setup
    ga, gb = guests
    for verb in (['go', 'b.qcow2'], ['list']):
        p = subprocess.run(['/usr/bin/python3', CLIENT, n.sock] + verb +
                           ['-name', 'guest=%s,debug-threads=on' % gb.name],
                           stdout=subprocess.PIPE, universal_newlines=True, timeout=60,
                           user=QEMU_UID, group=QEMU_UID, extra_groups=[], cwd='/')
        r = json.loads(p.stdout)
        assert not r['ok'] and r['exports'] == [], r
    assert 'not the QEMU of a running domain' in n.output()


def _device_of(g, export):
    """The qdev of the guest's disk whose image is `export`."""
    blocks = json.loads(g.d.virsh('qemu-monitor-command', g.name,
                                  '{"execute":"query-block"}').stdout)['return']
    for b in blocks:
        if 'inserted' in b and ('/%s"' % export in json.dumps(b['inserted'])
                                or "'%s'" % export in json.dumps(b['inserted'])
                                or export in b['inserted'].get('file', '')):
            return b['qdev']
    raise AssertionError('no disk on %s in %s' % (export, json.dumps(blocks)))


def test_attach_device_with_a_grant_detach_refuses_after(nbd_libvirtd, nbd_setup, guests):
    """virsh attach-device of an NBD disk: QEMU opens the export before
    libvirt saves the status that names it, so without a grant the attach
    fails; with `gfpool nbd-grant ... -- virsh attach-device` it works,
    the guest's QEMU writes and reads the new disk, and no grant is left.
    After detach-device the volume is refused to that QEMU."""
    pool, n, message, work = nbd_setup
    d = nbd_libvirtd
    ga, gb = guests
    pool.virsh('vol-create-as', pool.name, 'hot.raw', '1M', '--format', 'raw')
    dx = str(work / 'hot.xml')
    with open(dx, 'w') as f:
        # usb: the guest has no ACPI, so no PCI hotplug
        f.write(_disk(pool, n, 'hot.raw', '--target', 'sdb', '--bus', 'usb'))
    p = d.virsh('attach-device', ga.name, dx, '--live', check=False)
    assert p.returncode != 0, 'attached without a grant: ' + p.stdout
    assert "export 'hot.raw': no such volume" in n.output()
    _grant(d, n, ga, 'hot.raw', '--', 'virsh', '-c', d.uri, 'attach-device', ga.name, dx,
           '--live')
    assert os.listdir(_grant_dir(n.sock)) == []
    assert 'hot.raw' in [dk['source']['name'] for dk in testbed.guests.domain_disks(ga.dumpxml())]
    ok, out = _guest_io(ga, 'write -P 0x3c 0 64k', _device_of(ga, 'hot.raw'))
    assert ok, out
    ok, out = _guest_io(ga, 'read -P 0x3c 0 64k', _device_of(ga, 'hot.raw'))
    assert ok, out
    assert _opens(ga, 'hot.raw')
    d.virsh('detach-device', ga.name, dx, '--live')
    for _ in range(100):
        if 'hot.raw' not in ga.dumpxml():
            break
        time.sleep(0.1)
    assert 'hot.raw' not in ga.dumpxml()
    assert not _opens(ga, 'hot.raw')
    assert not _opens(gb, 'hot.raw')


def test_blockcopy_and_snapshot_onto_nbd_volumes(nbd_libvirtd, nbd_setup, guests):
    """On running guest a: blockcopy --shallow --reuse-external --pivot
    onto a qcow2 volume made beforehand on the same backing volume, then a
    disk-only external snapshot --reuse-external onto an overlay volume
    made beforehand on the copy: both with a grant, the guest counting on
    throughout, its live definition then naming the new images, which it
    may open and guest b may not; the image it left is refused to it."""
    pool, n, message, work = nbd_setup
    d = nbd_libvirtd
    ga, gb = guests
    top = testbed.guests.domain_disks(ga.dumpxml())[0]['source']['name']
    pool.virsh('vol-create-as', pool.name, 'copy.qcow2', '1M', '--format', 'qcow2',
               '--backing-vol', 'base.raw', '--backing-vol-format', 'raw')
    dx = str(work / 'copy-dest.xml')
    with open(dx, 'w') as f:
        # with its chain: libvirt cannot read an NBD image's backing file
        # (no storage-file backend for nbd), and without one in the XML the
        # pivoted disk would have none
        f.write(_disk(pool, n, 'copy.qcow2'))
    copy = ['blockcopy', ga.name, 'vda', '--xml', dx, '--shallow', '--reuse-external',
            '--wait', '--pivot', '--transient-job']
    p = d.virsh(*copy, check=False, timeout=120)
    assert p.returncode != 0, 'a blockcopy onto an export without a grant: ' + p.stdout
    assert "export 'copy.qcow2': no such volume" in n.output()
    _grant(d, n, ga, 'copy.qcow2', '--', 'virsh', '-c', d.uri, *copy)
    live = _still_counting(ga)
    assert live['source']['name'] == 'copy.qcow2', ga.dumpxml()
    assert [c['source']['name'] for c in live['chain']] == ['base.raw'], ga.dumpxml()
    ok, out = _guest_io(ga, 'read -P 0xfa 0 1')    # the boot sector, from base.raw
    assert ok, out
    assert not _opens(ga, top)

    pool.virsh('vol-create-as', pool.name, 'snap.qcow2', '1M', '--format', 'qcow2',
               '--backing-vol', 'copy.qcow2', '--backing-vol-format', 'qcow2')
    sx = str(work / 'snap.xml')
    with open(sx, 'w') as f:
        f.write("<domainsnapshot><disks><disk name='vda' snapshot='external' type='network'>"
                "<driver type='qcow2'/><source protocol='nbd' name='snap.qcow2'>"
                "<host transport='unix' socket='%s'/></source></disk></disks>"
                "</domainsnapshot>" % n.sock)
    p = d.virsh('snapshot-create', ga.name, sx, '--disk-only', '--reuse-external',
                '--no-metadata', check=False, timeout=120)
    assert p.returncode != 0, 'a snapshot onto an export without a grant: ' + p.stdout
    assert "export 'snap.qcow2': no such volume" in n.output()
    _grant(d, n, ga, 'snap.qcow2', '--', 'virsh', '-c', d.uri, 'snapshot-create', ga.name,
           sx, '--disk-only', '--reuse-external', '--no-metadata')
    live = _still_counting(ga)
    assert live['source']['name'] == 'snap.qcow2', ga.dumpxml()
    assert [c['source']['name'] for c in live['chain']] == ['copy.qcow2', 'base.raw'], \
        ga.dumpxml()
    ok, out = _guest_io(ga, 'read -P 0xfa 0 1')
    assert ok, out
    assert os.listdir(_grant_dir(n.sock)) == []
    assert _opens(ga, 'snap.qcow2') and _opens(ga, 'copy.qcow2')
    assert not _opens(gb, 'snap.qcow2') and not _opens(gb, 'copy.qcow2')


def _still_counting(g):
    """The guest runs on, its counter going on; -> its first live disk."""
    last = max(bootsector.parse_ticks(open(g.serial, 'rb').read()) or [-1])
    ok, text = testbed.guests.wait_serial(
        g.serial, None, timeout=90, alive=g.running,
        until=lambda t: max(bootsector.parse_ticks(t) or [-1]) > last + 1)
    assert ok, 'the guest stopped counting: %r%s' % (text[-200:], g.diag())
    return testbed.guests.domain_disks(g.dumpxml())[0]


# <reconnect delay=''/> of an NBD source came with libvirt 9.2.
RECONNECT_DELAY_SINCE = 9002000


def _guest_io(g, command, dev=None):
    """A qemu-io command on the guest's disk inside its QEMU: requests that
    go through the guest's own block graph (its qcow2 layer, its NBD
    client), as the guest's writes and flushes do. qemu-io prints to
    QEMU's stdout, the domain's log. -> (True when it printed no failure,
    what it printed)"""
    before = len(g.d.qemu_log(g.name, 100000))
    blocks = json.loads(g.d.virsh('qemu-monitor-command', g.name,
                                  '{"execute":"query-block"}').stdout)['return']
    dev = dev or [b['qdev'] for b in blocks if 'inserted' in b][0]
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
    n = _serve(d, pool, work, sock)
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
            n = _serve(d, pool, work, sock)
            if reconnect:
                for cmd in ('write -P 0xa5 256k 64k', 'flush'):
                    ok, out = _guest_io(g, cmd)
                    assert ok, cmd + ' after the restart: ' + out
                ok, out = _volume_holds(pool, work, 'c.qcow2', 0xa5, 256 << 10, 64 << 10)
                assert ok, 'the write after the reconnect is not in the volume: ' + out
            last = max(bootsector.parse_ticks(open(g.serial, 'rb').read()) or [-1])
            ok, text = testbed.guests.wait_serial(
                g.serial, None, timeout=60, alive=g.running,
                until=lambda t: max(bootsector.parse_ticks(t) or [-1]) > last + 1)
            assert ok, 'the guest stopped after nbdkit was killed: %r' % text[-200:]
    finally:
        n.stop()
        pool.virsh('vol-delete', '--pool', pool.name, 'c.qcow2', check=False)
