# SPDX-License-Identifier: LGPL-2.1-or-later
"""Issue 3: the real libvirtd loads OUR module, and a gluster pool goes
through define/start/refresh/stop/undefine over gfapi, with every host of the
pool used and a deadline of our own against servers that never answer."""

import os
import threading
import time

import libvirt
import pytest

import testbed
from testbed.pools import (SilentListener, Timer, define_pool, pool_xml,
                     vol_list_details)

MiB = 1024 * 1024


def test_daemon_loaded_our_module(libvirtd):
    ours = os.path.realpath(testbed.module_path())
    maps = libvirtd.maps()
    assert ours in maps, 'libvirtd did not map %s' % ours
    debian = '/usr/lib/x86_64-linux-gnu/libvirt/storage-backend/libvirt_storage_backend_gluster.so'
    assert debian not in maps


def _lifecycle(libvirtd, gfapi, hosts, name, tmp_path):
    directory = '/' + name
    gfapi.mkdir(directory)
    define_pool(libvirtd, tmp_path, pool_xml(name, hosts, directory=directory))
    try:
        libvirtd.virsh('pool-start', name)
        out = libvirtd.virsh('vol-list', name).stdout
        assert 'a.img' not in out

        gfapi.put_sparse(directory + '/a.img', 3 * MiB)
        gfapi.put(directory + '/b.img', b'x' * 4096)
        libvirtd.virsh('pool-refresh', name)

        vols = vol_list_details(libvirtd, name)
        assert set(vols) == {'a.img', 'b.img'}
        assert vols['a.img'][0] == libvirt.VIR_STORAGE_VOL_NETWORK
        assert vols['a.img'][1] == 3 * MiB
        assert vols['b.img'][1] == 4096
        assert vols['b.img'][2] >= 4096     # allocation from st_blocks

        details = libvirtd.virsh('vol-list', '--details', name).stdout
        assert 'a.img' in details and 'network' in details

        # Key and path as Debian's module writes them: first host, no port.
        path = libvirtd.virsh('vol-path', '--pool', name, 'a.img').stdout.strip()
        assert path == 'gluster://%s/rep3%s/a.img' % (hosts[0], directory)

        libvirtd.virsh('pool-destroy', name)   # virsh's name for pool-stop
        info = libvirtd.virsh('pool-info', name).stdout
        assert 'inactive' in info
    finally:
        libvirtd.virsh('pool-destroy', name, check=False)
        libvirtd.virsh('pool-undefine', name)
        for f in ('a.img', 'b.img'):
            try:
                gfapi.unlink(directory + '/' + f)
            except OSError:
                pass
        gfapi.rmdir(directory)


def test_pool_lifecycle_all_hosts(libvirtd, cluster, gfapi_rep3, unique_name, tmp_path):
    _lifecycle(libvirtd, gfapi_rep3, cluster.addresses, unique_name('pool'), tmp_path)


def test_pool_lifecycle_first_host_down(libvirtd, cluster, gfapi_rep3, unique_name, tmp_path):
    """Debian's module fails here ("Transport endpoint is not connected"):
    it only ever tries hosts[0]."""
    cluster.stop_node(1)
    try:
        _lifecycle(libvirtd, gfapi_rep3, cluster.addresses, unique_name('pool'), tmp_path)
    finally:
        cluster.start_node(1)


def _start_fails_fast(libvirtd, name, tmp_path, host, port):
    define_pool(libvirtd, tmp_path, pool_xml(name, [host], port=port))
    try:
        with Timer() as t:
            r = libvirtd.virsh('pool-start', name, check=False, timeout=60)
        assert r.returncode != 0
        assert t.elapsed < 10, 'pool-start took %.1f s' % t.elapsed
        assert host in r.stderr, r.stderr
        assert 'cannot start gluster pool' in r.stderr, r.stderr
        return r.stderr
    finally:
        libvirtd.virsh('pool-undefine', name)


def test_start_nothing_listens(libvirtd, cluster, unique_name, tmp_path):
    # An address of the cluster's /24 that no node uses, port 24007.
    base = cluster.addresses[0].rsplit('.', 1)[0]
    err = _start_fails_fast(libvirtd, unique_name('pool'), tmp_path, base + '.200', 24007)
    assert 'glfs_init' in err or 'refused' in err.lower() or 'answer' in err


def test_start_hung_host_does_not_block_daemon(libvirtd, cluster, gfapi_rep3,
                                               unique_name, tmp_path):
    """A host that accepts and never answers: Debian's module hangs
    pool-start for > 170 s holding the pool lock. Ours gives up at its
    deadline, and the daemon keeps serving other pools meanwhile."""
    good = unique_name('good')
    gfapi_rep3.mkdir('/' + good)
    define_pool(libvirtd, tmp_path, pool_xml(good, cluster.addresses, directory='/' + good))
    libvirtd.virsh('pool-start', good)

    listener = SilentListener(cluster.addresses[0].rsplit('.', 1)[0] + '.201')
    hung = unique_name('hung')
    result = {}

    def start_hung():
        with Timer() as t:
            result['r'] = libvirtd.virsh('pool-start', hung, check=False, timeout=120)
        result['t'] = t.elapsed

    try:
        os.makedirs(str(tmp_path / 'h'), exist_ok=True)
        define_pool(libvirtd, tmp_path / 'h',
                    pool_xml(hung, [listener.addr], port=listener.port))
        th = threading.Thread(target=start_hung)
        th.start()
        time.sleep(1.0)     # pool-start is now waiting on the silent host
        assert listener.conns, 'gfapi never connected to the silent listener'
        with Timer() as t_list:
            libvirtd.virsh('vol-list', good)
        with Timer() as t_plist:
            libvirtd.virsh('pool-list', '--all')
        th.join(60)
        assert not th.is_alive()
        assert result['r'].returncode != 0
        assert result['t'] < 10, 'pool-start on a hung host took %.1f s' % result['t']
        assert 'no answer within' in result['r'].stderr, result['r'].stderr
        assert t_list.elapsed < 1, 'vol-list on another pool took %.2f s' % t_list.elapsed
        # pool-list locks every pool object, the one starting included: it
        # waits at most for our deadline.
        assert t_plist.elapsed < 10, 'pool-list took %.2f s' % t_plist.elapsed
    finally:
        listener.close()
        libvirtd.virsh('pool-undefine', hung, check=False)
        libvirtd.virsh('pool-destroy', good, check=False)
        libvirtd.virsh('pool-undefine', good, check=False)
        gfapi_rep3.rmdir('/' + good)


def _threads(pid):
    with open('/proc/%d/status' % pid) as f:
        return int(next(l for l in f if l.startswith('Threads:')).split()[1])


def test_hung_host_costs_bounded_threads(make_libvirtd, cluster, unique_name,
                                         tmp_path):
    """What a management stack polling a blackholed host does: 30
    pool-starts. Each abandoned connect keeps gfapi's threads while
    glfs_init waits, so only one may be pending per volume and hosts: every
    start gives up at the deadline (2 s here), the later ones waiting for
    the pending attempt instead of starting their own, and libvirtd's
    thread count stays bounded (27 -> 187 before). When the host goes away
    the pending attempt ends and the next start tries afresh."""
    d = make_libvirtd(extra_env={'GFPOOL_CONNECT_TIMEOUT_MS': '2000'})
    listener = SilentListener(cluster.addresses[0].rsplit('.', 1)[0] + '.202')
    name = unique_name('hung30')
    try:
        define_pool(d, tmp_path, pool_xml(name, [listener.addr],
                                          port=listener.port))
        before = _threads(d.pid)
        times = []
        for i in range(30):
            with Timer() as t:
                r = d.virsh('pool-start', name, check=False, timeout=60)
            times.append(t.elapsed)
            assert r.returncode != 0 and 'no answer' in r.stderr, r.stderr
        after = _threads(d.pid)
        print('30 starts against a hung host: threads %d -> %d, each start '
              '%.1f-%.1f s' % (before, after, min(times), max(times)))
        assert max(times) < 5, times
        assert after - before <= 20, (
            '30 pool-starts against a hung host: %d -> %d threads'
            % (before, after))
        listener.close()
        r = d.virsh('pool-start', name, check=False, timeout=60)
        assert r.returncode != 0 and 'still waits' not in r.stderr, r.stderr
    finally:
        listener.close()
        d.virsh('pool-undefine', name, check=False)


def test_python_api_lifecycle(libvirtd, cluster, gfapi_single, unique_name):
    """The same through python3-libvirt, on the 1-brick volume."""
    name = unique_name('py')
    gfapi_single.mkdir('/' + name)
    conn = libvirtd.conn()
    pool = conn.storagePoolDefineXML(pool_xml(name, cluster.volume_hosts_names('single')
                                              if hasattr(cluster, 'volume_hosts_names')
                                              else [h for h, _ in cluster.volume_hosts('single')],
                                              volume='single', directory='/' + name))
    try:
        pool.create()
        gfapi_single.put_sparse('/%s/disk.img' % name, 10 * MiB)
        pool.refresh()
        assert pool.listVolumes() == ['disk.img']
        vol = pool.storageVolLookupByName('disk.img')
        assert vol.info()[1] == 10 * MiB
        state, cap, alloc, avail = pool.info()
        assert state == libvirt.VIR_STORAGE_POOL_RUNNING
        assert cap > 0 and avail > 0
        pool.destroy()
    finally:
        try:
            pool.destroy()
        except libvirt.libvirtError:
            pass
        pool.undefine()
        gfapi_single.unlink('/%s/disk.img' % name)
        gfapi_single.rmdir('/' + name)
