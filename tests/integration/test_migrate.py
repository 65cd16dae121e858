# SPDX-License-Identifier: LGPL-2.1-or-later
"""Two hypervisors sharing one gluster pool: live migration of a running
guest whose disk is a qcow2 chain on the pool, there and back, and the
pool's volumes seen and created from both.

The two "hosts" are two private libvirtds with the QEMU driver and our
modules, each in a UTS namespace of its own (hostname gfpool-a / gfpool-b),
with a host UUID of its own (libvirt refuses a migration between equal
ones) and an /etc/hosts naming both on loopback addresses, so the
destination hands out its own name in the migration URI as a real host
does.  The guest (tests/testbed/bootsector.py, ticks=True) prints a counter
twice a second: the counter going on without a gap or a restart proves
the guest kept running through each move.
"""

import os
import random
import uuid

import pytest

from testbed import cleanup_libvirtd, make_unique_name, module_path, start_libvirtd
from testbed.pools import GlusterPool, gfpool_cli, run_parallel, tcp_peers
from testbed import bootsector, guests

HOSTNAMES = ('gfpool-a', 'gfpool-b')
BOOT_TIMEOUT = 60
MIGRATE_TIMEOUT = 180


@pytest.fixture(scope='module')
def mig_workdir(tmp_path_factory):
    return tmp_path_factory.mktemp('migrate')


@pytest.fixture(scope='module')
def hosts(mig_workdir):
    """[A, B]: the two private daemons."""
    net = '127.%d.%d' % (random.randint(1, 254), random.randint(1, 254))
    hosts_file = mig_workdir / 'hosts'
    hosts_file.write_text('127.0.0.1 localhost\n' + ''.join(
        '%s.%d %s\n' % (net, 10 + i, h) for i, h in enumerate(HOSTNAMES)))
    port = random.randrange(49300, 49900, 20)
    daemons = []
    try:
        for i, h in enumerate(HOSTNAMES):
            daemons.append(start_libvirtd(
                module_path(), with_qemu=True, hostname=h,
                host_uuid=str(uuid.uuid4()), hosts_file=str(hosts_file),
                qemu_conf_extra='migration_port_min = %d\n'
                                'migration_port_max = %d\n'
                                % (port + 10 * i, port + 10 * i + 9)))
        yield daemons
    finally:
        for d in daemons:
            cleanup_libvirtd(d)


@pytest.fixture(scope='module')
def shared_pool(hosts, cluster, gfapi_rep3, mig_workdir):
    """The same pool XML started on both hosts."""
    a, b = hosts
    p = GlusterPool(a, cluster, gfapi_rep3, make_unique_name('mig'),
                    mig_workdir)
    try:
        b.virsh('pool-create', p.xml_path)
        yield p
    finally:
        b.virsh('pool-destroy', p.name, check=False)
        p.cleanup()


def _ticks(path):
    try:
        with open(path, 'rb') as f:
            return f.read().decode('ascii', 'replace')
    except FileNotFoundError:
        return ''


def _wait_ticks(path, beyond, alive, timeout=BOOT_TIMEOUT):
    """Waits until the serial log shows a counter past `beyond`."""
    ok, text = guests.wait_serial(
        path, None, timeout=timeout, alive=alive,
        until=lambda t: max(bootsector.parse_ticks(t) or [-1]) > beyond)
    return ok, text


def _running_on(d, name):
    p = d.virsh('domstate', name, check=False)
    return p.returncode == 0 and p.stdout.strip() == 'running'


def test_live_migration_there_and_back(hosts, shared_pool, mig_workdir):
    """A guest on a qcow2 chain of 2 overlays over a raw volume migrates
    live from A to B and back with no storage copy; the destination's
    QEMU runs in the destination's namespace; the counter on its serial
    port goes on, with no gap and no second boot; each destination
    checked the chain through OUR storage-file module over the pool's
    own connection (libvirtd holds one gfapi client of the volume)."""
    a, b = hosts
    pool = shared_pool
    message = 'GFPOOL-MIGRATE ' + pool.name
    img = bootsector.write_image(str(mig_workdir / 'ticks.img'), message,
                                 ticks=True)
    pool.virsh('vol-create-as', pool.name, 'ticks.raw', '1M', '--format', 'raw')
    pool.virsh('vol-upload', '--pool', pool.name, 'ticks.raw', img)
    chain = ['ticks.raw']
    for i in (1, 2):
        name = 'mig%d.qcow2' % i
        pool.virsh('vol-create-as', pool.name, name, '1M', '--format', 'qcow2',
                   '--backing-vol', chain[-1], '--backing-vol-format',
                   'raw' if i == 1 else 'qcow2')
        chain.append(name)
    disk = gfpool_cli('disk-xml', '--pool-xml', pool.xml_path, chain[-1],
                      check=0).stdout

    name = make_unique_name('migguest')
    serial = str(mig_workdir / (name + '.serial'))
    xml_path = str(mig_workdir / (name + '.xml'))
    with open(xml_path, 'w') as f:
        f.write(guests.domain_xml(name, disk, serial, serial_append=True))

    def diag(d):
        return '\n--- serial ---\n%s\n--- QEMU log on %s ---\n%s\n' \
               '--- libvirtd log ---\n%s' % (
                   _ticks(serial)[-400:], d.hostname, d.qemu_log(name, 30),
                   d.log_tail(20))

    a.virsh('create', xml_path, timeout=120)
    try:
        ok, text = _wait_ticks(serial, 1, lambda: _running_on(a, name))
        assert ok, diag(a)
        for src, dst in ((a, b), (b, a)):
            last = max(bootsector.parse_ticks(_ticks(serial)))
            p = src.virsh('migrate', '--live', name, dst.uri, check=False,
                          timeout=MIGRATE_TIMEOUT)
            assert p.returncode == 0, p.stderr + diag(src) + diag(dst)
            assert _running_on(dst, name), diag(dst)
            assert src.virsh('domstate', name, check=False).returncode != 0
            qpid = dst.qemu_pid(name)
            assert qpid, diag(dst)
            assert os.readlink('/proc/%d/ns/mnt' % qpid) == dst.mntns
            assert os.readlink('/proc/%d/ns/uts' % qpid) == \
                os.readlink('/proc/%d/ns/uts' % dst.pid)

            ok, text = _wait_ticks(serial, last + 2,
                                   lambda: _running_on(dst, name))
            assert ok, diag(dst)
            ticks = bootsector.parse_ticks(text)
            assert ticks == list(range(len(ticks))), \
                'the counter restarted or skipped: %s' % ticks
            assert text.count(message) == 1, 'the guest booted again'

            maps = dst.maps()
            assert os.path.realpath(dst.file_module) in maps
            peers = tcp_peers(dst.pid, pool.hosts)
            assert [p for p in peers if p[1] == 24007] == \
                [(pool.hosts[0], 24007)], peers
    finally:
        for d in hosts:
            d.virsh('destroy', name, check=False)


def test_volumes_are_shared_and_a_name_has_one_winner(hosts, shared_pool):
    """A volume created on one host is listed on the other after its
    refresh; the same name created on both at once: exactly one
    vol-create-as succeeds, the other says the volume exists, and the
    volume is whole (both hosts see the winner's size and format)."""
    a, b = hosts
    pool = shared_pool
    a.virsh('vol-create-as', pool.name, 'from-a.qcow2', '5M',
            '--format', 'qcow2')
    b.virsh('pool-refresh', pool.name)
    assert 'from-a.qcow2' in b.virsh('vol-list', pool.name).stdout

    for i in range(3):
        vol = 'race%d.qcow2' % i
        sizes = ('%dM' % (8 + i), '%dM' % (16 + i))
        res = run_parallel([
            ['virsh', '-q', '-c', d.uri, 'vol-create-as', pool.name, vol,
             size, '--format', 'qcow2'] for d, size in zip(hosts, sizes)])
        won = [r for r in res if r.returncode == 0]
        lost = [r for r in res if r.returncode != 0]
        assert len(won) == 1, [(r.returncode, r.stderr) for r in res]
        assert 'exists' in lost[0].stderr, lost[0].stderr
        winner = res.index(won[0])
        want = (8 + i if winner == 0 else 16 + i) << 20
        for d in hosts:
            d.virsh('pool-refresh', pool.name)
            info = d.conn().storagePoolLookupByName(pool.name) \
                .storageVolLookupByName(vol).info()
            assert info[1] == want, (d.hostname, info, want)
            assert "<format type='qcow2'/>" in d.virsh(
                'vol-dumpxml', '--pool', pool.name, vol).stdout
