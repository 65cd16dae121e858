# SPDX-License-Identifier: LGPL-2.1-or-later
"""A volume's format is the one the verb that made it recorded
(trusted.gfpool.format), never one its bytes claim.

The hostile case first: a guest whose disk is a raw volume writes a qcow2
header at sector 0 of it (a virtual size of 1 PiB, another guest's volume as
backing file), through the two paths a guest's disk takes: nbdkit with our
plugin, and QEMU's gluster driver. Before the record, the NBD export of that
volume grew to 1 PiB at the next connection and `gfpool disk-xml`,
`vol-dumpxml` and virt-install named the other guest's volume as its
backing store. Volumes placed by other tools have no record: they are
probed as before and say so, and nothing hands a guest a backing chain
whose formats only the bytes vouch for."""

import errno
import json
import os
import re
import subprocess

import pytest

import testbed
from testbed.pools import (GFPOOL_CLI, GlusterPool, pool_opts, qcow2_header,
                     vol_xml_doc)
from test_nbd import PLUGIN, Nbdkit

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
PiB = 1 << 50
XATTR = 'trusted.gfpool.format'


@pytest.fixture(scope='module')
def rpool(libvirtd, cluster, gfapi_rep3, tmp_path_factory):
    p = GlusterPool(libvirtd, cluster, gfapi_rep3,
                    testbed.make_unique_name('rec'),
                    tmp_path_factory.mktemp('rec'))
    p.work = tmp_path_factory.mktemp('rec-work')
    try:
        yield p
    finally:
        p.cleanup()


def record_of(p, vol):
    """The volume's format record as gfapi reads it, None without one."""
    try:
        return p.gfapi.getxattr(p.path(vol), XATTR).decode()
    except OSError as e:
        assert e.errno == errno.ENODATA, e
        return None


def run(*cmd, check=True, timeout=120):
    r = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True,
                       timeout=timeout)
    if check:
        assert r.returncode == 0, '%s: %s%s' % (' '.join(map(str, cmd)),
                                                 r.stdout, r.stderr)
    return r


def export_info(n, name):
    listing = json.loads(run('nbdinfo', '--list', '--json',
                             'nbd+unix:///?socket=' + n.sock).stdout)
    return {e['export-name']: e for e in listing['exports']}[name]


def cli_info(p, vol):
    out = p.cli('vol-info', vol, check=0).stdout
    return dict(re.findall(r'^(\w[\w ]*):\s+(.*)$', out, re.M))


def guest_header(backing):
    """What a hostile guest writes at sector 0 of its raw disk: a header
    any prober accepts (an L1 table big enough for 1 PiB of 64 KiB
    clusters, 16 MiB of zeros inside the disk)."""
    return qcow2_header(PiB, backing=backing, l1_size=PiB >> 29, file_len=4096)


def assert_raw_whole(p, vol, size, nbd=None):
    """Everything that says what `vol` is says: raw, `size` bytes, no
    backing store."""
    d = p.dumpxml(vol)
    assert (d['format'], d['capacity'], d['backing_path']) == ('raw', size, None), d
    assert p.pool().storageVolLookupByName(vol).info()[1] == size
    d = vol_xml_doc(p.cli('vol-dumpxml', vol, check=0).stdout)
    assert (d['format'], d['capacity'], d['backing_path']) == ('raw', size, None), d
    info = cli_info(p, vol)
    assert info['Format'] == 'raw' and info['Record'] == 'recorded', info
    assert 'Backing' not in info, info
    x = p.cli('disk-xml', vol, check=0).stdout
    assert "type='raw'" in x and '<backingStore>' not in x, x
    assert 'victim' not in x, x
    x = p.cli('disk-xml', '--nbd', '/run/gfpool-nbd/x.sock', vol, check=0).stdout
    assert "type='raw'" in x and 'victim' not in x, x
    out = p.cli('virt-install-disk', p.name, vol, check=0).stdout
    assert out.strip().endswith('driver.type=raw'), out
    if nbd is not None:
        e = export_info(nbd, vol)
        assert (e['export-size'], e.get('description')) == (size, 'raw'), e


def test_guest_written_header_stays_raw(rpool, cluster):
    """Two raw disks, each given a qcow2 header by its guest: one through
    the NBD plugin, one through QEMU's gluster driver. Both stay raw disks
    of their own size everywhere, and the rewriting verbs treat them as
    raw."""
    p = rpool
    if not os.path.exists(PLUGIN):
        testbed.unavailable('nbdkit plugin not built: %s' % PLUGIN)
    p.virsh('vol-create-as', p.name, 'victim.qcow2', '1G', '--format', 'qcow2')
    for vol in ('guest-nbd.img', 'guest-gluster.img'):
        p.virsh('vol-create-as', p.name, vol, '64M', '--format', 'raw')
    hdr = str(p.work / 'hdr.bin')
    with open(hdr, 'wb') as f:
        f.write(guest_header('victim.qcow2'))

    n = Nbdkit(p.work, p.xml_path)
    try:
        assert export_info(n, 'guest-nbd.img')['export-size'] == 64 * MiB
        # the guest's QEMU writes its disk's first sector through NBD
        data = open(hdr, 'rb').read()
        run('qemu-io', '-f', 'raw', '-c',
            'write -s %s 0 4096' % hdr, n.uri('guest-nbd.img'))
        assert p.gfapi.read(p.path('guest-nbd.img'), 0, 4096) == data
        # and the other through QEMU's own gluster driver
        uri = 'gluster://%s/rep3%s' % (p.hosts[0], p.path('guest-gluster.img'))
        run('qemu-io', '-f', 'raw', '-c', 'write -s %s 0 4096' % hdr, uri)
        assert p.gfapi.read(p.path('guest-gluster.img'), 0, 4096) == data
        # what a prober makes of those bytes: the guest's claim
        assert json.loads(run('qemu-img', 'info', '--output=json',
                              n.uri('guest-nbd.img')).stdout)['format'] == 'qcow2'

        p.refresh()
        for vol in ('guest-nbd.img', 'guest-gluster.img'):
            # a new connection, as at the guest's next start
            assert_raw_whole(p, vol, 64 * MiB, nbd=n)
    finally:
        n.stop()

    # the verbs that rewrite a volume take it as raw too
    vol = 'guest-nbd.img'
    p.virsh('vol-resize', '--pool', p.name, vol, '65M')
    assert p.gfapi.stat(p.path(vol)).size == 65 * MiB
    assert p.gfapi.read(p.path(vol), 0, 4096) == data
    p.virsh('vol-clone', '--pool', p.name, vol, 'clone.img')
    assert record_of(p, 'clone.img') == 'raw'
    assert p.gfapi.read(p.path('clone.img'), 0, 4096) == data
    assert_raw_whole(p, 'clone.img', 65 * MiB)
    p.virsh('vol-wipe', '--pool', p.name, vol)
    assert p.gfapi.read(p.path(vol), 0, 4096) == b'\0' * 4096
    assert record_of(p, vol) == 'raw'
    assert_raw_whole(p, vol, 65 * MiB)


def test_unrecorded_volumes_are_probed_and_say_so(rpool, libvirtd):
    """Images another tool put in the pool have no record: listed as their
    header says (as before), marked "probed" by the CLI and in libvirtd's
    log; disk-xml names no chain until an administrator records each
    layer's format; vol-record checks the bytes fit the format it is
    told."""
    p = rpool
    base = str(p.work / 'base.raw')
    top = str(p.work / 'top.qcow2')
    run('qemu-img', 'create', '-q', '-f', 'raw', base, '1M')
    run('qemu-img', 'create', '-q', '-f', 'qcow2', '-b', 'placed-base.img',
        '-F', 'raw', '-u', top, '1M')
    p.gfapi.put(p.path('placed-base.img'), open(base, 'rb').read())
    p.gfapi.put(p.path('placed-top.qcow2'), open(top, 'rb').read())
    p.gfapi.put(p.path('placed-raw.img'), b'r' * 8192)
    # a raw disk whose guest wrote a qcow2 header before records existed
    p.gfapi.put(p.path('placed-was-raw.img'), open(top, 'rb').read())
    p.refresh()
    assert record_of(p, 'placed-top.qcow2') is None
    assert p.dumpxml('placed-was-raw.img')['format'] == 'qcow2'

    d = p.dumpxml('placed-top.qcow2')
    assert d['format'] == 'qcow2' and d['capacity'] == MiB, d
    assert 'no format record' in libvirtd.log_since_start()
    rows = {l.split()[0]: l.split() for l in
            p.cli('vol-list', '--details', check=0).stdout.splitlines()[2:]}
    assert rows['placed-top.qcow2'][-1] == 'probed', rows
    assert rows['victim.qcow2'][-1] == 'recorded', rows
    assert cli_info(p, 'placed-top.qcow2')['Record'].startswith('probed')
    assert 'no format record' in p.cli('vol-dumpxml', 'placed-top.qcow2', check=0).stdout

    r = p.cli('disk-xml', 'placed-top.qcow2', check=1)
    assert "volume 'placed-top.qcow2' has no format record" in r.stderr, r.stderr
    assert 'vol-record' in r.stderr
    r = p.cli('virt-install-disk', p.name, 'placed-top.qcow2', check=1)
    assert 'no format record' in r.stderr
    # the administrator's word for the top: raw names no chain at all
    x = p.cli('disk-xml', '--image-format', 'raw', 'placed-top.qcow2', check=0).stdout
    assert "type='raw'" in x and '<backingStore>' not in x, x

    # vol-record refuses a format the bytes do not fit, and changes nothing
    r = p.cli('vol-record', '--format', 'qcow2', 'placed-raw.img', check=2)
    assert 'not a qcow2 header' in r.stderr, r.stderr
    assert record_of(p, 'placed-raw.img') is None
    assert p.cli('vol-record', 'placed-raw.img', check=2).stderr.count('--format') == 1

    out = p.cli('vol-record', '--format', 'qcow2', 'placed-top.qcow2', check=0).stdout
    assert out.strip() == 'Volume placed-top.qcow2 recorded as qcow2', out
    assert record_of(p, 'placed-top.qcow2') == 'qcow2'
    r = p.cli('disk-xml', 'placed-top.qcow2', check=1)
    assert "volume 'placed-base.img' has no format record" in r.stderr, r.stderr
    p.cli('vol-record', '--format', 'raw', 'placed-base.img', 'placed-raw.img', check=0)
    x = p.cli('disk-xml', 'placed-top.qcow2', check=0).stdout
    assert "type='qcow2'" in x and 'placed-base.img' in x and "type='raw'" in x, x
    rows = {l.split()[0]: l.split() for l in
            p.cli('vol-list', '--details', check=0).stdout.splitlines()[2:]}
    assert {rows[v][-1] for v in ('placed-top.qcow2', 'placed-base.img',
                                  'placed-raw.img')} == {'recorded'}, rows
    # libvirtd probed (and cached) the volumes before they were recorded; a
    # record must make its cached answer stale, though GlusterFS stamps no
    # ctime for a set attribute
    # the NBD plugin serves no unrecorded volume: its header would decide
    # the export's size
    n = Nbdkit(p.work, p.xml_path)
    try:
        r = run('qemu-img', 'info', '-f', 'raw', n.uri('placed-was-raw.img'),
                check=False)
        assert r.returncode != 0, r.stdout
        assert "'placed-was-raw.img': the volume has no format record" in n.output()
        p.cli('vol-record', '--format', 'raw', 'placed-was-raw.img', check=0)
        assert export_info(n, 'placed-was-raw.img')['export-size'] == os.path.getsize(top)
    finally:
        n.stop()
    p.refresh()
    d = p.dumpxml('placed-was-raw.img')
    assert d['format'] == 'raw' and d['backing_path'] is None, d
    assert p.cli('vol-record', '--format', 'raw', 'placed-raw.img',
                 check=0).stdout.strip() == 'Volume placed-raw.img was already recorded as raw'


def test_a_record_the_bytes_do_not_fit_is_never_raw(rpool):
    """A record and bytes that disagree (a qcow2 volume whose header is
    gone, a record that names no format) make the volume unusable, never
    raw: nothing serves, resizes or hands it to a guest."""
    p = rpool
    p.virsh('vol-create-as', p.name, 'lost.qcow2', '16M', '--format', 'qcow2')
    p.gfapi.write_at(p.path('lost.qcow2'), 0, b'\0' * 512)
    p.gfapi.put(p.path('odd.img'), b'o' * 4096)
    p.gfapi.setxattr(p.path('odd.img'), XATTR, b'floppy')
    p.refresh()

    info = cli_info(p, 'lost.qcow2')
    assert info['Format'] == 'qcow2' and 'not a qcow2 header' in info['Warning'], info
    assert p.dumpxml('lost.qcow2')['format'] == 'qcow2'
    info = cli_info(p, 'odd.img')
    assert 'names no image format' in info['Warning'], info
    for vol in ('lost.qcow2', 'odd.img'):
        r = p.cli('disk-xml', vol, check=1)
        assert 'cannot be used' in r.stderr, r.stderr
        r = p.virsh('vol-resize', '--pool', p.name, vol, '32M', check=False)
        assert r.returncode != 0 and 'unusable' in r.stderr, r.stderr
    n = Nbdkit(p.work, p.xml_path)
    try:
        for vol in ('lost.qcow2', 'odd.img'):
            r = run('qemu-img', 'info', '-f', 'raw', n.uri(vol), check=False)
            assert r.returncode != 0, r.stdout
        assert 'not a qcow2 header' in n.output()
    finally:
        n.stop()
    p.virsh('vol-delete', '--pool', p.name, 'odd.img')


def test_every_maker_records_and_uploads_keep_it(rpool, cluster):
    """Each verb that makes a volume records the format it made, through
    virsh, python3-libvirt and the CLI; an upload replaces bytes, never
    the format: a qcow2 volume refuses to end as anything else."""
    p = rpool
    made = {}
    p.virsh('vol-create-as', p.name, 'v-raw.img', '1M')
    made['v-raw.img'] = 'raw'
    p.virsh('vol-create-as', p.name, 'v-q.qcow2', '1M', '--format', 'qcow2')
    made['v-q.qcow2'] = 'qcow2'
    p.virsh('vol-create-as', p.name, 'v-ov.qcow2', '1M', '--format', 'qcow2',
            '--backing-vol', 'v-raw.img', '--backing-vol-format', 'raw')
    made['v-ov.qcow2'] = 'qcow2'
    p.pool().createXML("<volume><name>v-xml.qcow2</name><capacity>1048576</capacity>"
                       "<target><format type='qcow2'/></target></volume>", 0)
    made['v-xml.qcow2'] = 'qcow2'
    src = p.pool().storageVolLookupByName('v-q.qcow2')
    p.pool().createXMLFrom("<volume><name>v-from.img</name><capacity>1048576</capacity>"
                           "<target><format type='raw'/></target></volume>", src, 0)
    made['v-from.img'] = 'raw'
    p.cli('vol-create-as', 'c-q.qcow2', '1M', '--format', 'qcow2', check=0)
    made['c-q.qcow2'] = 'qcow2'
    p.cli('vol-clone', 'v-raw.img', 'c-clone.qcow2', '--format', 'qcow2', check=0)
    made['c-clone.qcow2'] = 'qcow2'
    for vol, fmt in made.items():
        assert record_of(p, vol) == fmt, vol

    # upload: the bytes of a raw image into a qcow2 volume are refused at
    # the end, and the volume stays qcow2 (unusable until fixed)
    raw = str(p.work / 'up.raw')
    with open(raw, 'wb') as f:
        f.write(os.urandom(MiB))
    r = p.cli('vol-upload', 'c-q.qcow2', raw, check=2)
    assert "does not fit the volume's recorded format" in r.stderr, r.stderr
    assert record_of(p, 'c-q.qcow2') == 'qcow2'
    assert 'Warning' in cli_info(p, 'c-q.qcow2')
    r = p.virsh('vol-upload', '--pool', p.name, 'v-q.qcow2', raw, check=False)
    assert r.returncode != 0 and 'recorded format' in r.stderr, r.stderr
    # a qcow2 image into it is what it is for
    q = str(p.work / 'up.qcow2')
    run('qemu-img', 'create', '-q', '-f', 'qcow2', q, '2M')
    p.cli('vol-upload', 'c-q.qcow2', q, check=0)
    info = cli_info(p, 'c-q.qcow2')
    assert info['Format'] == 'qcow2' and 'Warning' not in info, info
    # and anything into a raw volume leaves it raw
    p.cli('vol-upload', 'v-raw.img', q, check=0)
    assert cli_info(p, 'v-raw.img')['Format'] == 'raw'


def test_backing_format_named_by_the_overlay_must_match(rpool):
    """An overlay names its backing file's format; a backing volume that is
    something else (by its record) is a chain nobody made: refused."""
    p = rpool
    p.cli('vol-create-as', 'b-q.qcow2', '1M', '--format', 'qcow2', check=0)
    ov = str(p.work / 'ov.qcow2')
    run('qemu-img', 'create', '-q', '-f', 'qcow2', '-b', 'b-q.qcow2', '-F', 'raw',
        '-u', ov, '1M')
    p.gfapi.put(p.path('b-ov.qcow2'), open(ov, 'rb').read())
    p.cli('vol-record', '--format', 'qcow2', 'b-ov.qcow2', check=0)
    r = p.cli('disk-xml', 'b-ov.qcow2', check=2)
    assert ("backing file 'b-q.qcow2' of 'b-ov.qcow2' is qcow2 image (its format record "
            "says so), but 'b-ov.qcow2' names it as raw") in r.stderr, r.stderr


@pytest.mark.parametrize('name', ['a\nb.img', 'tab\there.img', 'cr\rhere.img',
                                  'del\x7f.img', 'esc\x1b.img'])
def test_control_characters_in_names_are_refused(rpool, name):
    """XML attribute normalisation turns tab, LF and CR into spaces: "a\\nb"
    read back from a <disk> would be the volume "a b". No verb takes such a
    name."""
    p = rpool
    r = p.virsh('vol-create-as', p.name, name, '1M', check=False)
    # libvirt's own XML parser refuses what XML cannot carry at all
    assert r.returncode != 0 and ('control character' in r.stderr or
                                  'invalid Char' in r.stderr), r.stderr
    r = p.cli('vol-create-as', name, '1M', check=2)
    assert 'control character' in r.stderr, r.stderr
    # shown escaped: nothing of the name reaches the terminal raw
    assert name not in r.stderr
    assert name not in p.files()
    # one placed by another tool is not listed, and the listing goes on
    p.gfapi.put(p.path(name), b'x')
    try:
        assert name not in p.listed()
        r = p.cli('vol-info', name, check=2)
        assert 'control character' in r.stderr, r.stderr
    finally:
        p.gfapi.unlink(p.path(name))
