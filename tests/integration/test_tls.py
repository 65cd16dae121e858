# SPDX-License-Identifier: LGPL-2.1-or-later
"""gfpool on a locked-down cluster (tests/testbed/tls.py): TLS on
management and on the I/O path, privileged source ports only, clients
checked by their certificate's CN. Everything that talks gfapi runs in the
cluster's mount namespace, where GlusterFS's certificate directory
(/usr/lib/ssl on Debian 12, /etc/ssl on Debian 13) and
/var/lib/glusterd/secure-access are the test's own: a libvirtd with the
pool module and the storage-file module, the CLI, nbdkit with the plugin,
qemu-img, and QEMU both as root (gluster://) and as libvirt-qemu, which
can read no key and gets its disk through NBD."""

import errno
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET

import pytest

from testbed import (bootsector, cleanup_libvirtd, guests, make_unique_name,
                     module_path, start_libvirtd, tls, unavailable)
from testbed.pools import GFPOOL_CLI, GlusterPool, pool_xml
from testbed.tls import QEMU_UID, TlsLibvirtd
from test_guest import running_guest
from test_nbd import PLUGIN

CONNECT_DEADLINE_S = 7.0


# ---------------------------------------------------------------------------
# fixtures and helpers
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def tls_libvirtd(tls_cluster):
    """A libvirtd that is the hypervisor of the locked-down cluster: its
    namespace has the hypervisor's certificate and secure-access; QEMU as
    root."""
    d = start_libvirtd(module_path(), with_qemu=True, cls=TlsLibvirtd,
                        tls_cluster=tls_cluster)
    try:
        yield d
    finally:
        cleanup_libvirtd(d)


@pytest.fixture(scope='module')
def tls_gfapi(tls_cluster):
    g = tls_cluster.gfapi('rep3')
    try:
        yield g
    finally:
        g.close()


@pytest.fixture(scope='module')
def tls_work(tmp_path_factory):
    return tmp_path_factory.mktemp('tls')


def cli(cluster, *args, identity='client', uid=None, check=0, timeout=60,
        secure_access=True):
    """The gfpool CLI in the cluster's namespace, as `identity`."""
    p = cluster.ns_run([GFPOOL_CLI] + [str(a) for a in args], identity=identity,
                       uid=uid, timeout=timeout, secure_access=secure_access)
    if check is not None:
        assert p.returncode == check, 'gfpool %s: rc=%d\n%s%s' % (
            ' '.join(map(str, args)), p.returncode, p.stdout, p.stderr)
    return p


def _connections(pid, hosts):
    """[(local port, (remote host, remote port))] of the established TCP
    connections process `pid` holds to `hosts`."""
    out = subprocess.run(['ss', '-Htnp', 'state', 'established'],
                         stdout=subprocess.PIPE, universal_newlines=True,
                         check=True).stdout
    conns = []
    for line in out.splitlines():
        fields = line.split()
        host, _, port = fields[3].rpartition(':')
        if re.search(r'pid=%d,' % pid, line) and host in hosts:
            conns.append((int(fields[2].rpartition(':')[2]), (host, int(port))))
    return sorted(conns)


def _brick_ports(cluster, volume):
    return {(h, int(st[1])) for (h, p), st in cluster.volume_status(volume).items()
            if p.startswith('/') and st[1].isdigit()}


def assert_privileged_tls_client(cluster, pid, volume='rep3'):
    """`pid` holds a gfapi client of `volume` whose brick connections all
    come from privileged ports (the bricks refuse others)."""
    hosts = [h for h, _ in cluster.volume_hosts(volume)]
    bricks = _brick_ports(cluster, volume)
    conns = [(local, peer) for local, peer in _connections(pid, hosts) if peer in bricks]
    assert sorted({peer for _, peer in conns}) == sorted(bricks), conns
    assert all(local < 1024 for local, _ in conns), conns


class NsNbdkit:
    """nbdkit with the plugin, as root in the cluster's namespace, on a
    unix socket outside it that QEMU (libvirt-qemu) may open."""

    def __init__(self, cluster, sock, pool_xml_path, *params):
        self.sock = sock
        self.log = sock + '.log'
        self.proc = subprocess.Popen(
            cluster.ns_cmd(['nbdkit', '-f', '-U', sock, PLUGIN,
                            'pool-xml=' + pool_xml_path] + list(params)),
            stdout=open(self.log, 'w'), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not os.path.exists(sock) and self.proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        if not os.path.exists(sock):
            self.stop()
            raise AssertionError('nbdkit did not start:\n' + self.output())
        os.chown(sock, 0, QEMU_UID)
        os.chmod(sock, 0o660)

    def uri(self, export):
        return 'nbd+unix:///%s?socket=%s' % (export, self.sock)

    def output(self):
        with open(self.log) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def sockdir():
    """A directory QEMU as libvirt-qemu can reach (pytest's are root's 0700)."""
    d = tempfile.mkdtemp(prefix='gfpool-tls-', dir='/tmp')
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def run(*cmd, timeout=120):
    return subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout)


# ---------------------------------------------------------------------------
# the cluster is what it claims
# ---------------------------------------------------------------------------
def test_cluster_is_locked_down(tls_cluster):
    """Management TLS on every node (secure-access, glusterd's listener),
    rep3 with TLS both ways, auth.ssl-allow naming the nodes' and the
    hypervisor's certificates, insecure ports refused; none of it touches
    the machine's own files."""
    c = tls_cluster
    info = c.cli('volume', 'info', 'rep3').stdout
    for k, v in tls.lockdown_options(c.allowed_cns()).items():
        assert '%s: %s' % (k, v) in info, (k, info)
    p = c.ns_run(['cat', tls.SECURE_ACCESS], check=True)
    assert 'ssl-cert-depth' in p.stdout
    assert not os.path.exists(tls.SECURE_ACCESS) or \
        not os.path.samefile(tls.SECURE_ACCESS,
                             os.path.join(c.glusterd_dir, 'secure-access'))
    assert not os.path.exists(os.path.join(tls.SSL_DIR, 'glusterfs.pem'))
    for i in range(1, c.nodes + 1):
        with open(c.logfile(i)) as f:
            assert 'SSL support for MGMT is ENABLED' in f.read()
    # the self-heal daemons (node certificates) are clients the bricks accept
    status = c.volume_status('rep3')
    assert all(st[0] for st in status.values()), status


# ---------------------------------------------------------------------------
# everything works on it
# ---------------------------------------------------------------------------
def test_pool_verbs(tls_cluster, tls_libvirtd, tls_gfapi, tls_work, unique_name):
    """A persistent pool in the private libvirtd: define and start, refresh,
    vol-create-as raw and qcow2, vol-upload and vol-download, vol-clone;
    the daemon's connection to the bricks comes from privileged ports."""
    c, d = tls_cluster, tls_libvirtd
    name = unique_name('tlspool')
    hosts = [h for h, _ in c.volume_hosts('rep3')]
    tls_gfapi.mkdir('/' + name)
    path = str(tls_work / (name + '.xml'))
    with open(path, 'w') as f:
        f.write(pool_xml(name, hosts, directory='/' + name))
    data = os.urandom(3 << 20)
    src = str(tls_work / 'up.bin')
    with open(src, 'wb') as f:
        f.write(data)
    try:
        d.virsh('pool-define', path)
        d.virsh('pool-start', name)
        d.virsh('pool-refresh', name)
        d.virsh('vol-create-as', name, 'r.raw', '8M', '--format', 'raw')
        d.virsh('vol-create-as', name, 'q.qcow2', '16M', '--format', 'qcow2')
        d.virsh('vol-upload', '--pool', name, 'r.raw', src)
        d.virsh('vol-clone', '--pool', name, 'r.raw', 'c.raw')
        down = str(tls_work / 'down.bin')
        d.virsh('vol-download', '--pool', name, 'c.raw', down)
        with open(down, 'rb') as f:
            assert f.read(len(data)) == data
        assert tls_gfapi.read('/%s/c.raw' % name, 0, len(data)) == data
        d.virsh('pool-refresh', name)
        vols = d.conn().storagePoolLookupByName(name).listAllVolumes()
        assert sorted(v.name() for v in vols) == ['c.raw', 'q.qcow2', 'r.raw']
        assert 'qcow2' in d.virsh('vol-dumpxml', '--pool', name, 'q.qcow2').stdout
        assert os.path.realpath(module_path()) in d.maps()
        assert_privileged_tls_client(c, d.pid)
    finally:
        d.virsh('pool-destroy', name, check=False)
        d.virsh('pool-undefine', name, check=False)
        tls_gfapi.rmtree('/' + name)


def test_cli_and_qemu_img(tls_cluster, tls_gfapi, tls_work, unique_name):
    """The CLI (as root, in the namespace) builds a pool directory, creates,
    uploads, downloads, lists and deletes volumes; qemu-img as root reads
    the volume through QEMU's gluster driver over TLS."""
    c = tls_cluster
    d = '/' + unique_name('tlscli')
    opts = []
    for h, port in c.volume_hosts('rep3'):
        opts += ['--host', '%s:%d' % (h, port)]
    opts += ['--volume', 'rep3', '--dir', d]
    data = os.urandom(1 << 20)
    src = str(tls_work / 'cli-up.bin')
    with open(src, 'wb') as f:
        f.write(data)
    try:
        cli(c, 'pool-build', *opts)
        cli(c, 'vol-create-as', *opts, 'a.qcow2', '8M', '--format', 'qcow2')
        cli(c, 'vol-create-as', *opts, 'b.raw', '1M')
        cli(c, 'vol-upload', *opts, 'b.raw', src)
        out = str(tls_work / 'cli-down.bin')
        cli(c, 'vol-download', *opts, 'b.raw', out)
        with open(out, 'rb') as f:
            assert f.read() == data
        listed = cli(c, 'vol-list', *opts).stdout
        assert 'a.qcow2' in listed and 'b.raw' in listed
        assert 'qcow2' in cli(c, 'vol-info', *opts, 'a.qcow2').stdout
        uri = cli(c, 'vol-path', *opts, 'a.qcow2').stdout.strip()
        p = c.ns_run(['qemu-img', 'info', '--output=json', uri], timeout=120)
        assert p.returncode == 0 and '"qcow2"' in p.stdout, p.stderr
        cli(c, 'vol-delete', *opts, 'a.qcow2')
        cli(c, 'vol-delete', *opts, 'b.raw')
        cli(c, 'pool-delete', *opts)
    finally:
        tls_gfapi.rmtree(d)


def test_nbd_plugin(tls_cluster, tls_gfapi, tls_work, sockdir, unique_name):
    """nbdkit with the plugin as root in the namespace serves the pool's
    volumes; qemu-img and qemu-io outside the namespace (no key, no TLS)
    write and read through nbd+unix the bytes gfapi sees; nbdkit's brick
    connections come from privileged ports."""
    c = tls_cluster
    pool = GlusterPool(None, c, tls_gfapi, unique_name('tlsnbd'), tls_work)
    n = None
    try:
        cli(c, 'vol-create-as', '--pool-xml', pool.xml_path, 'r.raw', '4M')
        cli(c, 'vol-create-as', '--pool-xml', pool.xml_path, 'q.qcow2', '8M',
            '--format', 'qcow2')
        n = NsNbdkit(c, os.path.join(sockdir, 'nbd.sock'), pool.xml_path)
        data = os.urandom(2 << 20)
        src = str(tls_work / 'nbd-src.bin')
        with open(src, 'wb') as f:
            f.write(data)
        p = run('qemu-img', 'convert', '-n', '-f', 'raw', '-O', 'raw', src, n.uri('r.raw'))
        assert p.returncode == 0, p.stderr
        assert tls_gfapi.read(pool.path('r.raw'), 0, len(data)) == data
        p = run('qemu-io', '-f', 'qcow2', '-c', 'write -P 0x5a 1M 64k', '-c',
                'read -P 0x5a 1M 64k', n.uri('q.qcow2'))
        assert p.returncode == 0 and 'read 65536/65536' in p.stdout, p.stdout + p.stderr
        p = run('qemu-img', 'compare', '-f', 'raw', '-F', 'raw', src, n.uri('r.raw'))
        assert p.returncode in (0, 1) and 'Content mismatch' not in p.stdout, p.stdout
        assert_privileged_tls_client(c, n.proc.pid)
    finally:
        if n:
            n.stop()
        pool.cleanup()


# ---------------------------------------------------------------------------
# refusals are fast and say why
# ---------------------------------------------------------------------------
REFUSALS = {
    # identity, uid, management TLS: what the error must say
    'no certificate': ('nocert', None, True, "TLS: cannot read this host's certificate"),
    # the server's alert races its reset (TLS 1.3): either reason is named
    'another CA': ('stranger', None, True, "do not accept this host's certificate"),
    'CN not allowed': ('intruder', None, True, 'auth.ssl-allow does not name this host'),
    'no key (QEMU user)': ('client', QEMU_UID, True,
                           "TLS: cannot read this host's private key"),
    'non-root with the key': ('client-%d' % QEMU_UID, QEMU_UID, True,
                              'it does not run as root (uid %d)' % QEMU_UID),
    'no management TLS': ('client', None, False,
                          'needs /var/lib/glusterd/secure-access'),
}


@pytest.mark.parametrize('case', sorted(REFUSALS))
def test_refused_fast_and_clear(tls_cluster, case):
    """A client the locked-down volume must refuse fails within the connect
    deadline, with exit code 5 and an error naming TLS or the volume's
    permission, not "Transport endpoint is not connected"."""
    identity, uid, secure, expect = REFUSALS[case]
    t0 = time.monotonic()
    p = cli(tls_cluster, 'vol-list', '--volume', 'rep3',
            *sum((['--host', h] for h, _ in tls_cluster.volume_hosts('rep3')), []),
            identity=identity, uid=uid, check=None, secure_access=secure)
    elapsed = time.monotonic() - t0
    assert p.returncode == 5, p.stdout + p.stderr
    assert expect in p.stderr, p.stderr
    # the connect deadline, plus what a process start costs here
    assert elapsed < CONNECT_DEADLINE_S + 1, (elapsed, p.stderr)
    print('\nTLS refusal %s: %.2f s: %s' % (case, elapsed, p.stderr.strip()))


def test_pool_start_refused_says_why(tls_cluster, tls_work, unique_name):
    """A libvirtd whose certificate's CN the volume does not allow: pool-start
    fails fast with libvirt's "operation forbidden" and the reason; the
    daemon answers meanwhile."""
    c = tls_cluster
    d = start_libvirtd(module_path(), cls=TlsLibvirtd, tls_cluster=c, identity='intruder')
    try:
        name = unique_name('tlsno')
        path = str(tls_work / (name + '.xml'))
        with open(path, 'w') as f:
            f.write(pool_xml(name, [h for h, _ in c.volume_hosts('rep3')], directory='/'))
        d.virsh('pool-define', path)
        t0 = time.monotonic()
        r = d.virsh('pool-start', name, check=False)
        elapsed = time.monotonic() - t0
        assert r.returncode == 1, r.stdout
        assert 'operation forbidden' in r.stderr and 'auth.ssl-allow' in r.stderr, r.stderr
        assert elapsed < CONNECT_DEADLINE_S, elapsed
        # a second start meets the attempt gfapi keeps retrying: at once
        t0 = time.monotonic()
        r = d.virsh('pool-start', name, check=False)
        assert r.returncode == 1 and 'auth.ssl-allow' in r.stderr, r.stderr
        assert time.monotonic() - t0 < 2
        assert d.virsh('pool-list', '--all').returncode == 0
    finally:
        cleanup_libvirtd(d)


# ---------------------------------------------------------------------------
# guests
# ---------------------------------------------------------------------------
def _boot_chain(cluster, pool, work, message, layers):
    """boot.raw with the boot sector, then `layers` qcow2 overlays on it
    (CLI in the namespace); -> the top volume's name."""
    img = bootsector.write_image(str(work / 'boot.img'), message, ticks=True)
    cli(cluster, 'vol-create-as', '--pool-xml', pool.xml_path, 'boot.raw', '1M')
    cli(cluster, 'vol-upload', '--pool-xml', pool.xml_path, 'boot.raw', img)
    top, fmt = 'boot.raw', 'raw'
    for i in range(1, layers + 1):
        name = 'layer%d.qcow2' % i
        cli(cluster, 'vol-create-as', '--pool-xml', pool.xml_path, name, '1M',
            '--format', 'qcow2', '--backing-vol', top, '--backing-vol-format', fmt)
        top, fmt = name, 'qcow2'
    return top


def test_guest_on_qcow2_chain_through_gluster(tls_cluster, tls_libvirtd, tls_gfapi,
                                              tls_work, unique_name):
    """A guest (QEMU as root, its gluster driver over TLS) on a qcow2 chain
    of 2 overlays: libvirt finds the chain itself through our storage-file
    module (the disk XML leaves it out) and the guest boots."""
    c, d = tls_cluster, tls_libvirtd
    pool = GlusterPool(d, c, tls_gfapi, unique_name('tlsguest'), tls_work)
    message = 'GFPOOL-TLS-BOOT ' + pool.name
    try:
        top = _boot_chain(c, pool, tls_work, message, 2)
        disk = cli(c, 'disk-xml', '--pool-xml', pool.xml_path, top).stdout
        root = ET.fromstring(disk)
        for b in root.findall('backingStore'):
            root.remove(b)
        disk = ET.tostring(root, encoding='unicode')
        with running_guest(d, tls_work, 'tlsg', disk, message) as g:
            nodes = guests.query_block_gluster(g.query_block())
            assert len(nodes) == 3, nodes
            live = guests.domain_disks(g.dumpxml())[0]
            assert len(live['chain']) == 2, g.dumpxml()
            assert os.path.realpath(d.file_module) in d.maps()
            qpid = d.qemu_pid(g.name)
            assert_privileged_tls_client(c, qpid)
    finally:
        pool.cleanup()


@pytest.fixture(scope='module')
def tls_qemu_user_libvirtd(tls_cluster):
    """The hypervisor's libvirtd with QEMU as libvirt-qemu (64055), which
    cannot read the key, and without QEMU's gluster driver."""
    d = start_libvirtd(module_path(), with_qemu=True, cls=TlsLibvirtd,
                        tls_cluster=tls_cluster, qemu_user='libvirt-qemu',
                        qemu_hide_modules=('block-gluster.so',))
    try:
        yield d
    finally:
        cleanup_libvirtd(d)


def test_guest_without_key_through_nbd(tls_cluster, tls_qemu_user_libvirtd, tls_gfapi,
                                       tls_work, sockdir, unique_name):
    """QEMU's user can read no key: reading it fails, and qemu-img as that
    user over gluster:// fails with gfapi's TLS error. A guest whose QEMU
    runs as that user boots from a qcow2 chain through NBD: nbdkit, root in
    the namespace, holds the key and the one gfapi client."""
    c, d = tls_cluster, tls_qemu_user_libvirtd
    key = os.path.join(tls.SSL_DIR, 'glusterfs.key')
    p = c.ns_run(['cat', key], uid=QEMU_UID)
    assert p.returncode != 0 and 'Permission denied' in p.stderr, p.stdout + p.stderr
    pool = GlusterPool(None, c, tls_gfapi, unique_name('tlsnbdg'), tls_work)
    message = 'GFPOOL-TLS-NBD ' + pool.name
    n = None
    try:
        top = _boot_chain(c, pool, tls_work, message, 1)
        uri = cli(c, 'vol-path', '--pool-xml', pool.xml_path, 'boot.raw').stdout.strip()
        t0 = time.monotonic()
        p = c.ns_run(['qemu-img', 'info', uri], uid=QEMU_UID, timeout=60)
        assert p.returncode != 0, p.stdout
        assert 'could not load private key' in p.stderr, p.stderr
        print('\nqemu-img as %d over gluster://: %.2f s' % (QEMU_UID, time.monotonic() - t0))

        sock = os.path.join(sockdir, 'pool.sock')
        n = NsNbdkit(c, sock, pool.xml_path, 'export=boot.raw', 'export=' + top)
        disk = cli(c, 'disk-xml', '--pool-xml', pool.xml_path, '--nbd', sock, top).stdout
        hosts = [h for h, _ in c.volume_hosts('rep3')]
        with running_guest(d, tls_work, 'tlsn', disk, message) as g:
            qpid = d.qemu_pid(g.name)
            with open('/proc/%d/status' % qpid) as f:
                assert '\nUid:\t%d\t' % QEMU_UID in f.read()
            qb = g.query_block()
            assert '"nbd"' in qb.replace('\\"', '"') and 'gluster' not in qb, qb
            assert _connections(qpid, hosts) == []
            assert_privileged_tls_client(c, n.proc.pid)
    finally:
        if n:
            n.stop()
        pool.cleanup()


# ---------------------------------------------------------------------------
# the administrator locks a running cluster down
# ---------------------------------------------------------------------------
def test_running_pool_survives_lockdown(tls_cluster, tls_libvirtd, tmp_path):
    """Pools running on an open volume (TLS off on its I/O path, insecure
    ports allowed) go on working after the administrator locks it down
    (client.ssl, server.ssl, auth.ssl-allow, server.allow-insecure off,
    client.bind-insecure off) and restarts the volume: no pool-destroy or
    pool-start, the next pool-refresh works and lists what was there,
    volumes can be created, and the daemon's connections to the bricks now
    come from privileged ports. A guest started first after the lockdown
    has its chain checked by the storage-file module, whose cached
    connection is the pools' old one."""
    c, d = tls_cluster, tls_libvirtd
    vol = make_unique_name('open')[:40]
    c.create_volume(vol, nodes=range(1, c.nodes + 1), replica=c.nodes, locked=False)
    hosts = [h for h, _ in c.volume_hosts(vol)]
    # what the pools' connections go through: a client made before
    old = c.gfapi(vol)
    pools = {'whole-' + vol: '/', 'images-' + vol: '/images'}
    try:
        old.mkdir('/images')
        for name, directory in pools.items():
            path = str(tmp_path / (name + '.xml'))
            with open(path, 'w') as f:
                f.write(pool_xml(name, hosts, volume=vol, directory=directory))
            d.virsh('pool-create', path)
            d.virsh('vol-create-as', name, 'before.raw', '1M', '--format', 'raw')
            d.virsh('pool-refresh', name)
        images = 'images-' + vol
        message = 'GFPOOL-LOCKDOWN ' + vol
        img = bootsector.write_image(str(tmp_path / 'boot.img'), message, ticks=True)
        d.virsh('vol-create-as', images, 'boot.raw', '1M', '--format', 'raw')
        d.virsh('vol-upload', '--pool', images, 'boot.raw', img)
        d.virsh('vol-create-as', images, 'top.qcow2', '1M', '--format', 'qcow2',
                '--backing-vol', 'boot.raw', '--backing-vol-format', 'raw')
        disk = ET.fromstring(cli(c, 'disk-xml', '--pool-xml', str(tmp_path / (images + '.xml')),
                                 'top.qcow2').stdout)
        for b in disk.findall('backingStore'):
            disk.remove(b)

        c.lock_down(vol)

        # The mechanism: gfapi gave the old client the new volfile as an
        # in-place reconfigure, which its transports never take: they
        # still talk plain from unprivileged ports, the bricks refuse them
        # for good. Every call fails with ENOTCONN, but the root's failed
        # lookup is hidden: "/" stats as mode 0 and opendir says ENOTDIR
        # ("cannot open pool directory '/': Not a directory").
        size = -old.get_volfile(0)[0]
        volfile = old.get_volfile(size)[1]
        assert b'transport.socket.ssl-enabled on' in volfile
        assert b'client-bind-insecure off' in volfile
        with pytest.raises(OSError) as e:
            old.stat('/.')
        assert e.value.errno == errno.ENOTCONN
        assert old.stat('/').mode == 0

        with running_guest(d, tmp_path, 'lockg', ET.tostring(disk, encoding='unicode'),
                           message) as g:
            assert len(guests.domain_disks(g.dumpxml())[0]['chain']) == 1, g.dumpxml()

        for name in pools:
            r = d.virsh('pool-refresh', name, check=False)
            assert r.returncode == 0, r.stderr + d.log_tail(20)
            assert d.conn().storagePoolLookupByName(name).isActive()
            d.virsh('vol-create-as', name, 'after.qcow2', '1M', '--format', 'qcow2')
            assert sorted(d.conn().storagePoolLookupByName(name).listVolumes()) == sorted(
                ['after.qcow2', 'before.raw'] +
                (['images'] if pools[name] == '/' else ['boot.raw', 'top.qcow2']))
        assert_privileged_tls_client(c, d.pid, vol)
    finally:
        old.close()
        for name in pools:
            d.virsh('pool-destroy', name, check=False)
        c.cli('volume', 'stop', vol, 'force', check=False)
        c.cli('volume', 'delete', vol, check=False)


def test_running_pool_survives_management_tls(tls_work, unique_name):
    """Management TLS switched on under a running pool: secure-access
    created, every glusterd restarted with its bricks (new ports, found
    through glusterd over TLS only). The pool's client, made without
    secure-access, talks plain to glusterd and cannot find the bricks; the
    next refresh takes a fresh client and works, no pool-destroy/start.
    A cluster of its own (one node, started open): switching management
    TLS restarts every glusterd, which the shared cluster's tests would
    not live through."""
    c = tls.TlsCluster(nodes=1, volumes=(), secure_management=False)
    d = None
    try:
        try:
            c.start()
        except Exception as e:
            unavailable('cannot start a one-node TLS cluster: %s' % e)
        c.create_volume('open', nodes=[1], locked=False)
        d = start_libvirtd(module_path(), cls=TlsLibvirtd, tls_cluster=c)
        name = unique_name('mgmt')
        path = str(tls_work / (name + '.xml'))
        with open(path, 'w') as f:
            f.write(pool_xml(name, [h for h, _ in c.volume_hosts('open')], volume='open',
                             directory='/'))
        d.virsh('pool-create', path)
        d.virsh('vol-create-as', name, 'before.raw', '1M')

        c.switch_management_tls(True)
        assert 'SSL support for MGMT is ENABLED' in open(c.logfile(1)).read()
        r = d.virsh('pool-refresh', name, check=False)
        assert r.returncode == 0, r.stderr + d.log_tail(20)
        d.virsh('vol-create-as', name, 'after.raw', '1M')
        assert sorted(d.conn().storagePoolLookupByName(name).listVolumes()) == \
            ['after.raw', 'before.raw']

        # and the I/O path after it, as on the shared cluster
        c.lock_down('open')
        r = d.virsh('pool-refresh', name, check=False)
        assert r.returncode == 0, r.stderr + d.log_tail(20)
        assert_privileged_tls_client(c, d.pid, 'open')
    finally:
        if d:
            cleanup_libvirtd(d)
        c.stop()
