# SPDX-License-Identifier: LGPL-2.1-or-later
"""Self-tests of the test bed (tests/testbed/: cluster.py, libvirtd.py, __main__.py,
gfapi_ctypes.py)."""

import json
import os
import shutil
import stat
import subprocess
import tempfile
import time

import pytest

import testbed
from testbed import unavailable
from testbed.gfapi_ctypes import Gfapi

DEBIAN_GLUSTER_MODULE = os.path.join(
    testbed.DISTRO_BACKEND_DIR, 'libvirt_storage_backend_gluster.so')


def _listeners():
    """[(addr, port, pid)] of listening TCP sockets (ss -ltnpH)."""
    out = subprocess.run(['ss', '-Hltnp'], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    res = []
    for line in out.splitlines():
        f = line.split()
        local = f[3]
        addr, port = local.rsplit(':', 1)
        for part in line.split('pid=')[1:]:
            res.append((addr.strip('[]'), int(port),
                        int(part.split(',')[0])))
    return res


# --------------------------------------------------------------------------
# cluster
# --------------------------------------------------------------------------
def test_addresses_are_private_loopback(cluster):
    assert len(cluster.addresses) == 3
    for a in cluster.addresses:
        assert a.startswith('127.') and a != '127.0.0.1'
        assert not a.startswith('127.0.0.')
    assert len(set(a.rsplit('.', 1)[0] for a in cluster.addresses)) == 1


def test_nodes_listen_only_on_their_address(cluster):
    by_pid = {}
    for addr, port, pid in _listeners():
        by_pid.setdefault(pid, []).append((addr, port))
    seen_glusterd = 0
    for i in range(1, cluster.nodes + 1):
        addr = cluster.addresses[i - 1]
        pids = cluster.node_pids(i)
        assert pids, 'node %d has no processes' % i
        for pid in pids:
            for laddr, port in by_pid.get(pid, []):
                assert laddr == addr, (
                    'pid %d of node %d listens on %s:%d, expected %s' % (
                        pid, i, laddr, port, addr))
                if port == testbed.GLUSTERD_PORT:
                    seen_glusterd += 1
    assert seen_glusterd == cluster.nodes
    # and nothing of ours on the wildcard or 127.0.0.1
    ours = cluster.all_pids()
    for laddr, port, pid in _listeners():
        if pid in ours:
            assert laddr not in ('0.0.0.0', '*', '127.0.0.1', '::')


def test_bricks_online(cluster):
    for vol, n in (('rep3', 3), ('single', 1)):
        st = cluster.volume_status(vol)
        bricks = [(h, p) for h, p in cluster.volumes[vol]]
        assert len(bricks) == n
        for b in bricks:
            assert st[b][0], '%s brick %s offline: %s' % (vol, b, st)
    assert [h for h, _ in cluster.volume_hosts('single')][0] == \
        cluster.addresses[0]
    assert len(cluster.volume_hosts('rep3')) == 3


@pytest.mark.parametrize('vol', ['rep3', 'single'])
def test_gfapi_roundtrip(cluster, gfapi_rep3, gfapi_single, vol,
                         unique_name):
    g = {'rep3': gfapi_rep3, 'single': gfapi_single}[vol]
    d = '/' + unique_name('dir')
    g.mkdir(d + '/sub/deeper', parents=True)
    g.put(d + '/a.img', b'hello world')
    g.put_sparse(d + '/sparse.img', 1 << 30)
    g.symlink('a.img', d + '/link')
    st = g.stat(d + '/a.img')
    assert st.size == 11 and stat.S_ISREG(st.mode)
    assert st.uid == 0
    sp = g.stat(d + '/sparse.img')
    assert sp.size == 1 << 30 and sp.blocks < 1024
    assert stat.S_ISLNK(g.lstat(d + "/link").mode)
    assert g.readlink(d + '/link') == 'a.img'
    assert g.read(d + '/a.img') == b'hello world'
    assert g.read(d + '/a.img', 6, 5) == b'world'
    assert g.listdir(d) == ['a.img', 'link', 'sparse.img', 'sub']
    assert g.exists(d + '/sub/deeper')
    assert not g.exists(d + '/nope')
    with pytest.raises(FileNotFoundError):
        g.stat(d + '/nope')
    with pytest.raises(FileExistsError):
        g.mkdir(d + '/sub')
    try:
        g.mkfifo(d + '/fifo')
        assert stat.S_ISFIFO(g.lstat(d + '/fifo').mode)
    except OSError:
        pass
    # the data really is on every brick (a brick restarted by an earlier
    # test may still be reconnecting: then self-heal brings it the file)
    for host, brick in cluster.volumes[vol]:
        path = os.path.join(brick, d.lstrip('/'), 'a.img')
        deadline = time.monotonic() + 60

        def content():
            try:
                with open(path, 'rb') as f:
                    return f.read()
            except FileNotFoundError:
                return None
        while content() != b'hello world' and time.monotonic() < deadline:
            cluster.cli('volume', 'heal', vol, check=False)
            time.sleep(1)
        assert content() == b'hello world'
    g.unlink(d + '/a.img')
    assert not g.exists(d + '/a.img')
    g.rmtree(d)
    assert not g.exists(d)


def test_gfapi_failover_host_list(cluster):
    """A dead first volfile server is skipped (gfapi tries the next)."""
    hosts = [('127.0.0.2', 1)] + cluster.volume_hosts('single')
    t = time.monotonic()
    g = Gfapi('single', hosts)
    assert time.monotonic() - t < 15
    assert isinstance(g.listdir('/'), list)


def test_stop_start_node(cluster, gfapi_rep3, unique_name):
    if os.environ.get('GFPOOL_CLUSTER_DIR'):
        pytest.skip('not on a shared cluster')
    n = 3
    addr = cluster.addresses[n - 1]
    before = cluster.node_pids(n)
    assert len(before) >= 3           # glusterd, brick, shd
    cluster.stop_node(n)
    assert not cluster.node_running(n)
    assert not cluster.node_pids(n)
    assert not any(a == addr for a, _, _ in _listeners())
    # rep3 still writable with 2 of 3 bricks (client quorum auto)
    name = '/' + unique_name('down')
    gfapi_rep3.put(name, b'x' * 4096)
    assert gfapi_rep3.stat(name).size == 4096
    t = time.monotonic()
    cluster.start_node(n)
    took = time.monotonic() - t
    assert cluster.node_running(n)
    st = cluster.volume_status('rep3')
    assert all(st[b][0] for b in cluster.volumes['rep3'])
    assert any(a == addr and p == testbed.GLUSTERD_PORT
               for a, p, _ in _listeners())
    assert took < 30
    gfapi_rep3.unlink(name)


def test_cli_cluster_up_down():
    """The CLI used by the demo and the benchmarks (a second cluster next
    to the session one: addresses must not collide)."""
    d = tempfile.mkdtemp(prefix='gfpc', dir='/tmp')
    try:
        p = subprocess.run([testbed.PYTHON, testbed.HERE, 'cluster-up', d],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=120)
        assert p.returncode == 0, p.stderr
        st = json.loads(p.stdout)
        assert set(st['volumes']) == {'rep3', 'single'}
        assert len(st['addresses']) == 3
        assert os.path.exists(os.path.join(d, 'state.json'))
        c = testbed.Cluster.from_state(d)
        assert all(c.node_running(i) for i in (1, 2, 3))
        pids = c.all_pids()
        assert pids
        socks = set(st['created_sockets'])
        assert socks and all(os.path.exists(s) for s in socks)
        p = subprocess.run([testbed.PYTHON, testbed.HERE, 'cluster-down',
                            d], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True,
                           timeout=60)
        assert p.returncode == 0, p.stdout
        assert not [x for x in pids if testbed.pid_alive(x)]
        assert not [s for s in socks if os.path.exists(s)]
        assert not os.path.exists(os.path.join(d, 'state.json'))
    finally:
        if os.path.exists(os.path.join(d, 'state.json')):
            testbed.Cluster.from_state(d).stop()
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# private libvirtd
# --------------------------------------------------------------------------
@pytest.fixture
def debian_module_copy(tmp_path):
    """A copy of Debian's gluster backend at a path of ours, so that
    /proc/PID/maps proves which file was loaded."""
    if not os.path.exists(DEBIAN_GLUSTER_MODULE):
        unavailable('Debian gluster backend not installed: %s'
                    % DEBIAN_GLUSTER_MODULE)
    d = tempfile.mkdtemp(prefix='gfpm', dir='/tmp')
    dst = os.path.join(d, 'libvirt_storage_backend_gluster.so')
    shutil.copy(DEBIAN_GLUSTER_MODULE, dst)
    yield dst
    shutil.rmtree(d, ignore_errors=True)


def _environ(pid):
    with open('/proc/%d/environ' % pid, 'rb') as f:
        return dict(x.decode().split('=', 1) for x in f.read().split(b'\0')
                    if b'=' in x)


def test_private_libvirtd_mechanism(make_libvirtd, debian_module_copy,
                                    cluster, gfapi_single, unique_name):
    d = make_libvirtd(module=debian_module_copy)
    assert d.pid and testbed.pid_alive(d.pid)
    env = _environ(d.pid)
    assert env['LIBVIRT_STORAGE_BACKEND_DIR'] == d.backend_dir
    assert os.path.realpath(os.path.join(
        d.backend_dir, 'libvirt_storage_backend_gluster.so')) == \
        os.path.realpath(debian_module_copy)
    maps = d.maps()
    assert os.path.realpath(debian_module_copy) in maps
    assert 'libvirt_driver_storage.so' in maps
    assert 'libvirt_driver_qemu.so' not in maps
    assert 'libvirt_storage_backend_fs.so' in maps
    # private mount namespace, socket reachable from outside
    assert os.readlink('/proc/%d/ns/mnt' % d.pid) != \
        os.readlink('/proc/self/ns/mnt')
    assert d.sock.startswith(d.workdir)
    assert d.virsh('pool-list', '--all').returncode == 0
    conn = d.conn()
    assert conn.listAllStoragePools() == []
    # end to end with Debian's module: a gluster pool over `single`
    sub = unique_name('lv')
    gfapi_single.put('/%s/disk.img' % sub, b'\0' * 65536)
    pool = unique_name('gp')
    d.virsh('pool-define-as', pool, 'gluster', '--source-host',
            cluster.addresses[0], '--source-name', 'single',
            '--source-path', '/' + sub)
    d.virsh('pool-start', pool, timeout=120)
    vols = d.virsh('vol-list', pool).stdout
    assert 'disk.img' in vols
    d.virsh('pool-destroy', pool)
    d.virsh('pool-undefine', pool)
    gfapi_single.rmtree('/' + sub)


def test_private_libvirtd_restart_keeps_state(make_libvirtd,
                                              debian_module_copy, tmp_path):
    d = make_libvirtd(module=debian_module_copy)
    pdir = tmp_path / 'dirpool'
    pdir.mkdir()
    d.virsh('pool-define-as', 'dp', 'dir', '--target', str(pdir))
    d.virsh('pool-start', 'dp')
    old = d.pid
    d.restart()
    assert d.pid != old
    out = d.virsh('pool-list', '--all').stdout
    assert 'dp' in out and 'active' in out
    d.virsh('pool-destroy', 'dp')
    d.virsh('pool-undefine', 'dp')
    # the system's libvirt dirs were never touched
    assert not os.path.exists('/etc/libvirt/storage/dp.xml')


def test_private_libvirtd_bad_module_reports(tmp_path):
    """A module that cannot load makes libvirtd exit; start() says so."""
    bad = tmp_path / 'libvirt_storage_backend_gluster.so'
    bad.write_bytes(b'not an ELF file')
    d = testbed.Libvirtd(str(tmp_path / 'w'), module=str(bad),
                         start_timeout=20)
    with pytest.raises(testbed.TestbedError) as ei:
        d.start()
    d.stop()
    assert 'exited' in str(ei.value)


def test_private_libvirtd_with_qemu(make_libvirtd, debian_module_copy):
    d = make_libvirtd(module=debian_module_copy, with_qemu=True)
    assert d.uri.startswith('qemu:///system?socket=')
    assert 'libvirt_driver_qemu.so' in d.maps()
    assert d.virsh('list', '--all').returncode == 0
    assert d.virsh('pool-list', '--all').returncode == 0


def test_libvirtd_fixture_loads_our_module(libvirtd):
    """The session daemon (GFPOOL_MODULE) has our module mapped."""
    from testbed import module_path
    assert os.path.realpath(module_path()) in libvirtd.maps()
    assert _environ(libvirtd.pid)['LIBVIRT_STORAGE_BACKEND_DIR'] == \
        libvirtd.backend_dir
    assert libvirtd.virsh('pool-list', '--all').returncode == 0
