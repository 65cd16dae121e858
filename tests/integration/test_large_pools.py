# SPDX-License-Identifier: LGPL-2.1-or-later
"""Splitting a pool: libvirt lists at most 16,384 volumes of a pool in one
call (REMOTE_STORAGE_VOL_LIST_MAX), so a larger set of images is kept as
several pools, one per directory of the same gluster volume, each with its
own <dir path=...> (docs/operations.md, "Large pools"). Checked here: the
pools build, start and list only their own directory; a name may be used
in both; keys tell them apart; a pool over the parent directory sees the
subdirectories as directory volumes, not their images.
"""

import xml.etree.ElementTree as ET

from testbed.pools import define_pool, gfpool_cli, pool_xml


def test_pools_on_subdirectories_of_one_volume(libvirtd, cluster, gfapi_rep3,
                                               unique_name, tmp_path):
    top = unique_name('split')
    hosts = [h for h, _ in cluster.volume_hosts('rep3')]
    names = {'a': top + '-a', 'b': top + '-b', 'top': top}
    dirs = {'a': '/%s/a' % top, 'b': '/%s/b' % top, 'top': '/' + top}
    xml_paths = {}
    try:
        for k in ('a', 'b', 'top'):
            xml = pool_xml(names[k], hosts, directory=dirs[k])
            xml_paths[k] = tmp_path / (k + '.xml')
            xml_paths[k].write_text(xml)
            define_pool(libvirtd, tmp_path, xml)
            # pool-build makes the directory and its parents
            libvirtd.virsh('pool-build', names[k])
            libvirtd.virsh('pool-start', names[k])
        assert gfapi_rep3.listdir(dirs['top']) == ['a', 'b']

        for k, vols in (('a', ('disk.img', 'only-a.img')),
                        ('b', ('disk.img', 'only-b.qcow2'))):
            for v in vols:
                libvirtd.virsh('vol-create-as', names[k], v, '1M', '--format',
                               'qcow2' if v.endswith('qcow2') else 'raw')
        conn = libvirtd.conn()
        for k in ('a', 'b', 'top'):
            conn.storagePoolLookupByName(names[k]).refresh(0)
        listed = {k: sorted(conn.storagePoolLookupByName(names[k]).listVolumes())
                  for k in names}
        assert listed == {'a': ['disk.img', 'only-a.img'],
                          'b': ['disk.img', 'only-b.qcow2'],
                          'top': ['a', 'b']}, listed
        assert gfapi_rep3.listdir(dirs['a']) == listed['a']
        assert gfapi_rep3.listdir(dirs['b']) == listed['b']

        # one name in two pools: two volumes, told apart by key and path
        keys = {}
        for k in ('a', 'b'):
            v = conn.storagePoolLookupByName(names[k]).storageVolLookupByName('disk.img')
            keys[k] = v.key()
            assert keys[k] == 'gluster://%s/rep3%s/disk.img' % (hosts[0], dirs[k])
            assert v.path() == keys[k]
            assert conn.storageVolLookupByKey(keys[k]).storagePoolLookupByVolume() \
                .name() == names[k]
        # the parent pool sees directories, not the images in them
        t = ET.fromstring(conn.storagePoolLookupByName(names['top'])
                          .storageVolLookupByName('a').XMLDesc(0))
        assert t.get('type') == 'netdir', ET.tostring(t)

        # the CLI reads the same pools from the same XML
        for k in ('a', 'b'):
            out = gfpool_cli('vol-list', '--pool-xml', str(xml_paths[k]),
                             check=0).stdout
            rows = sorted(l.split()[0] for l in out.splitlines()[2:])
            assert rows == listed[k], out

        # a volume deleted in one pool leaves its namesake in the other
        libvirtd.virsh('vol-delete', '--pool', names['a'], 'disk.img')
        assert gfapi_rep3.listdir(dirs['a']) == ['only-a.img']
        assert 'disk.img' in gfapi_rep3.listdir(dirs['b'])
    finally:
        for k in ('top', 'a', 'b'):
            libvirtd.virsh('pool-destroy', names[k], check=False)
            libvirtd.virsh('pool-undefine', names[k], check=False)
        gfapi_rep3.rmtree(dirs['top'])
