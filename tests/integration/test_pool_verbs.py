# SPDX-License-Identifier: LGPL-2.1-or-later
"""Issue 5: pool verbs through the private libvirtd (real virsh and
python3-libvirt) and the CLI, on the replica-3 volume: pool-build,
pool-delete, prompt pool-start/stop, find-storage-pool-sources (every host
tried, a deadline of its own), a pool whose first host is down, backing
chains as libvirt shows them."""

import secrets
import socket
import stat
import xml.etree.ElementTree as ET

import libvirt
import pytest

from testbed.pools import (GlusterPool, Timer, define_pool, gfpool_cli, pool_xml,
                     qcow2_header, virsh_fails)

KiB = 1024
MiB = 1024 * KiB




def gone(g, path):
    """path is not in its parent's listing (a stat may answer from the
    test connection's metadata cache for a moment)."""
    parent, base = path.rsplit('/', 1)
    return base not in g.listdir(parent or '/')


def cli_opts(cluster, directory, volume='rep3'):
    out = []
    for h, port in cluster.volume_hosts(volume):
        out += ['--host', '%s:%d' % (h, port)]
    return out + ['--volume', volume, '--dir', directory]


@pytest.fixture
def top(gfapi_rep3, unique_name):
    """A fresh top directory /NAME on rep3, removed afterwards."""
    name = unique_name('pv')
    yield name
    gfapi_rep3.rmtree('/' + name)


@pytest.fixture
def defined(libvirtd, tmp_path):
    """define(name, hosts, directory, volume) -> name; destroyed and
    undefined after the test."""
    names = []

    def define(name, hosts, directory, volume='rep3'):
        d = tmp_path / name
        d.mkdir()
        define_pool(libvirtd, d, pool_xml(name, hosts, volume=volume,
                                          directory=directory))
        names.append(name)
        return name

    yield define
    for n in names:
        libvirtd.virsh('pool-destroy', n, check=False)
        libvirtd.virsh('pool-undefine', n, check=False)


# ---- pool-build ------------------------------------------------------------

def test_pool_build_nested_virsh(libvirtd, cluster, gfapi_rep3, top, defined):
    g = gfapi_rep3
    directory = '/%s/a/b/c' % top
    assert not g.exists('/' + top)
    name = defined(top, cluster.addresses, directory)
    # an undefined directory: pool-start fails, naming it
    virsh_fails(libvirtd, 'pool-start', name, expect=directory)
    libvirtd.virsh('pool-build', name)
    for d in ('/' + top, '/%s/a' % top, '/%s/a/b' % top, directory):
        st = g.stat(d)
        assert stat.S_ISDIR(st.mode), d
    assert g.stat(directory).mode & 0o7777 == 0o755
    assert g.listdir(directory) == []
    # again, on the existing empty directory: fine, with or without
    # --no-overwrite
    libvirtd.virsh('pool-build', name)
    libvirtd.virsh('pool-build', name, '--no-overwrite')
    libvirtd.virsh('pool-start', name)
    libvirtd.virsh('vol-create-as', name, 'v.img', '1M', '--format', 'raw')
    assert g.listdir(directory) == ['v.img']
    # an active pool is not built (libvirt's rule)
    virsh_fails(libvirtd, 'pool-build', name, expect='is already active')


def test_pool_build_existing_dir(libvirtd, cluster, gfapi_rep3, top, defined):
    """--no-overwrite on a non-empty directory fails and says why; without
    flags (and with --overwrite) the build succeeds and deletes nothing."""
    g = gfapi_rep3
    directory = '/%s/imgs' % top
    keep = secrets.token_bytes(64 * KiB)
    g.put(directory + '/keep.img', keep, mode=0o600)
    g.mkdir(directory + '/sub')
    g.put(directory + '/sub/inner', b'inner')
    name = defined(top, cluster.addresses, directory)

    virsh_fails(libvirtd, 'pool-build', name, '--no-overwrite',
                expect=["cannot build gluster pool '%s'" % name,
                        "pool directory '%s' on gluster volume 'rep3' already "
                        "exists and is not empty" % directory])
    libvirtd.virsh('pool-build', name)
    libvirtd.virsh('pool-build', name, '--overwrite')
    assert sorted(g.listdir(directory)) == ['keep.img', 'sub']
    assert g.read(directory + '/keep.img') == keep
    assert g.stat(directory + '/keep.img').mode & 0o7777 == 0o600
    assert g.read(directory + '/sub/inner') == b'inner'

    # python: VIR_STORAGE_POOL_BUILD_NO_OVERWRITE
    p = libvirtd.conn().storagePoolLookupByName(name)
    with pytest.raises(libvirt.libvirtError) as e:
        p.build(libvirt.VIR_STORAGE_POOL_BUILD_NO_OVERWRITE)
    assert 'already exists and is not empty' in str(e.value)
    p.build(0)
    assert g.read(directory + '/keep.img') == keep

    # the CLI: exit 4 (exists), a clear message; plain build is fine
    opts = cli_opts(cluster, directory)
    r = gfpool_cli('pool-build', *opts, '--no-overwrite', check=4)
    assert "pool directory '%s' on gluster volume 'rep3' already exists " \
        "and is not empty" % directory in r.stderr, r.stderr
    gfpool_cli('pool-build', *opts, check=0)
    assert g.read(directory + '/keep.img') == keep


def test_pool_build_cli_nested(cluster, gfapi_rep3, top):
    directory = '/%s/x/y/z' % top
    r = gfpool_cli('pool-build', *cli_opts(cluster, directory), check=0)
    assert directory in r.stdout
    assert stat.S_ISDIR(gfapi_rep3.stat(directory).mode)
    gfpool_cli('pool-build', *cli_opts(cluster, directory), '--no-overwrite',
               check=0)


# ---- pool-delete -----------------------------------------------------------

def test_pool_delete_only_when_empty(libvirtd, cluster, gfapi_rep3, top, defined):
    g = gfapi_rep3
    directory = '/%s/p' % top
    name = defined(top, cluster.addresses, directory)
    libvirtd.virsh('pool-build', name)
    libvirtd.virsh('pool-start', name)
    libvirtd.virsh('vol-create-as', name, 'v.img', '2M', '--format', 'raw',
                   '--allocation', '0')
    data = secrets.token_bytes(128 * KiB)
    g.write_at(directory + '/v.img', 4096, data)
    # libvirt refuses to delete an active pool
    virsh_fails(libvirtd, 'pool-delete', name, expect='is still active')
    libvirtd.virsh('pool-destroy', name)
    virsh_fails(libvirtd, 'pool-delete', name,
                expect=["cannot delete gluster pool '%s'" % name,
                        "it is not empty (delete its volumes first)"])
    p = libvirtd.conn().storagePoolLookupByName(name)
    with pytest.raises(libvirt.libvirtError) as e:
        p.delete(0)
    assert 'is not empty' in str(e.value)
    r = gfpool_cli('pool-delete', *cli_opts(cluster, directory), check=1)
    assert 'it is not empty (delete its volumes first)' in r.stderr, r.stderr
    # the volume is untouched
    assert g.listdir(directory) == ['v.img']
    assert g.read(directory + '/v.img', 4096, len(data)) == data
    assert g.stat(directory + '/v.img').size == 2 * MiB

    g.unlink(directory + '/v.img')
    libvirtd.virsh('pool-delete', name)
    assert gone(g, directory)
    assert g.exists('/' + top)          # only the pool's own directory
    # again: the directory is gone, a clear error
    r = virsh_fails(libvirtd, 'pool-delete', name, expect=directory)
    # pool-build brings it back; python's delete removes it
    p.build(0)
    assert g.exists(directory)
    p.delete(0)
    assert gone(g, directory)


def test_pool_delete_cli(cluster, gfapi_rep3, top):
    g = gfapi_rep3
    directory = '/%s/c' % top
    g.mkdir(directory, parents=True)
    g.put(directory + '/x.img', b'x' * 4096)
    opts = cli_opts(cluster, directory)
    r = gfpool_cli('pool-delete', *opts, check=1)
    assert "cannot delete pool directory '%s' on gluster volume 'rep3': it is " \
        "not empty" % directory in r.stderr, r.stderr
    assert g.read(directory + '/x.img') == b'x' * 4096
    g.unlink(directory + '/x.img')
    gfpool_cli('pool-delete', *opts, check=0)
    assert gone(g, directory)
    r = gfpool_cli('pool-delete', *opts, check=3)
    assert 'No such file or directory' in r.stderr, r.stderr


# ---- pool-start / pool-destroy are prompt ----------------------------------

def test_pool_start_destroy_prompt(libvirtd, cluster, gfapi_rep3, top, defined):
    """glfs_fini takes 7-11 s: stopping must not wait for it, and starting
    right after a stop must not either."""
    directory = '/' + top
    gfapi_rep3.mkdir(directory)
    gfapi_rep3.put(directory + '/a.img', b'a' * 4096)
    name = defined(top, cluster.addresses, directory)
    times = []
    for i in range(3):
        with Timer() as t:
            libvirtd.virsh('pool-start', name)
        times.append(('start', t.elapsed))
        assert 'a.img' in libvirtd.virsh('vol-list', name).stdout
        with Timer() as t:
            libvirtd.virsh('pool-destroy', name)
        times.append(('destroy', t.elapsed))
    p = libvirtd.conn().storagePoolLookupByName(name)
    for i in range(2):
        with Timer() as t:
            p.create(0)
        times.append(('create', t.elapsed))
        assert p.listVolumes() == ['a.img']
        with Timer() as t:
            p.destroy()
        times.append(('py-destroy', t.elapsed))
    slow = [(w, round(s, 2)) for w, s in times if s >= 1.0]
    assert not slow, 'slow pool start/stop: %s' % times
    assert libvirtd.alive()


# ---- find-storage-pool-sources ----------------------------------------------

def sources_of(xml):
    """{volume name: [host, ...]} from a <sources> document."""
    root = ET.fromstring(xml)
    assert root.tag == 'sources', xml
    out = {}
    for s in root.findall('source'):
        out[s.findtext('name')] = [h.get('name') for h in s.findall('host')]
    return out


def check_sources(found, cluster, first):
    assert set(found) >= {'rep3', 'single'}, found
    assert set(found['rep3']) == set(cluster.addresses), found
    # the host that answered comes first: it serves the volfile
    assert found['rep3'][0] == first, found
    assert found['single'][0] == first, found
    assert cluster.addresses[0] in found['single'], found


def unused_addr(cluster, last):
    return cluster.addresses[0].rsplit('.', 1)[0] + '.%d' % last


def test_find_sources_virsh_and_python(libvirtd, cluster, tmp_path):
    a, b = cluster.addresses[0], cluster.addresses[1]
    spec = tmp_path / 'src.xml'
    spec.write_text("<source><host name='%s'/></source>" % a)
    with Timer() as t:
        out = libvirtd.virsh('find-storage-pool-sources', 'gluster',
                             str(spec)).stdout
    check_sources(sources_of(out), cluster, a)
    assert t.elapsed < 5, t.elapsed
    out = libvirtd.virsh('find-storage-pool-sources-as', 'gluster', b).stdout
    check_sources(sources_of(out), cluster, b)

    conn = libvirtd.conn()
    xml = conn.findStoragePoolSources(
        'gluster', "<source><host name='%s'/></source>" % a, 0)
    check_sources(sources_of(xml), cluster, a)
    # what it returns defines a pool that starts
    src = ET.fromstring(xml).find("source[name='rep3']")
    pool = ET.fromstring(pool_xml('fs-' + secrets.token_hex(3),
                                  cluster.addresses, directory='/'))
    pool.remove(pool.find('source'))
    pool.insert(1, src)
    p = conn.storagePoolCreateXML(ET.tostring(pool, encoding='unicode'), 0)
    try:
        assert p.isActive()
    finally:
        p.destroy()
    # no host: a clear error
    with pytest.raises(libvirt.libvirtError) as e:
        conn.findStoragePoolSources('gluster', '<source/>', 0)
    assert 'host' in str(e.value)


def test_find_sources_tries_each_host(libvirtd, cluster, tmp_path):
    dead = unused_addr(cluster, 200)       # nothing listens: refused
    good = cluster.addresses[2]
    spec = tmp_path / 'src.xml'
    spec.write_text("<source><host name='%s'/><host name='%s'/></source>"
                    % (dead, good))
    with Timer() as t:
        out = libvirtd.virsh('find-storage-pool-sources', 'gluster',
                             str(spec)).stdout
    check_sources(sources_of(out), cluster, good)
    assert t.elapsed < 10, t.elapsed
    xml = libvirtd.conn().findStoragePoolSources(
        'gluster', spec.read_text(), 0)
    check_sources(sources_of(xml), cluster, good)


class SilentGlusterd:
    """Accepts on ADDR:24007 (the port the gluster CLI always uses) and
    never answers."""

    def __init__(self, addr):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, 24007))
        self.sock.listen(64)

    def close(self):
        self.sock.close()


def test_find_sources_only_dead_hosts(libvirtd, cluster, tmp_path):
    """A refused host and one that accepts and never answers: a clear error
    naming both, within our deadline (5 s a host), the daemon still
    serving."""
    refused = unused_addr(cluster, 201)
    silent = unused_addr(cluster, 202)
    lst = SilentGlusterd(silent)
    try:
        spec = tmp_path / 'src.xml'
        spec.write_text("<source><host name='%s'/><host name='%s'/></source>"
                        % (refused, silent))
        with Timer() as t:
            r = virsh_fails(libvirtd, 'find-storage-pool-sources', 'gluster',
                            str(spec), timeout=60,
                            expect=['no glusterd answered', refused, silent])
        assert t.elapsed < 15, 'took %.1f s: %s' % (t.elapsed, r.stderr)
        with Timer() as t:
            with pytest.raises(libvirt.libvirtError) as e:
                libvirtd.conn().findStoragePoolSources(
                    'gluster', "<source><host name='%s'/></source>" % refused, 0)
        assert t.elapsed < 15
        assert refused in str(e.value)
        assert libvirtd.alive()
        libvirtd.virsh('pool-list', '--all')
    finally:
        lst.close()


# ---- the first host's glusterd is down ---------------------------------------

def test_first_host_down(libvirtd, cluster, gfapi_rep3, top, defined, tmp_path):
    """pool-start, pool-refresh, vol-create-as and find-storage-pool-sources
    go through the other hosts (the pool lists all three, the dead one
    first)."""
    g = gfapi_rep3
    directory = '/' + top
    g.mkdir(directory)
    g.put(directory + '/before.img', b'b' * 8192)
    name = defined(top, cluster.addresses, directory)
    cluster.stop_node(1)
    try:
        with Timer() as t:
            libvirtd.virsh('pool-start', name, timeout=60)
        assert t.elapsed < 10, 'pool-start took %.1f s' % t.elapsed
        assert 'before.img' in libvirtd.virsh('vol-list', name).stdout
        g.put(directory + '/during.img', b'd' * 8192)
        libvirtd.virsh('pool-refresh', name)
        libvirtd.virsh('vol-create-as', name, 'new.qcow2', '1G', '--format',
                       'qcow2')
        libvirtd.virsh('vol-create-as', name, 'new.img', '1M', '--format', 'raw')
        p = libvirtd.conn().storagePoolLookupByName(name)
        assert sorted(p.listVolumes()) == ['before.img', 'during.img',
                                           'new.img', 'new.qcow2']
        assert p.storageVolLookupByName('new.qcow2').info()[1] == 1 << 30
        spec = tmp_path / 'src.xml'
        spec.write_text("<source><host name='%s'/><host name='%s'/></source>"
                        % (cluster.addresses[0], cluster.addresses[1]))
        out = libvirtd.virsh('find-storage-pool-sources', 'gluster',
                             str(spec), timeout=30).stdout
        assert 'rep3' in sources_of(out), out
        libvirtd.virsh('pool-destroy', name)
        # and a stopped pool starts again while the host is still down
        libvirtd.virsh('pool-start', name, timeout=60)
        assert 'new.qcow2' in libvirtd.virsh('vol-list', name).stdout
    finally:
        cluster.start_node(1)
    assert sorted(g.listdir(directory)) == ['before.img', 'during.img',
                                            'new.img', 'new.qcow2']


# ---- backing chains ----------------------------------------------------------

@pytest.fixture
def cpool(libvirtd, cluster, gfapi_rep3, unique_name, tmp_path):
    p = GlusterPool(libvirtd, cluster, gfapi_rep3, unique_name('ch'), tmp_path)
    try:
        yield p
    finally:
        p.cleanup()


def test_backing_store_is_key(cpool):
    P = cpool.name
    cpool.virsh('vol-create-as', P, 'base.qcow2', '64M', '--format', 'qcow2')
    cpool.virsh('vol-create-as', P, 'mid.qcow2', '0', '--format', 'qcow2',
                '--backing-vol', 'base.qcow2', '--backing-vol-format', 'qcow2')
    cpool.virsh('vol-create-as', P, 'top.qcow2', '0', '--format', 'qcow2',
                '--backing-vol', cpool.uri('mid.qcow2'),
                '--backing-vol-format', 'qcow2')
    for refresh in (False, True):
        if refresh:
            cpool.refresh()
        mid = cpool.dumpxml('mid.qcow2')
        top = cpool.dumpxml('top.qcow2')
        assert mid['backing_path'] == cpool.uri('base.qcow2')
        assert mid['backing_format'] == 'qcow2'
        assert top['backing_path'] == cpool.uri('mid.qcow2')
        assert top['backing_format'] == 'qcow2'
        assert top['capacity'] == 64 * MiB
        v = cpool.pool().storageVolLookupByName('mid.qcow2')
        assert cpool.libvirtd.conn().storageVolLookupByKey(
            top['backing_path']).name() == 'mid.qcow2'
        assert v.key() == top['backing_path']


def test_backing_loop_refresh(cpool, libvirtd):
    """Images whose chains loop (crafted: a->b->a, s->s): refresh works,
    each shows its first backing file, nothing follows the loop forever,
    and an overlay on them is refused."""
    t = secrets.token_hex(3)
    a, b, s = 'la-%s.qcow2' % t, 'lb-%s.qcow2' % t, 'ls-%s.qcow2' % t
    g = cpool.gfapi
    g.put(cpool.path(a), qcow2_header(1 * MiB, backing=b, file_len=4096))
    g.put(cpool.path(b), qcow2_header(1 * MiB, backing=a, file_len=4096))
    g.put(cpool.path(s), qcow2_header(1 * MiB, backing=s, file_len=4096))
    pid = libvirtd.pid
    with Timer() as tm:
        cpool.virsh('pool-refresh', cpool.name, timeout=30)
        da = cpool.dumpxml(a)
        ds = cpool.dumpxml(s)
    assert tm.elapsed < 5, tm.elapsed
    assert da['format'] == 'qcow2' and da['backing_path'] == cpool.uri(b)
    assert ds['format'] == 'qcow2' and ds['backing_path'] == cpool.uri(s)
    assert cpool.dumpxml(b)['backing_path'] == cpool.uri(a)
    r = cpool.virsh('vol-create-as', cpool.name, 'o.qcow2', '0', '--format',
                    'qcow2', '--backing-vol', a, check=False, timeout=30)
    assert r.returncode == 1 and 'loops back' in r.stderr, r.stderr
    # the CLI lists them too, promptly
    out = cpool.cli('vol-list', '--details', check=0, timeout=30).stdout
    assert a in out and s in out
    cpool.refresh()
    assert libvirtd.alive() and libvirtd.pid == pid
    assert 'o.qcow2' not in cpool.files()
