# SPDX-License-Identifier: LGPL-2.1-or-later
"""A running pool across pool-stop and libvirtd restarts: the connection is
released without blocking, the daemon exits cleanly with a glfs_fini still
pending, and active pools come back with their volumes, their headers
answered from the on-disk probe cache."""

import os
import re
import time

from testbed.pools import Timer, define_pool, pool_xml, vol_list_details

QCOW2_HEADER = None


def _qcow2_bytes(tmp_path):
    import subprocess
    path = str(tmp_path / 'seed.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', path, '1G'], check=True)
    with open(path, 'rb') as f:
        return f.read()


def _headers_read(libvirtd, directory):
    """Counts from the core's debug line for each refresh of directory."""
    log = libvirtd.log_since_start()
    return [int(m.group(2)) for m in re.finditer(
        r"refresh of '%s' on gluster volume '\w+': (\d+) volumes, (\d+) headers read"
        % re.escape(directory), log)]


def test_restart_keeps_pool_and_cache(make_libvirtd, cluster, gfapi_rep3, unique_name, tmp_path):
    d = make_libvirtd()
    name = unique_name('rst')
    directory = '/' + name
    gfapi_rep3.mkdir(directory)
    data = _qcow2_bytes(tmp_path)
    names = ['img%03d.qcow2' % i for i in range(60)]
    for n in names:
        gfapi_rep3.put('%s/%s' % (directory, n), data)
    define_pool(d, tmp_path, pool_xml(name, cluster.addresses, directory=directory))
    try:
        d.virsh('pool-start', name)
        assert _headers_read(d, directory)[-1] == len(names)
        d.virsh('pool-refresh', name)
        assert _headers_read(d, directory)[-1] == 0, 'unchanged images were read again'

        d.restart()
        assert d.last_exit == 0, 'libvirtd exit status %r' % d.last_exit
        info = d.virsh('pool-info', name).stdout
        assert re.search(r'State:\s+running', info), info
        vols = vol_list_details(d, name)
        assert sorted(vols) == names
        assert all(v[1] == 1 << 30 for v in vols.values())     # qcow2 virtual size
        # The refresh libvirt did at daemon start came from the cache file.
        assert _headers_read(d, directory)[-1] == 0

        # A changed image is probed again, and only that one.
        gfapi_rep3.put('%s/%s' % (directory, names[0]), data[:512] + b'\0' * 100)
        d.virsh('pool-refresh', name)
        assert _headers_read(d, directory)[-1] == 1
    finally:
        d.virsh('pool-destroy', name, check=False)
        d.virsh('pool-undefine', name, check=False)
        for n in names:
            gfapi_rep3.unlink('%s/%s' % (directory, n))
        gfapi_rep3.rmdir(directory)


def test_stop_is_prompt_and_exit_clean(make_libvirtd, cluster, gfapi_single, unique_name, tmp_path):
    """Debian's module blocks ~10 s in glfs_fini on every call. Ours hands
    it to a background thread; the daemon may exit while it runs."""
    d = make_libvirtd()
    name = unique_name('stp')
    gfapi_single.mkdir('/' + name)
    hosts = [h for h, _ in cluster.volume_hosts('single')]
    define_pool(d, tmp_path, pool_xml(name, hosts, volume='single', directory='/' + name))
    try:
        with Timer() as t_start:
            d.virsh('pool-start', name)
        d.virsh('vol-create-as', name, 'x.img', '1M')
        with Timer() as t_stop:
            d.virsh('pool-destroy', name)
        assert t_start.elapsed < 2, 'pool-start took %.2f s' % t_start.elapsed
        assert t_stop.elapsed < 1, 'pool-destroy took %.2f s' % t_stop.elapsed
        d.virsh('pool-start', name)
        d.virsh('vol-delete', '--pool', name, 'x.img')
        d.virsh('pool-destroy', name)
        d.virsh('pool-undefine', name)
        # glfs_fini of both connections is still running now.
        d.stop()
        assert d.last_exit == 0, 'libvirtd exit status %r' % d.last_exit
        assert d.last_stop_seconds < 8, 'libvirtd took %.1f s to exit' % d.last_stop_seconds
    finally:
        gfapi_single.rmdir('/' + name)
