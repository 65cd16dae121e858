# SPDX-License-Identifier: LGPL-2.1-or-later
"""Real guests on gluster volumes: QEMU 7.2 (TCG) in the private libvirtd
with the QEMU driver boots a hand-made boot sector (tests/testbed/bootsector.py)
from a volume of our pool, through QEMU's own gluster driver (libgfapi),
with the <disk> XML `gfpool disk-xml` prints.  Plus virt-install 4.1
building disks from our pool's volumes.

One daemon and one pool (rep3, all three hosts) for the whole module: the
first domain start pays QEMU's capability probing (~20 s), later ones take
about a second.
"""

import contextlib
import os
import subprocess

import pytest

from testbed import (bootsector, cleanup_libvirtd, guests, make_unique_name,
                     module_path, start_libvirtd, unavailable)
from testbed.pools import GlusterPool, gfpool_cli, tcp_peers

BOOT_TIMEOUT = 60
VIRT_INSTALL = '/usr/bin/virt-install'


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def qemu_libvirtd():
    d = start_libvirtd(module_path(), with_qemu=True)
    try:
        yield d
    finally:
        cleanup_libvirtd(d)


@pytest.fixture(scope='module')
def guest_workdir(tmp_path_factory):
    return tmp_path_factory.mktemp('guest')


@pytest.fixture(scope='module')
def guest_pool(qemu_libvirtd, cluster, gfapi_rep3, guest_workdir):
    p = GlusterPool(qemu_libvirtd, cluster, gfapi_rep3,
                    make_unique_name('guest'), guest_workdir)
    try:
        yield p
    finally:
        p.cleanup()


@pytest.fixture(scope='module')
def boot_message(guest_pool):
    # unique per run: a line in the serial log can only come from our volume
    return 'GFPOOL-BOOT-OK ' + guest_pool.name


@pytest.fixture(scope='module')
def boot_vol(guest_pool, guest_workdir, boot_message):
    """boot.raw: 1 MiB raw volume made with vol-create-as, filled by
    vol-upload with the boot sector image."""
    img = bootsector.write_image(str(guest_workdir / 'boot.img'),
                                 boot_message, ticks=True)
    guest_pool.virsh('vol-create-as', guest_pool.name, 'boot.raw', '1M',
                     '--format', 'raw')
    guest_pool.virsh('vol-upload', '--pool', guest_pool.name, 'boot.raw', img)
    assert guest_pool.gfapi.read(guest_pool.path('boot.raw'), 0, 512) == \
        bootsector.boot_sector(boot_message, ticks=True)
    return 'boot.raw'


@pytest.fixture(scope='module')
def overlay_vol(guest_pool, boot_vol):
    """overlay.qcow2 backed by boot.raw (vol-create-as --backing-vol)."""
    guest_pool.virsh('vol-create-as', guest_pool.name, 'overlay.qcow2', '1M',
                     '--format', 'qcow2', '--backing-vol', boot_vol,
                     '--backing-vol-format', 'raw')
    return 'overlay.qcow2'


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def disk_xml(pool, vol, *opts):
    p = gfpool_cli('disk-xml', '--pool-xml', pool.xml_path, *(opts + (vol,)),
                   check=0)
    return p.stdout


def expected_hosts(pool):
    return [(h, guests.DEFAULT_PORT, guests.DEFAULT_TRANSPORT, None)
            for h in pool.hosts]


def expected_source(pool, vol):
    return {'protocol': 'gluster',
            'name': '%s%s/%s' % (pool.volume, pool.dir, vol),
            'hosts': expected_hosts(pool)}


def qemu_path(pool, vol):
    """What QEMU's gluster driver calls the image: no leading '/'."""
    return '%s/%s' % (pool.dir.lstrip('/'), vol)


class Guest:
    """A defined domain in the private daemon; diagnostics for asserts."""

    def __init__(self, libvirtd, workdir, name, disk):
        self.d = libvirtd
        self.name = name
        self.serial = os.path.join(str(workdir), name + '.serial')
        self.xml = guests.domain_xml(name, disk, self.serial)
        self.xml_path = os.path.join(str(workdir), name + '.xml')
        with open(self.xml_path, 'w') as f:
            f.write(self.xml)
        self.defined = False

    def define(self):
        self.d.virsh('define', self.xml_path)
        self.defined = True

    def start(self):
        p = self.d.virsh('start', self.name, check=False, timeout=120)
        assert p.returncode == 0, 'virsh start %s: %s%s' % (
            self.name, p.stderr, self.diag())

    def running(self):
        p = self.d.virsh('domstate', self.name, check=False)
        return p.returncode == 0 and p.stdout.strip() == 'running'

    def wait_boot(self, message):
        ok, content = guests.wait_serial(self.serial, message,
                                           timeout=BOOT_TIMEOUT,
                                           alive=self.running)
        assert ok, 'no %r on the serial port of %s within %ds: %r%s' % (
            message, self.name, BOOT_TIMEOUT, content, self.diag())
        return content

    def query_block(self):
        p = self.d.virsh('qemu-monitor-command', self.name, '--pretty',
                         '{"execute":"query-block"}', check=False)
        assert p.returncode == 0, p.stderr + self.diag()
        return p.stdout

    def dumpxml(self, inactive=False):
        args = ['dumpxml', self.name] + (['--inactive'] if inactive else [])
        return self.d.virsh(*args).stdout

    def diag(self):
        return ('\n--- QEMU log %s ---\n%s\n--- libvirtd log ---\n%s' % (
            self.d.qemu_log_path(self.name), self.d.qemu_log(self.name, 40),
            self.d.log_tail(20)))

    def cleanup(self):
        self.d.virsh('destroy', self.name, check=False)
        if self.defined:
            self.d.virsh('undefine', self.name, check=False)
            self.defined = False


def boot_and_check(libvirtd, pool, workdir, name, disk, message,
                   expect_nodes):
    """define + start a guest on `disk`; the boot line appears on its
    serial port; QEMU opened exactly `expect_nodes` (volume, path, hosts)
    with its gluster driver; no FUSE mount anywhere; libvirt kept the
    disk's meaning in the live XML.  Destroy + undefine at the end."""
    g = Guest(libvirtd, workdir, name, disk)
    try:
        g.define()
        g.start()
        g.wait_boot(message)
        qb = g.query_block()
        assert '"driver": "gluster"' in qb or '\\"driver\\": \\"gluster\\"' \
            in qb, qb + g.diag()
        nodes = guests.query_block_gluster(qb)
        assert nodes == sorted(expect_nodes), (nodes, qb, g.diag())
        for h in pool.hosts:
            assert h in qb
        qpid = libvirtd.qemu_pid(name)
        assert qpid, 'no pid file for running %s' % name
        assert '/block-gluster.so' in guests.maps_of(qpid), \
            'QEMU %d has not loaded its gluster block driver' % qpid
        mounts = guests.fuse_gluster_mounts([libvirtd.pid, qpid],
                                             pool.hosts)
        assert mounts == [], mounts
        live = guests.domain_disks(g.dumpxml())
        assert len(live) == 1
        assert live[0] == guests.disk_fields(disk), g.dumpxml()
        p = libvirtd.virsh('destroy', name, check=False)
        assert p.returncode == 0, p.stderr + g.diag()
        assert libvirtd.qemu_pid(name) is None
        libvirtd.virsh('undefine', name)
        g.defined = False
        assert name not in libvirtd.virsh('list', '--all', '--name').stdout
    finally:
        g.cleanup()
    return g


# ---------------------------------------------------------------------------
# boot
# ---------------------------------------------------------------------------
def test_boot_sector_image():
    """The hand-assembled sector: code, message, signature, padding."""
    s = bootsector.boot_sector('HELLO')
    assert len(s) == 512 and s[510:] == b'\x55\xaa'
    assert s[:bootsector.MSG_OFFSET] == bytes.fromhex(
        'fa fc 31c0 8ed8 be177c baf803 ac 84c0 7403 ee ebf8 f4 ebfd'
        .replace(' ', ''))
    assert s[bootsector.MSG_OFFSET:].startswith(b'HELLO\r\n\0')
    img = bootsector.make_image('HELLO', 1 << 20)
    assert len(img) == 1 << 20 and img[:512] == s and not any(img[512:])


def test_boot_raw_volume(qemu_libvirtd, guest_pool, boot_vol, boot_message,
                         guest_workdir):
    """vol-create-as + vol-upload, `gfpool disk-xml`, boot: QEMU reads the
    raw volume through gfapi from all three hosts."""
    disk = disk_xml(guest_pool, boot_vol)
    f = guests.disk_fields(disk)
    assert (f['type'], f['device'], f['driver_name'], f['driver_type']) == \
        ('network', 'disk', 'qemu', 'raw'), disk
    assert f['source'] == expected_source(guest_pool, boot_vol), disk
    assert f['chain'] == [], disk
    hosts = tuple(guest_pool.hosts)
    boot_and_check(qemu_libvirtd, guest_pool, guest_workdir,
                   make_unique_name('raw'), disk, boot_message,
                   [(guest_pool.volume, qemu_path(guest_pool, boot_vol),
                     hosts)])


def test_boot_qcow2_overlay(qemu_libvirtd, guest_pool, boot_vol, overlay_vol,
                            boot_message, guest_workdir):
    """A qcow2 overlay on the raw volume: disk-xml gives driver qcow2 and
    the backing chain as a network <backingStore>; the guest boots from
    the backing's data; QEMU opens both through gluster."""
    disk = disk_xml(guest_pool, overlay_vol)
    f = guests.disk_fields(disk)
    assert (f['type'], f['driver_type']) == ('network', 'qcow2'), disk
    assert f['source'] == expected_source(guest_pool, overlay_vol), disk
    assert f['chain'] == [{'type': 'network', 'format': 'raw',
                           'source': expected_source(guest_pool, boot_vol)}
                          ], disk
    hosts = tuple(guest_pool.hosts)
    boot_and_check(qemu_libvirtd, guest_pool, guest_workdir,
                   make_unique_name('qcow2'), disk, boot_message,
                   [(guest_pool.volume, qemu_path(guest_pool, boot_vol),
                     hosts),
                    (guest_pool.volume, qemu_path(guest_pool, overlay_vol),
                     hosts)])


@contextlib.contextmanager
def running_guest(libvirtd, workdir, prefix, disk, message):
    """A guest defined and started on `disk`, booted (its line on the serial
    port); destroyed and undefined afterwards, whatever happened."""
    name = make_unique_name(prefix)
    g = Guest(libvirtd, workdir, name, disk)
    try:
        g.define()
        g.start()
        g.wait_boot(message)
        yield g
        libvirtd.virsh('destroy', name)
    finally:
        g.cleanup()


def _last_tick(g):
    with open(g.serial, 'rb') as f:
        return max(bootsector.parse_ticks(f.read()) or [-1])


def block_job(g, *args):
    """A virsh block job verb on the running guest `g` (booted from a
    ticking boot sector): it succeeds and the guest runs on, its counter
    going on past where it was. -> the live <disk> fields."""
    last = _last_tick(g)
    p = g.d.virsh(*((args[0], g.name) + args[1:]), check=False, timeout=120)
    assert p.returncode == 0, p.stderr + g.diag()
    assert g.running()
    ok, text = guests.wait_serial(
        g.serial, None, timeout=BOOT_TIMEOUT, alive=g.running,
        until=lambda t: max(bootsector.parse_ticks(t) or [-1]) > last + 1)
    assert ok, 'the guest stopped counting after %s: %r%s' % (
        args[0], text[-200:], g.diag())
    ticks = bootsector.parse_ticks(text)
    assert ticks == list(range(len(ticks))), ticks
    return guests.domain_disks(g.dumpxml())[0]


def _strip_chain(disk):
    """The <disk> without its <backingStore>: libvirt then finds the chain
    itself, reading each image's header through the storage-file layer."""
    import xml.etree.ElementTree as ET
    root = ET.fromstring(disk)
    for b in root.findall('backingStore'):
        root.remove(b)
    return ET.tostring(root, encoding='unicode')


@pytest.mark.parametrize('given', ['xml-chain', 'probed-chain'])
def test_boot_qcow2_chain_through_our_storage_file_module(
        qemu_libvirtd, guest_pool, boot_vol, boot_message, guest_workdir,
        given):
    """A guest on a qcow2 chain of 3 overlays over the raw boot volume
    boots; libvirtd mapped OUR storage-file module for it (never Debian's);
    with the chain left out of the XML, libvirt found all 4 images through
    our module's reads and shows them in the live XML."""
    chain = [boot_vol]
    for i in range(1, 4):
        name = 'chain%d-%s.qcow2' % (i, given)
        guest_pool.virsh('vol-create-as', guest_pool.name, name, '1M',
                         '--format', 'qcow2', '--backing-vol', chain[-1],
                         '--backing-vol-format',
                         'raw' if i == 1 else 'qcow2')
        chain.append(name)
    disk = disk_xml(guest_pool, chain[-1])
    assert len(guests.disk_fields(disk)['chain']) == 3, disk
    if given == 'probed-chain':
        disk = _strip_chain(disk)
        assert guests.disk_fields(disk)['chain'] == [], disk
    hosts = tuple(guest_pool.hosts)
    with running_guest(qemu_libvirtd, guest_workdir, 'chain', disk,
                       boot_message) as g:
        nodes = guests.query_block_gluster(g.query_block())
        assert nodes == sorted((guest_pool.volume, qemu_path(guest_pool, v),
                                hosts) for v in chain), nodes
        live = guests.domain_disks(g.dumpxml())[0]
        assert [c['source']['name'] for c in live['chain']] == \
            ['%s%s/%s' % (guest_pool.volume, guest_pool.dir, v)
             for v in reversed(chain[:-1])], g.dumpxml()
        maps = qemu_libvirtd.maps()
        ours = os.path.realpath(qemu_libvirtd.file_module)
        assert ours in maps, 'libvirtd has not mapped %s' % ours
        assert '/usr/lib/x86_64-linux-gnu/libvirt/storage-file/' \
            'libvirt_storage_file_gluster.so' not in maps
        # the chain's reads went through the running pool's connection:
        # libvirtd holds one gfapi client of rep3 (one glusterd connection)
        peers = tcp_peers(qemu_libvirtd.pid, guest_pool.hosts)
        assert [p for p in peers if p[1] == 24007] == \
            [(guest_pool.hosts[0], 24007)], peers
    for v in reversed(chain[1:]):
        guest_pool.virsh('vol-delete', '--pool', guest_pool.name, v)


def _snapshot_xml(pool, vol):
    """A disk-only external snapshot whose new overlay is volume `vol` of
    the pool, as a network <source> with every host."""
    hosts = ''.join("<host name='%s' port='24007' transport='tcp'/>" % h
                    for h in pool.hosts)
    return ("<domainsnapshot><disks><disk name='vda' snapshot='external' "
            "type='network'><driver type='qcow2'/><source protocol='gluster' "
            "name='%s%s/%s'>%s</source></disk></disks></domainsnapshot>" %
            (pool.volume, pool.dir, vol, hosts))


def _local_check(pool, vol, workdir):
    """qemu-img check of a volume's bytes, downloaded."""
    local = os.path.join(str(workdir), 'check-' + vol)
    pool.virsh('vol-download', '--pool', pool.name, vol, local)
    # the image alone: its backing file stays on gluster
    spec = ('json:{"driver": "qcow2", "backing": null, '
            '"file": {"driver": "file", "filename": "%s"}}' % local)
    r = subprocess.run(['qemu-img', 'check', spec],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    os.unlink(local)
    assert r.returncode == 0, r.stdout
    return r.stdout


def test_snapshot_and_blockcommit_on_gluster(qemu_libvirtd, guest_pool,
                                             boot_vol, boot_message,
                                             guest_workdir):
    """On a running guest: a disk-only external snapshot whose overlay is a
    new volume of the pool (libvirt creates it through our storage-file
    module, QEMU formats it over gluster), listed by the pool with the
    right backing volume; then blockcommit --active --shallow --pivot back
    into the volume below. The guest runs throughout; both images pass qemu-img check."""
    base = 'snapbase.qcow2'
    snap = 'snap1.qcow2'
    guest_pool.virsh('vol-create-as', guest_pool.name, base, '1M', '--format',
                     'qcow2', '--backing-vol', boot_vol,
                     '--backing-vol-format', 'raw')
    sx = os.path.join(str(guest_workdir), 'snapshot.xml')
    with open(sx, 'w') as f:
        f.write(_snapshot_xml(guest_pool, snap))
    with running_guest(qemu_libvirtd, guest_workdir, 'snap',
                       disk_xml(guest_pool, base), boot_message) as g:
        live = block_job(g, 'snapshot-create', sx, '--disk-only',
                         '--no-metadata')
        assert live['source']['name'] == '%s%s/%s' % (
            guest_pool.volume, guest_pool.dir, snap), g.dumpxml()
        assert [c['source']['name'] for c in live['chain']][:1] == [
            '%s%s/%s' % (guest_pool.volume, guest_pool.dir, base)]
        # the pool sees the new overlay, backed by the volume it came from
        guest_pool.virsh('pool-refresh', guest_pool.name)
        vx = guest_pool.virsh('vol-dumpxml', '--pool', guest_pool.name,
                              snap).stdout
        assert "<format type='qcow2'/>" in vx and \
            guest_pool.uri(base) in vx, vx
        live = block_job(g, 'blockcommit', 'vda', '--active', '--shallow',
                         '--pivot', '--wait')
        assert live['source']['name'] == '%s%s/%s' % (
            guest_pool.volume, guest_pool.dir, base), g.dumpxml()
    _local_check(guest_pool, base, guest_workdir)
    _local_check(guest_pool, snap, guest_workdir)
    for v in (snap, base):
        guest_pool.virsh('vol-delete', '--pool', guest_pool.name, v)


def test_blockpull_on_gluster(qemu_libvirtd, guest_pool, boot_vol,
                              boot_message, guest_workdir):
    """blockpull on a running guest whose disk is a gluster overlay: the
    backing data moves into the overlay, libvirt drops the chain, the pool
    lists the overlay without a backing volume; the guest runs on and the
    image passes qemu-img check."""
    top = 'pull.qcow2'
    guest_pool.virsh('vol-create-as', guest_pool.name, top, '1M', '--format',
                     'qcow2', '--backing-vol', boot_vol,
                     '--backing-vol-format', 'raw')
    with running_guest(qemu_libvirtd, guest_workdir, 'pull',
                       disk_xml(guest_pool, top), boot_message) as g:
        live = block_job(g, 'blockpull', 'vda', '--wait')
        assert live['chain'] == [], g.dumpxml()
    guest_pool.virsh('pool-refresh', guest_pool.name)
    vx = guest_pool.virsh('vol-dumpxml', '--pool', guest_pool.name,
                          top).stdout
    assert '<backingStore>' not in vx, vx
    _local_check(guest_pool, top, guest_workdir)
    guest_pool.virsh('vol-delete', '--pool', guest_pool.name, top)


def test_blockcopy_local_disk_onto_gluster(qemu_libvirtd, guest_pool,
                                           boot_message, guest_workdir):
    """blockcopy --pivot of a running guest's local raw disk onto a volume
    of the pool (a network destination, made by QEMU over gluster through
    libvirt's storage-file layer): the guest runs on from gluster, the
    volume holds the disk's bytes."""
    local = bootsector.write_image(
        str(guest_workdir / 'copy-src.img'), boot_message, ticks=True)
    dest = 'copied.raw'
    hosts = ''.join("<host name='%s' port='24007' transport='tcp'/>" % h
                    for h in guest_pool.hosts)
    dx = os.path.join(str(guest_workdir), 'copy-dest.xml')
    with open(dx, 'w') as f:
        f.write("<disk type='network' device='disk'><driver type='raw'/>"
                "<source protocol='gluster' name='%s%s/%s'>%s</source>"
                "</disk>" % (guest_pool.volume, guest_pool.dir, dest, hosts))
    disk = ("<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
            "<source file='%s'/><target dev='vda' bus='virtio'/></disk>" % local)
    with running_guest(qemu_libvirtd, guest_workdir, 'copy', disk,
                       boot_message) as g:
        live = block_job(g, 'blockcopy', 'vda', '--xml', dx, '--wait',
                         '--pivot', '--transient-job')
        assert live['source']['name'] == '%s%s/%s' % (
            guest_pool.volume, guest_pool.dir, dest), g.dumpxml()
    with open(local, 'rb') as f:
        want = f.read()
    assert guest_pool.gfapi.read(guest_pool.path(dest), 0, len(want)) == want
    guest_pool.virsh('pool-refresh', guest_pool.name)
    guest_pool.virsh('vol-delete', '--pool', guest_pool.name, dest)


# ---------------------------------------------------------------------------
# the XML itself
# ---------------------------------------------------------------------------
DISK_VARIANTS = [
    ('raw', ()),
    ('overlay', ()),
    ('raw', ('--readonly', '--target', 'vdb')),
    ('raw', ('--cache', 'none', '--discard', 'unmap')),
    ('overlay', ('--bus', 'sata', '--target', 'sda', '--cache', 'writeback')),
    ('overlay', ('--nbd', '/run/gfpool-nbd/guest.sock')),
    ('overlay', ('--nbd', '/run/gfpool-nbd/guest.sock', '--reconnect-delay',
                 '10')),
]
# <reconnect delay=''/> of an NBD source came with libvirt 9.2.
RECONNECT_DELAY_SINCE = 9002000


def test_disk_xml_define_dumpxml_and_schema(qemu_libvirtd, guest_pool,
                                            boot_vol, overlay_vol,
                                            guest_workdir):
    """Every disk XML we emit validates against libvirt's RNG schema
    (wrapped in a minimal domain), and `virsh define` + `dumpxml
    --inactive` keep its meaning: protocol, name, hosts (port,
    transport), driver type, target, cache/discard/readonly, chain."""
    vols = {'raw': boot_vol, 'overlay': overlay_vol}
    problems = []
    version = qemu_libvirtd.conn().getLibVersion()
    for i, (which, opts) in enumerate(DISK_VARIANTS):
        if '--reconnect-delay' in opts and version < RECONNECT_DELAY_SINCE:
            continue
        disk = disk_xml(guest_pool, vols[which], *opts)
        f = guests.disk_fields(disk)
        if '--reconnect-delay' in opts:
            delay = opts[opts.index('--reconnect-delay') + 1]
            assert f['source'].get('reconnect_delay') == delay, disk
            assert all(b['source'].get('reconnect_delay') == delay
                       for b in f['chain']), disk
        path = str(guest_workdir / ('validate-%d.xml' % i))
        ok, out = guests.virt_xml_validate(guests.minimal_domain(disk),
                                             path)
        if not ok:
            problems.append('%s %s: schema: %s\n%s' % (which, opts, out,
                                                       disk))
        if '--readonly' in opts:
            assert f['readonly'], disk
        if '--cache' in opts:
            assert f['cache'] == opts[opts.index('--cache') + 1], disk
        if '--discard' in opts:
            assert f['discard'] == opts[opts.index('--discard') + 1], disk
        if '--bus' in opts:
            assert f['target_bus'] == opts[opts.index('--bus') + 1], disk
        name = make_unique_name('def%d' % i)
        g = Guest(qemu_libvirtd, guest_workdir, name, disk)
        ok, out = guests.virt_xml_validate(
            g.xml, str(guest_workdir / ('validate-dom-%d.xml' % i)))
        if not ok:
            problems.append('%s %s: whole domain: %s' % (which, opts, out))
        try:
            g.define()
            kept = guests.domain_disks(g.dumpxml(inactive=True))
            if kept != [f]:
                problems.append('%s %s: define+dumpxml changed the disk:\n'
                                '%s\n!=\n%s' % (which, opts, kept, [f]))
        finally:
            g.cleanup()
    assert not problems, '\n\n'.join(problems)


# ---------------------------------------------------------------------------
# virt-install 4.1
# ---------------------------------------------------------------------------
def virt_install(libvirtd, name, *args, check=True):
    """virt-install --print-xml for an imported disk, no OS, no network,
    no graphics, against the private QEMU daemon."""
    if not os.path.exists(VIRT_INSTALL):
        unavailable('virt-install not installed: %s' % VIRT_INSTALL)
    cmd = [VIRT_INSTALL, '--connect', libvirtd.uri, '--print-xml',
           '--name', name, '--memory', '64', '--vcpus', '1', '--import',
           '--osinfo', 'detect=off,require=off', '--virt-type', 'qemu',
           '--network', 'none', '--graphics', 'none',
           '--noautoconsole'] + list(args)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=120,
                       env=dict(os.environ, LC_ALL='C'))
    if check:
        assert p.returncode == 0, 'virt-install %s: rc=%d\n%s\n%s' % (
            ' '.join(args), p.returncode, p.stderr, libvirtd.log_tail(20))
    return p


def test_virt_install_raw_volume_all_hosts(qemu_libvirtd, guest_pool,
                                           boot_vol, boot_message,
                                           guest_workdir):
    """--disk vol=POOL/boot.raw: a network gluster disk naming every host
    of the pool; the domain virt-install prints (IDE disk, serial to a
    file) defines and boots from the volume."""
    name = make_unique_name('vi-raw')
    serial = str(guest_workdir / (name + '.serial'))
    p = virt_install(qemu_libvirtd, name,
                     '--disk', 'vol=%s/%s' % (guest_pool.name, boot_vol),
                     '--serial', 'file,path=%s' % serial,
                     '--console', 'none')
    disks = guests.domain_disks(p.stdout)
    assert len(disks) == 1, p.stdout
    f = disks[0]
    assert (f['type'], f['driver_type']) == ('network', 'raw'), p.stdout
    assert f['source'] == expected_source(guest_pool, boot_vol), p.stdout
    ok, out = guests.virt_xml_validate(
        p.stdout, str(guest_workdir / (name + '.xml')))
    assert ok, out
    g = Guest(qemu_libvirtd, guest_workdir, name, '')
    g.serial = serial
    with open(g.xml_path, 'w') as fh:
        fh.write(p.stdout)
    try:
        g.define()
        g.start()
        g.wait_boot(boot_message)
        nodes = guests.query_block_gluster(g.query_block())
        assert nodes == [(guest_pool.volume, qemu_path(guest_pool, boot_vol),
                          tuple(guest_pool.hosts))], nodes
    finally:
        g.cleanup()


def test_virt_install_qcow2_volume_driver_type(qemu_libvirtd, guest_pool,
                                               overlay_vol):
    """virt-install 4.1 writes driver type='raw' for every network volume
    (its own limitation: it does not look at the volume's format, see
    virtinst/devices/disk.py); driver.type=qcow2 overrides it."""
    name = make_unique_name('vi-qcow2')
    spec = 'vol=%s/%s' % (guest_pool.name, overlay_vol)
    p = virt_install(qemu_libvirtd, name, '--disk', spec)
    f = guests.domain_disks(p.stdout)[0]
    assert f['source'] == expected_source(guest_pool, overlay_vol), p.stdout
    assert f['driver_type'] == 'raw', (
        'virt-install 4.1 used to write raw for network volumes; if it now '
        'writes %r the workaround note in the docs can go' % f['driver_type'])
    p = virt_install(qemu_libvirtd, name, '--disk', spec + ',driver.type=qcow2')
    f = guests.domain_disks(p.stdout)[0]
    assert f['driver_type'] == 'qcow2', p.stdout
    assert f['source'] == expected_source(guest_pool, overlay_vol), p.stdout


def test_virt_install_new_volume_in_pool(qemu_libvirtd, guest_pool):
    """--disk pool=POOL,size=1: virt-install creates the volume through our
    createVol with a <volume> that has no type and no format; it is then
    listed as a network volume with a gluster:// key, and the printed disk
    points at it."""
    name = make_unique_name('vi-new')
    before = set(guest_pool.listed())
    p = virt_install(qemu_libvirtd, name,
                     '--disk', 'pool=%s,size=1' % guest_pool.name)
    after = set(guest_pool.listed())
    new = sorted(after - before)
    assert len(new) == 1 and new[0].startswith(name), (new, p.stdout)
    vol = new[0]
    try:
        lines = [l.split() for l in qemu_libvirtd.virsh(
            'vol-list', guest_pool.name, '--details').stdout.splitlines()]
        row = [l for l in lines if l and l[0] == vol]
        assert row and row[0][1] == guest_pool.uri(vol) and \
            row[0][2] == 'network', lines
        x = guest_pool.dumpxml(vol)
        assert x['type'] == 'network', x
        assert x['key'] == guest_pool.uri(vol) and \
            x['key'].startswith('gluster://'), x
        assert x['capacity'] == 1 << 30, x
        assert x['format'] == 'raw', x
        f = guests.domain_disks(p.stdout)[0]
        assert f['type'] == 'network', p.stdout
        assert f['source'] == expected_source(guest_pool, vol), p.stdout
        assert guest_pool.gfapi.stat(guest_pool.path(vol)).size == 1 << 30
    finally:
        qemu_libvirtd.virsh('vol-delete', '--pool', guest_pool.name, vol,
                            check=False)


def test_virt_install_new_volume_not_sparse(qemu_libvirtd, guest_pool):
    """--disk pool=POOL,size=0.01,sparse=no: virt-install asks for
    allocation == capacity (10737418 bytes, not a multiple of 512); the
    volume is created fully allocated with exactly that capacity.
    (virt-install 4.1 itself refuses format=qcow2 for gluster pool
    volumes: "Format attribute not supported for this volume type".)"""
    name = make_unique_name('vi-full')
    before = set(guest_pool.listed())
    p = virt_install(qemu_libvirtd, name, '--disk',
                     'pool=%s,size=0.01,sparse=no' % guest_pool.name)
    new = sorted(set(guest_pool.listed()) - before)
    assert len(new) == 1, (new, p.stdout)
    try:
        x = guest_pool.dumpxml(new[0])
        want = int(0.01 * (1 << 30))
        assert x['capacity'] == want, x
        assert x['allocation'] >= want, x
        assert guest_pool.gfapi.stat(guest_pool.path(new[0])).size == want
        f = guests.domain_disks(p.stdout)[0]
        assert f['source'] == expected_source(guest_pool, new[0]), p.stdout
    finally:
        qemu_libvirtd.virsh('vol-delete', '--pool', guest_pool.name, new[0],
                            check=False)


QEMU_UID = 64055    # Debian's libvirt-qemu user and group


def test_qemu_runs_as_libvirt_qemu_on_images_chowned_through_our_module(
        cluster, gfapi_rep3, guest_workdir):
    """qemu.conf user/group = libvirt-qemu with dynamic_ownership = 1:
    libvirt's DAC driver gives every image of the chain to 64055:64055
    through our storage-file module's chown (QEMU's gfapi client sends its
    own uid: a root-owned 0600 image could not be opened), QEMU runs as
    64055 and boots from the chain (GlusterFS accepts the unprivileged
    ports of a non-root client by default).  At destroy libvirt 9.0 gives
    the top image back to root:root; libvirt 11.3 gives nothing back (its
    DAC restore skips sources without a local path: docs/disk-xml.md)."""
    d = start_libvirtd(module_path(), with_qemu=True,
                        qemu_user='libvirt-qemu')
    pool = None
    try:
        pool = GlusterPool(d, cluster, gfapi_rep3, make_unique_name('uid'),
                           guest_workdir)
        message = 'GFPOOL-BOOT-OK ' + pool.name
        img = bootsector.write_image(str(guest_workdir / 'uid-boot.img'),
                                     message)
        pool.virsh('vol-create-as', pool.name, 'base.raw', '1M',
                   '--format', 'raw')
        pool.virsh('vol-upload', '--pool', pool.name, 'base.raw', img)
        pool.virsh('vol-create-as', pool.name, 'top.qcow2', '1M', '--format',
                   'qcow2', '--backing-vol', 'base.raw',
                   '--backing-vol-format', 'raw')
        chain = ['top.qcow2', 'base.raw']

        def owners():
            return [(st.uid, st.gid, st.mode & 0o777) for st in
                    (gfapi_rep3.stat(pool.path(v)) for v in chain)]
        before = owners()
        assert [o[:2] for o in before] == [(0, 0)] * 2, before
        assert before[0][2] & 0o007 == 0, before   # others may not read

        disk = disk_xml(pool, 'top.qcow2')
        with running_guest(d, guest_workdir, 'uid', disk, message) as g:
            qpid = d.qemu_pid(g.name)
            with open('/proc/%d/status' % qpid) as f:
                ids = dict(l.split(':', 1) for l in f.read().splitlines())
            assert ids['Uid'].split()[:2] == [str(QEMU_UID)] * 2, ids['Uid']
            assert ids['Gid'].split()[:2] == [str(QEMU_UID)] * 2, ids['Gid']
            assert [o[:2] for o in owners()] == [(QEMU_UID, QEMU_UID)] * 2
            assert os.path.realpath(d.file_module) in d.maps()
        version = d.conn().getLibVersion()
        after = [o[:2] for o in owners()]
        if version < 11000000:
            assert after == [(0, 0), (QEMU_UID, QEMU_UID)], after
        else:
            assert after == [(QEMU_UID, QEMU_UID)] * 2, after
    finally:
        if pool:
            pool.cleanup()
        cleanup_libvirtd(d)
