# SPDX-License-Identifier: LGPL-2.1-or-later
"""The module libvirtd loads under Debian's name is a guard
(src/guard/gfpool_module_guard.c): in any libvirt but the one gfpool was
built for, or without gfpool's real module, it registers nothing, logs one
line at error level, and libvirtd lives; a gluster pool then fails with
libvirt's own "missing backend" error."""

import os
import shutil

from testbed import cleanup_libvirtd, start_libvirtd, module_path
from testbed.pools import pool_xml


def _faked():
    """The pool guard built for libvirt 8.0.0 (src/guard/meson.build)."""
    return os.path.join(os.path.dirname(os.path.realpath(module_path())),
                        'gfpool_guard_faked_pool.so')


def _running_version(d):
    v = d.conn().getLibVersion()
    return '%d.%d.%d' % (v // 1000000, v // 1000 % 1000, v % 1000)


def _check_disabled(d, tmp_path, cluster, line):
    assert d.alive()
    log = d.log_since_start()
    assert line in log, log[-3000:]
    assert sum(1 for l in log.splitlines() if 'gfpool:' in l) == 1, log[-3000:]
    assert ': error : ' in [l for l in log.splitlines() if line in l][0]
    maps = d.maps()
    assert 'gfpool_storage_backend.so' not in maps
    hosts = [h for h, _ in cluster.volume_hosts('rep3')]
    path = os.path.join(str(tmp_path), 'guarded.xml')
    with open(path, 'w') as f:
        f.write(pool_xml('guarded', hosts))
    p = d.virsh('pool-create', path, check=False)
    assert p.returncode != 0
    assert 'missing backend for pool type' in p.stderr, p.stderr
    assert d.alive()
    assert d.virsh('pool-list', '--all').returncode == 0


def test_guard_refuses_another_libvirt_release(tmp_path, cluster):
    d = start_libvirtd(_faked())
    try:
        line = ('gfpool: built for libvirt 8.0.0, running in %s: gluster pools '
                'disabled; rebuild or reinstall gfpool' % _running_version(d))
        _check_disabled(d, tmp_path, cluster, line)
    finally:
        cleanup_libvirtd(d)


def test_guard_without_the_real_module(tmp_path, cluster):
    """The guard alone (a copy, away from the build's real module, which
    is not installed either): it says which file it could not load."""
    lone = tmp_path / 'lone'
    lone.mkdir()
    guard = str(lone / 'libvirt_storage_backend_gluster.so')
    shutil.copy(os.path.realpath(module_path()), guard)
    if os.path.exists('/usr/local/lib/x86_64-linux-gnu/gfpool/gfpool_storage_backend.so') or \
            os.path.exists('/usr/lib/x86_64-linux-gnu/gfpool/gfpool_storage_backend.so'):
        import pytest
        pytest.skip('gfpool is installed on this machine: the guard would find it')
    d = start_libvirtd(guard)
    try:
        log_line = 'gfpool: cannot load '
        _check_disabled(d, tmp_path, cluster, log_line)
        log = d.log_since_start()
        assert ('gfpool: cannot load /usr/lib/x86_64-linux-gnu/gfpool/'
                'gfpool_storage_backend.so: ' in log or
                'gfpool: cannot load /usr/local/lib/x86_64-linux-gnu/gfpool/'
                'gfpool_storage_backend.so: ' in log), log[-2000:]
        assert 'No such file or directory: gluster pools disabled; ' \
            'reinstall gfpool' in log, log[-2000:]
    finally:
        cleanup_libvirtd(d)
