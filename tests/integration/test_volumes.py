# SPDX-License-Identifier: LGPL-2.1-or-later
"""Issue 4: volumes over gfapi, through the private libvirtd (real virsh and
python3-libvirt), with the images checked by qemu-img.

Every test works on the replica-3 volume `rep3`, in a pool over a directory
of its own. qemu-img over gluster:// pays gfapi's ~10 s fini per call, so
only a few images go through it (in parallel); the others are read back
through gfapi into a local file and checked there.
"""

import json
import os
import time
import xml.etree.ElementTree as ET

import libvirt
import pytest

import testbed
from testbed.pools import (TEMP_PREFIX, GlusterPool, qemu_img, qemu_img_info,
                     round_up, run_parallel, vol_xml_doc)

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB


@pytest.fixture(scope='module')
def vpool(libvirtd, cluster, gfapi_rep3, tmp_path_factory):
    name = testbed.make_unique_name('vols')
    p = GlusterPool(libvirtd, cluster, gfapi_rep3, name,
                    tmp_path_factory.mktemp('vols'))
    try:
        yield p
    finally:
        p.cleanup()


@pytest.fixture
def pool(libvirtd, cluster, gfapi_rep3, unique_name, tmp_path):
    """A pool of its own for a test that lists or deletes everything."""
    p = GlusterPool(libvirtd, cluster, gfapi_rep3, unique_name('vp'), tmp_path)
    try:
        yield p
    finally:
        p.cleanup()


def local_qcow2_info(pool, vol, tmp_path):
    """qemu-img check + info of a local copy of the image: -> info dict."""
    local = pool.local_copy(vol, tmp_path)
    r = qemu_img('check', '-f', 'qcow2', local)
    assert r.returncode == 0, 'qemu-img check %s: %s%s' % (vol, r.stdout, r.stderr)
    assert 'No errors were found' in r.stdout, r.stdout
    return qemu_img_info(local, 'qcow2')


# ---- virsh -------------------------------------------------------------

def test_virsh_create_list_info_dumpxml_delete(pool, tmp_path):
    P = pool.name
    pool.virsh('vol-create-as', P, 'a.qcow2', '10G', '--format', 'qcow2')
    pool.virsh('vol-create-as', P, 'b.img', '1G', '--format', 'raw')
    xml = tmp_path / 'vol.xml'
    xml.write_text("""<volume>
  <name>c.qcow2</name>
  <capacity unit='G'>2</capacity>
  <target>
    <format type='qcow2'/>
    <permissions><mode>0640</mode><owner>107</owner><group>108</group></permissions>
  </target>
  <backingStore>
    <path>%s</path>
    <format type='raw'/>
  </backingStore>
</volume>
""" % pool.uri('b.img'))
    pool.virsh('vol-create', P, str(xml))

    assert pool.files() == ['a.qcow2', 'b.img', 'c.qcow2']

    out = pool.virsh('vol-list', '--details', P).stdout
    rows = {l.split()[0]: l.split() for l in out.splitlines() if l.strip()}
    assert set(rows) == {'a.qcow2', 'b.img', 'c.qcow2'}, out
    # Name Path Type Capacity(value unit) Allocation(value unit)
    assert rows['a.qcow2'][1] == pool.uri('a.qcow2')
    assert rows['a.qcow2'][2] == 'network'
    assert rows['a.qcow2'][3:5] == ['10.00', 'GiB'], out
    assert rows['b.img'][3:5] == ['1.00', 'GiB'], out
    assert rows['c.qcow2'][3:5] == ['2.00', 'GiB'], out

    info = pool.virsh('vol-info', '--pool', P, 'a.qcow2').stdout
    assert 'Type:           network' in info, info
    assert 'Capacity:       10.00 GiB' in info, info

    a = pool.dumpxml('a.qcow2')
    assert a['type'] == 'network'
    assert a['format'] == 'qcow2'
    assert a['capacity'] == 10 * GiB
    assert a['allocation'] < 1 * MiB          # metadata only
    assert a['key'] == a['path'] == pool.uri('a.qcow2')
    assert a['mode'] == '0600'                # our default, as libvirt's
    assert a['backing_path'] is None

    b = pool.dumpxml('b.img')
    assert b['format'] == 'raw' and b['capacity'] == 1 * GiB
    # virsh sends no <allocation> without --allocation, and libvirt then
    # takes allocation = capacity: allocated up front, as in a dir pool
    assert b['allocation'] >= 1 * GiB

    c = pool.dumpxml('c.qcow2')
    assert c['format'] == 'qcow2' and c['capacity'] == 2 * GiB
    assert (c['mode'], c['owner'], c['group']) == ('0640', '107', '108')
    # the backing volume's key, as virsh --backing-vol resolves a name to
    assert c['backing_path'] == pool.uri('b.img')
    assert c['backing_format'] == 'raw'
    st = pool.gfapi.stat(pool.path('c.qcow2'))
    assert (st.mode & 0o7777, st.uid, st.gid) == (0o640, 107, 108)

    for v in ('c.qcow2', 'a.qcow2', 'b.img'):
        pool.virsh('vol-delete', '--pool', P, v)
    assert pool.files() == []
    assert pool.listed() == []


def test_virsh_backing_store_survives_pool_refresh(vpool, tmp_path):
    """vol-dumpxml right after vol-create shows <backingStore>; after a
    pool-refresh (or a libvirtd restart) it must still show it."""
    P = vpool.name
    vpool.virsh('vol-create-as', P, 'base.img', '1M', '--format', 'raw',
                '--allocation', '0')
    vpool.virsh('vol-create-as', P, 'ovl.qcow2', '0', '--format', 'qcow2',
                '--backing-vol', 'base.img', '--backing-vol-format', 'raw')
    first = vpool.dumpxml('ovl.qcow2')
    assert first['backing_path'] == vpool.uri('base.img')
    assert first['capacity'] == 1 * MiB       # 0 = the backing file's size
    vpool.refresh()
    again = vpool.dumpxml('ovl.qcow2')
    assert again['backing_path'] == vpool.uri('base.img'), 'backingStore lost by refresh'
    assert again['backing_format'] == 'raw'


def test_virsh_prealloc_metadata_qcow2(vpool, tmp_path):
    P = vpool.name
    vpool.virsh('vol-create-as', P, 'pm.qcow2', '16M', '--format', 'qcow2',
                '--prealloc-metadata')
    vpool.virsh('vol-create-as', P, 'sp.qcow2', '16M', '--format', 'qcow2')
    pm = vpool.dumpxml('pm.qcow2')
    sp = vpool.dumpxml('sp.qcow2')
    assert pm['format'] == 'qcow2' and pm['capacity'] == 16 * MiB
    # L2 tables and refcounts for every cluster: more than the empty image
    assert pm['allocation'] > sp['allocation']
    # like qemu-img's preallocation=metadata the file spans the disk
    assert vpool.gfapi.stat(vpool.path('pm.qcow2')).size >= 16 * MiB
    info = local_qcow2_info(vpool, 'pm.qcow2', tmp_path)
    assert info['virtual-size'] == 16 * MiB
    r = qemu_img('map', '--output=json', '-f', 'qcow2',
                 os.path.join(str(tmp_path), 'pm.qcow2'))
    extents = json.loads(r.stdout)
    # every guest cluster has a host cluster already
    assert all('offset' in e for e in extents), extents
    assert sum(e['length'] for e in extents) == 16 * MiB


def test_virsh_raw_allocation_equals_capacity(vpool):
    P = vpool.name
    vpool.virsh('vol-create-as', P, 'full.img', '32M', '--format', 'raw',
                '--allocation', '32M')
    vpool.virsh('vol-create-as', P, 'sparse.img', '32M', '--format', 'raw',
                '--allocation', '0')
    vpool.refresh()
    t, cap, alloc = vpool.pool().storageVolLookupByName('full.img').info()
    assert cap == 32 * MiB
    assert alloc >= 32 * MiB * 0.99, 'allocation %d after --allocation 32M' % alloc
    t, cap, alloc = vpool.pool().storageVolLookupByName('sparse.img').info()
    assert cap == 32 * MiB and alloc < 1 * MiB
    info = vpool.virsh('vol-info', '--pool', P, 'full.img').stdout
    assert 'Allocation:     32.00 MiB' in info, info


# ---- python3-libvirt ---------------------------------------------------

def test_python_api_volumes(pool, tmp_path):
    conn = pool.libvirtd.conn()
    p = conn.storagePoolLookupByName(pool.name)
    assert p.isActive()
    base = p.createXML("""<volume><name>base.img</name>
        <capacity unit='MiB'>8</capacity><allocation>0</allocation>
        <target><format type='raw'/></target></volume>""", 0)
    top = p.createXML("""<volume><name>top.qcow2</name>
        <capacity unit='MiB'>64</capacity>
        <target><format type='qcow2'/></target>
        <backingStore><path>base.img</path><format type='raw'/></backingStore>
        </volume>""", 0)
    meta = p.createXML("""<volume><name>meta.qcow2</name>
        <capacity unit='MiB'>8</capacity>
        <target><format type='qcow2'/></target></volume>""",
                       libvirt.VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA)

    names = sorted(v.name() for v in p.listAllVolumes())
    assert names == ['base.img', 'meta.qcow2', 'top.qcow2']
    assert base.path() == pool.uri('base.img')
    assert base.key() == pool.uri('base.img')
    assert conn.storageVolLookupByKey(pool.uri('top.qcow2')).name() == 'top.qcow2'
    assert conn.storageVolLookupByPath(pool.uri('top.qcow2')).name() == 'top.qcow2'

    assert base.info() == [libvirt.VIR_STORAGE_VOL_NETWORK, 8 * MiB, base.info()[2]]
    assert base.info()[2] < 1 * MiB
    t, cap, alloc = top.info()
    assert (t, cap) == (libvirt.VIR_STORAGE_VOL_NETWORK, 64 * MiB)
    t, cap, alloc_meta = meta.info()
    assert cap == 8 * MiB and alloc_meta > alloc

    d = vol_xml_doc(top.XMLDesc(0))
    assert d['format'] == 'qcow2' and d['capacity'] == 64 * MiB
    assert (d['backing_path'], d['backing_format']) == (pool.uri('base.img'), 'raw')
    d = vol_xml_doc(base.XMLDesc(0))
    assert d['format'] == 'raw' and d['backing_path'] is None

    pool.local_copy('base.img', tmp_path)     # qemu-img check opens it
    info = local_qcow2_info(pool, 'top.qcow2', tmp_path)
    assert info['backing-filename'] == 'base.img'
    assert info['backing-filename-format'] == 'raw'
    local_qcow2_info(pool, 'meta.qcow2', tmp_path)

    top.delete(0)
    meta.delete(0)
    base.delete(0)
    assert p.listAllVolumes() == []
    assert pool.files() == []
    with pytest.raises(libvirt.libvirtError) as e:
        p.storageVolLookupByName('top.qcow2')
    assert e.value.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL


def test_python_api_cluster_size(vpool, tmp_path):
    """<clusterSize> in the volume XML is what the image gets (libvirt's fs
    backend passes it to qemu-img as cluster_size)."""
    p = vpool.pool()
    v = p.createXML("""<volume><name>cs256.qcow2</name>
        <capacity unit='MiB'>10</capacity>
        <target><format type='qcow2'/><clusterSize unit='KiB'>256</clusterSize></target>
        </volume>""", 0)
    info = local_qcow2_info(vpool, 'cs256.qcow2', tmp_path)
    assert info['cluster-size'] == 256 * KiB, (
        'asked for 256 KiB clusters, got %d; XML claims %s'
        % (info['cluster-size'], v.XMLDesc(0)))


# ---- qemu-img ----------------------------------------------------------

def test_qemu_img_over_gluster(vpool):
    """Two images checked by QEMU's own gluster driver; the four qemu-img
    calls run in parallel (each pays gfapi's ~10 s fini)."""
    P = vpool.name
    vpool.virsh('vol-create-as', P, 'qg-base.qcow2', '100M', '--format', 'qcow2',
                '--prealloc-metadata')
    vpool.virsh('vol-create-as', P, 'qg-top.qcow2', '1G', '--format', 'qcow2',
                '--backing-vol', 'qg-base.qcow2', '--backing-vol-format', 'qcow2')
    host = vpool.hosts[0]
    base = 'gluster://%s/rep3%s/qg-base.qcow2' % (host, vpool.dir)
    top = 'gluster://%s/rep3%s/qg-top.qcow2' % (host, vpool.dir)
    res = run_parallel([
        ['qemu-img', 'check', '-f', 'qcow2', base],
        ['qemu-img', 'check', '-f', 'qcow2', top],
        ['qemu-img', 'info', '--output=json', '-f', 'qcow2', base],
        ['qemu-img', 'info', '--output=json', '-f', 'qcow2', top],
    ], timeout=90)
    for r in res[:2]:
        assert r.returncode == 0, r.stderr
        assert 'No errors were found' in r.stdout, r.stdout
    for r in res[2:]:
        assert r.returncode == 0, r.stderr
    ib = json.loads(res[2].stdout)
    it = json.loads(res[3].stdout)
    assert ib['format'] == 'qcow2' and ib['virtual-size'] == 100 * MiB
    assert ib['cluster-size'] == 64 * KiB
    assert ib['format-specific']['data']['compat'] == '1.1'
    assert 'backing-filename' not in ib
    assert it['virtual-size'] == 1 * GiB
    assert it['backing-filename'] == 'qg-base.qcow2'
    assert it['backing-filename-format'] == 'qcow2'
    assert it['full-backing-filename'] == base
    assert it['format-specific']['data']['compat'] == '1.1'


@pytest.mark.parametrize('capacity', [
    1 * MiB,
    1000001,                      # QEMU rounds up to 512: 1000448
    3 * GiB + 7,
    10 * GiB + 512,
    1 * TiB,
    16 * TiB,
])
def test_qemu_img_local_copy(vpool, tmp_path, capacity):
    """Capacities from 1 MiB to 16 TiB and odd ones (cluster sizes: see
    test_cli.py, the CLI takes --cluster-size)."""
    cluster = None  # default 64 KiB
    name = 'cap-%d.qcow2' % capacity
    vpool.pool().createXML("""<volume><name>%s</name>
        <capacity unit='bytes'>%d</capacity>
        <target><format type='qcow2'/></target></volume>"""
                           % (name, capacity), 0)
    size = vpool.gfapi.stat(vpool.path(name)).size
    assert size < 4 * MiB, 'empty qcow2 of %d bytes is %d bytes' % (capacity, size)
    info = local_qcow2_info(vpool, name, tmp_path)
    assert info['format'] == 'qcow2'
    assert info['virtual-size'] == round_up(capacity, 512)
    assert info['cluster-size'] == (cluster or 64 * KiB)
    assert info['format-specific']['data']['compat'] == '1.1'
    assert info['format-specific']['data']['corrupt'] is False
    # what libvirt reports is what QEMU will see
    t, cap, alloc = vpool.pool().storageVolLookupByName(name).info()
    assert cap == round_up(capacity, 512)
    vpool.virsh('vol-delete', '--pool', vpool.name, name)


def test_raw_odd_size_exact(vpool):
    vpool.pool().createXML("""<volume><name>odd.img</name>
        <capacity unit='bytes'>1000001</capacity><allocation>0</allocation>
        </volume>""", 0)
    assert vpool.gfapi.stat(vpool.path('odd.img')).size == 1000001
    assert vpool.pool().storageVolLookupByName('odd.img').info()[1] == 1000001


def test_physical_is_the_file_size(vpool):
    """<physical> is what the file takes as a file (its size), not the
    bytes stored (<allocation>) nor the guest's size (<capacity>)."""
    vpool.virsh('vol-create-as', vpool.name, 'phys.img', '64M', '--format',
                'raw', '--allocation', '0')
    vpool.virsh('vol-create-as', vpool.name, 'phys.qcow2', '10G', '--format',
                'qcow2')
    for vol in ('phys.img', 'phys.qcow2'):
        root = ET.fromstring(vpool.virsh('vol-dumpxml', '--pool', vpool.name,
                                         vol).stdout)
        size = vpool.gfapi.stat(vpool.path(vol)).size
        assert int(root.findtext('physical')) == size, vol
        assert int(root.findtext('allocation')) != size, vol
        vpool.virsh('vol-delete', '--pool', vpool.name, vol)


def _wait_temp_files(pool, want, timeout=10):
    """libvirtd sweeps off the pool's lock and waits for the sweep only
    briefly: the files may go a moment after pool-refresh returns."""
    deadline = time.monotonic() + timeout
    while sorted(pool.temp_files()) != sorted(want) and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    return sorted(pool.temp_files())


def test_refresh_sweeps_leftover_temp_names(pool, make_libvirtd, cluster,
                                            gfapi_rep3, unique_name, tmp_path):
    """A refresh removes a temporary name nobody has written for over 6
    hours, and one whose volume was published (a second link that is a
    listed volume: only the removal of the temp name failed, e.g. a brick
    died at that moment) once nothing changed it for the grace its creator
    gets to remove it itself (GFPOOL_TEMP_GRACE_S, 120 s); a recent one,
    whose creator may still be writing, stays; so does a second link that
    is no volume of the pool. Only a refresh sweeps: `gfpool vol-list` (a
    listing) removes nothing."""
    g = pool.gfapi
    data = os.urandom(4096)
    g.put(pool.path('pub.img'), data)
    g.link(pool.path('pub.img'), pool.path(TEMP_PREFIX + 'published'))
    g.put(pool.path(TEMP_PREFIX + 'writing'), b'')
    g.put(pool.path(TEMP_PREFIX + 'old'), b'')
    g.set_mtime(pool.path(TEMP_PREFIX + 'old'), time.time() - 7 * 3600)
    pool.cli('vol-list', check=0)
    assert len(pool.temp_files()) == 3, pool.files()
    pool.refresh()
    # published a moment ago: still its creator's to remove
    assert _wait_temp_files(pool, [TEMP_PREFIX + 'published',
                                   TEMP_PREFIX + 'writing']) == \
        [TEMP_PREFIX + 'published', TEMP_PREFIX + 'writing']
    assert 'pub.img' in pool.virsh('vol-list', pool.name).stdout

    # the same with no grace: the published leftover goes, the rest stays
    d = make_libvirtd(extra_env={'GFPOOL_TEMP_GRACE_S': '0'})
    p2 = GlusterPool(d, cluster, gfapi_rep3, unique_name('vg'), tmp_path)
    try:
        g.put(p2.path('pub.img'), data)
        g.link(p2.path('pub.img'), p2.path(TEMP_PREFIX + 'published'))
        # a second link outside the pool: not a published volume of it
        outside = p2.dir + '-outside.img'
        g.put(outside, data)
        g.link(outside, p2.path(TEMP_PREFIX + 'foreign'))
        g.put(p2.path(TEMP_PREFIX + 'writing'), b'')
        p2.refresh()
        want = [TEMP_PREFIX + 'foreign', TEMP_PREFIX + 'writing']
        assert _wait_temp_files(p2, want) == want
        assert g.read(p2.path('pub.img')) == data
        assert 'pub.img' in d.virsh('vol-list', p2.name).stdout
    finally:
        g.unlink(p2.dir + '-outside.img', missing_ok=True)
        p2.cleanup()

    g.unlink(pool.path(TEMP_PREFIX + 'writing'))
    g.unlink(pool.path(TEMP_PREFIX + 'published'))
    pool.virsh('vol-delete', '--pool', pool.name, 'pub.img')
