# SPDX-License-Identifier: LGPL-2.1-or-later
"""What a cloud manager (OpenNebula-style) does, through the libvirt API
only (python3-libvirt on the private libvirtd with the QEMU driver):

    define + build + start a gluster pool
    upload a base image with a stream (createXML, vol.upload, sendAll)
    clone it per VM (createXMLFrom), define + start one domain per clone
    (disks from `gfpool disk-xml`, the one step outside the API)
    destroy the domains, delete the clones, refresh

checking the volume list (exact) and pool.info() at each step.

The pool lives on a replica-3 volume of its own whose bricks are private
tmpfs mounts (BRICK_FS each): on the cluster's usual volumes the bricks
share the host's root file system with everything else running on the
machine, whose writes (hundreds of MiB in seconds) drown a few clones in
statvfs.  Here the pool's capacity is exactly the tmpfs size and its
allocation moves by exactly what the test writes (one replica's worth:
the three bricks are three file systems).
"""

import os
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

import libvirt
import libvirt_qemu
import pytest

from testbed import bootsector, guests, make_unique_name, unavailable
from testbed.pools import gfpool_cli, pool_xml

MiB = 1 << 20
BASE_SIZE = 16 * MiB
BRICK_FS = 96 * MiB
BOOT_TIMEOUT = 60
# what else may move a brick's usage: directories, .glusterfs handles,
# xattrs (tmpfs counts pages)
SLACK = 2 * MiB


@pytest.fixture
def tmpfs_volume(cluster):
    """A started replica-3 volume `mgNNN` on three fresh tmpfs bricks
    (mounted at the cluster's usual brick paths); stopped, deleted and
    unmounted afterwards.  -> (volume name, [brick paths])."""
    name = make_unique_name('mg').replace('-', '')[:20]
    nodes = list(range(1, cluster.nodes + 1))
    bricks = [cluster.brick_path(i, name) for i in nodes]
    mounted = []

    def teardown():
        if name in cluster.volumes:
            cluster.cli('volume', 'stop', name, check=False)
            cluster.cli('volume', 'delete', name, check=False)
            cluster.volumes.pop(name, None)
            cluster._save_state()
        for b in reversed(mounted):
            if subprocess.run(['umount', b]).returncode != 0:
                subprocess.run(['umount', '-l', b])
            try:
                os.rmdir(b)
            except OSError:
                pass

    try:
        for b in bricks:
            os.makedirs(b)
            subprocess.run(['mount', '-t', 'tmpfs', '-o',
                            'size=%d,mode=0755' % BRICK_FS, 'gfpool-test', b],
                           check=True, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
            mounted.append(b)
        cluster.create_volume(name, nodes=nodes, replica=len(nodes))
    except Exception as e:
        teardown()
        unavailable('cannot make a volume on tmpfs bricks: %s' % e)
    try:
        yield name, bricks
    finally:
        teardown()


def brick_used(brick):
    st = os.statvfs(brick)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def base_image(message):
    """The boot sector, then BASE_SIZE - 512 bytes of non-zero filler so
    that the image and its clones are fully allocated (their allocation
    shows in the pool's numbers)."""
    filler = (b'gfpool-mgmt-stack-filler-' * ((BASE_SIZE // 25) + 1))
    return bootsector.boot_sector(message) + filler[:BASE_SIZE - 512]


def vol_xml(name, capacity, fmt='raw'):
    return ("<volume><name>%s</name>"
            "<capacity unit='bytes'>%d</capacity>"
            "<target><format type='%s'/></target></volume>"
            % (name, capacity, fmt))


def upload(conn, vol, data):
    st = conn.newStream(0)
    vol.upload(st, 0, len(data), 0)
    pos = [0]

    def handler(stream, nbytes, opaque):
        chunk = data[pos[0]:pos[0] + nbytes]
        pos[0] += len(chunk)
        return chunk

    try:
        st.sendAll(handler, None)
        st.finish()
    except Exception:
        try:
            st.abort()
        except libvirt.libvirtError:
            pass
        raise
    return pos[0]


def pool_state(pool):
    """(sorted volume names, capacity, allocation, available) after a
    refresh."""
    pool.refresh(0)
    _, cap, alloc, avail = pool.info()
    names = sorted(pool.listVolumes())
    assert pool.numOfVolumes() == len(names)
    return names, cap, alloc, avail


def wait_alloc(pool, pred, timeout=15):
    """Refresh until pred(state) (statvfs may lag a little behind
    creates/unlinks on the bricks); -> last state."""
    deadline = time.monotonic() + timeout
    while True:
        st = pool_state(pool)
        if pred(st) or time.monotonic() > deadline:
            return st
        time.sleep(0.5)


def test_cloud_manager_lifecycle(make_libvirtd, cluster, tmpfs_volume,
                                 tmp_path):
    volume, bricks = tmpfs_volume
    d = make_libvirtd(with_qemu=True)
    conn = d.conn()
    hosts = [h for h, _ in cluster.volume_hosts(volume)]
    name = make_unique_name('mgmt')
    directory = '/' + name
    # what the bricks hold (each has a full replica): checked on brick 1
    on_brick = os.path.join(bricks[0], name)
    assert not os.path.exists(on_brick)
    xml = pool_xml(name, hosts, volume=volume, directory=directory)
    pool_xml_path = str(tmp_path / 'pool.xml')
    with open(pool_xml_path, 'w') as f:
        f.write(xml)
    message = 'GFPOOL-BOOT-OK ' + name
    doms = {}
    pool = None
    try:
        # -- pool: define, build (creates the directory), start -------------
        pool = conn.storagePoolDefineXML(xml, 0)
        pool.build(0)
        assert all(os.path.isdir(os.path.join(b, name)) for b in bricks)
        pool.create(0)
        assert pool.isActive() and pool.isPersistent()
        names, cap0, alloc0, avail0 = pool_state(pool)
        assert names == []
        # the brick file system, less nothing (glusterfs' storage.reserve
        # shows as allocation, not as lost capacity)
        assert cap0 == BRICK_FS, pool.info()
        assert alloc0 + avail0 <= cap0
        assert abs(alloc0 - brick_used(bricks[0])) <= \
            BRICK_FS // 100 + SLACK, (pool.info(), brick_used(bricks[0]))

        # -- base image through a stream ------------------------------------
        data = base_image(message)
        base = pool.createXML(vol_xml('base.raw', BASE_SIZE), 0)
        assert upload(conn, base, data) == BASE_SIZE
        with open(os.path.join(on_brick, 'base.raw'), 'rb') as f:
            assert f.read() == data
        t, vcap, valloc = base.info()
        assert (t, vcap) == (libvirt.VIR_STORAGE_VOL_NETWORK, BASE_SIZE)
        assert valloc >= BASE_SIZE, base.info()
        names, cap1, alloc1, avail1 = pool_state(pool)
        assert names == ['base.raw']
        assert cap1 == cap0
        assert abs(alloc1 - alloc0 - BASE_SIZE) <= SLACK, (alloc0, alloc1)
        assert abs(avail0 - avail1 - BASE_SIZE) <= SLACK, (avail0, avail1)

        # -- one clone per VM -------------------------------------------------
        clones = {}
        for vm in ('vm1', 'vm2'):
            v = pool.createXMLFrom(vol_xml(vm + '.raw', BASE_SIZE), base, 0)
            clones[vm] = v
            assert v.name() == vm + '.raw'
            assert v.key() == 'gluster://%s/%s%s/%s.raw' % (
                hosts[0], volume, directory, vm)
            t, vcap, valloc = v.info()
            assert (t, vcap) == (libvirt.VIR_STORAGE_VOL_NETWORK, BASE_SIZE)
            assert valloc >= BASE_SIZE, (vm, v.info())
            fmt = ET.fromstring(v.XMLDesc(0)).find('./target/format')
            assert fmt is not None and fmt.get('type') == 'raw'
            with open(os.path.join(on_brick, vm + '.raw'), 'rb') as f:
                assert f.read() == data
        grown = 2 * BASE_SIZE
        names, cap2, alloc2, avail2 = wait_alloc(
            pool, lambda s: abs(s[2] - alloc1 - grown) <= SLACK)
        assert names == ['base.raw', 'vm1.raw', 'vm2.raw']
        assert cap2 == cap0
        assert abs(alloc2 - alloc1 - grown) <= SLACK, (
            'pool allocation grew by %d after 2 clones of %d bytes'
            % (alloc2 - alloc1, BASE_SIZE))
        assert abs(avail1 - avail2 - grown) <= SLACK, (avail1, avail2)
        assert sorted(v.name() for v in pool.listAllVolumes()) == names

        # -- one domain per clone ---------------------------------------------
        serials = {}
        for vm, v in clones.items():
            disk = gfpool_cli('disk-xml', '--pool-xml', pool_xml_path,
                              v.name(), check=0).stdout
            f = guests.disk_fields(disk)
            assert f['source']['name'] == '%s%s/%s' % (volume, directory,
                                                       v.name())
            assert [h[0] for h in f['source']['hosts']] == hosts
            dname = '%s-%s' % (name, vm)
            serials[vm] = str(tmp_path / (vm + '.serial'))
            doms[vm] = conn.defineXML(guests.domain_xml(dname, disk,
                                                          serials[vm]))
        for vm, dom in doms.items():
            dom.create()
        for vm, dom in doms.items():
            ok, content = guests.wait_serial(
                serials[vm], message, timeout=BOOT_TIMEOUT,
                alive=lambda: dom.isActive())
            assert ok, '%s did not boot: %r\n%s' % (
                vm, content, d.qemu_log(dom.name()))
            qb = libvirt_qemu.qemuMonitorCommand(
                dom, '{"execute":"query-block"}', 0)
            assert guests.query_block_gluster(qb) == [
                (volume, '%s/%s.raw' % (name, vm), tuple(hosts))], qb

        # -- stop them (both at once: each QEMU spends ~9 s in glfs_fini) -----
        errors = []

        def destroy(dom):
            try:
                dom.destroy()
            except libvirt.libvirtError as e:
                errors.append(e)

        threads = [threading.Thread(target=destroy, args=(dom,))
                   for dom in doms.values()]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert not errors, errors
        for dom in doms.values():
            assert not dom.isActive()
            dom.undefine()
        doms.clear()

        # -- delete the clones -----------------------------------------------
        for v in clones.values():
            v.delete(0)
        names, cap3, alloc3, avail3 = wait_alloc(
            pool, lambda s: abs(alloc2 - s[2] - grown) <= SLACK)
        assert names == ['base.raw']
        assert cap3 == cap0
        assert abs(alloc2 - alloc3 - grown) <= SLACK, (
            'pool allocation shrank by %d after deleting 2 clones of %d '
            'bytes' % (alloc2 - alloc3, BASE_SIZE))
        assert abs(avail3 - avail2 - grown) <= SLACK, (avail2, avail3)
        for b in bricks:
            assert sorted(os.listdir(os.path.join(b, name))) == ['base.raw']

        # -- and the rest: base, pool ----------------------------------------
        base.delete(0)
        names, _, _, _ = pool_state(pool)
        assert names == []
        names, _, alloc4, _ = wait_alloc(
            pool, lambda s: abs(s[2] - alloc0) <= SLACK)
        assert abs(alloc4 - alloc0) <= SLACK, (alloc0, alloc4)
        pool.destroy()
        pool.delete(0)
        assert not any(os.path.exists(os.path.join(b, name)) for b in bricks)
        pool.undefine()
        pool = None
    finally:
        for dom in doms.values():
            try:
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
            except libvirt.libvirtError:
                pass
        if pool is not None:
            try:
                if pool.isActive():
                    pool.destroy()
                pool.undefine()
            except libvirt.libvirtError:
                pass
