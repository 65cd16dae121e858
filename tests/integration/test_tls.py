"""gfpool on a locked-down cluster (tests/testbed_tls.py): TLS on
management and on the I/O path, privileged source ports only, clients
checked by their certificate's CN. Everything that talks gfapi runs in the
cluster's mount namespace, where /usr/lib/ssl/glusterfs.* and
/var/lib/glusterd/secure-access are the test's own."""

import errno
import os
import re
import subprocess
import time

import pytest

from conftest import _cleanup_libvirtd, _start_libvirtd, make_unique_name, module_path
from helpers import pool_xml
from testbed_tls import TlsLibvirtd


@pytest.fixture(scope='module')
def tls_libvirtd(tls_cluster):
    """A libvirtd that is the hypervisor of the locked-down cluster: its
    namespace has the hypervisor's certificate and secure-access; QEMU as
    root."""
    d = _start_libvirtd(module_path(), with_qemu=True, cls=TlsLibvirtd,
                        tls_cluster=tls_cluster)
    try:
        yield d
    finally:
        _cleanup_libvirtd(d)


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


def test_running_pool_survives_lockdown(tls_cluster, tls_libvirtd, tmp_path):
    """Pools running on an open volume (TLS off on its I/O path, insecure
    ports allowed) go on working after the administrator locks it down
    (client.ssl, server.ssl, auth.ssl-allow, server.allow-insecure off,
    client.bind-insecure off) and restarts the volume: no pool-destroy or
    pool-start, the next pool-refresh works and lists what was there,
    volumes can be created, and the daemon's connections to the bricks now
    come from privileged ports."""
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

        for name in pools:
            r = d.virsh('pool-refresh', name, check=False)
            assert r.returncode == 0, r.stderr + d.log_tail(20)
            assert d.conn().storagePoolLookupByName(name).isActive()
            d.virsh('vol-create-as', name, 'after.qcow2', '1M', '--format', 'qcow2')
            assert sorted(d.conn().storagePoolLookupByName(name).listVolumes()) == \
                ['after.qcow2', 'before.raw'] + (['images'] if pools[name] == '/' else [])
        bricks = _brick_ports(c, vol)
        conns = [(local, peer) for local, peer in _connections(d.pid, hosts)
                 if peer in bricks]
        # the old connections are gone (their bricks refused them for good)
        assert sorted({peer for _, peer in conns}) == sorted(bricks), conns
        assert all(local < 1024 for local, _ in conns), conns
    finally:
        old.close()
        for name in pools:
            d.virsh('pool-destroy', name, check=False)
        c.cli('volume', 'stop', vol, 'force', check=False)
        c.cli('volume', 'delete', vol, check=False)
