#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The main job on an embedded default, end to end, then tear down:

a throwaway 3-node GlusterFS cluster on loopback addresses, a private
libvirtd that loads our module, examples/gluster-pool.xml defined against
the cluster, raw and qcow2 volumes created through virsh, listed, and the
domain disk XML QEMU needs printed. Nothing of the system's is touched.
"""

import os
import shlex
import subprocess
import sys
import tempfile

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, 'tests'))

import testbed  # noqa: E402
from testbed.pools import pool_xml  # noqa: E402

BUILD = os.environ.get('GFPOOL_BUILD_DIR', os.path.join(TOP, 'build'))
MODULE = os.path.join(BUILD, 'src', 'guard', 'libvirt_storage_backend_gluster.so')
GFPOOL = os.path.join(BUILD, 'src', 'tools', 'gfpool')


def show(title):
    print('\n=== %s' % title, flush=True)


def virsh(d, *args):
    print('$ virsh %s' % ' '.join(shlex.quote(a) for a in args), flush=True)
    r = d.virsh(*args, check=False)
    sys.stdout.write(r.stdout)
    if r.returncode != 0:
        sys.stdout.write(r.stderr)
        raise SystemExit('demo: virsh %s failed' % args[0])
    return r.stdout


def gfpool(*args):
    print('$ gfpool %s' % ' '.join(shlex.quote(a) for a in args), flush=True)
    r = subprocess.run([GFPOOL] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True)
    sys.stdout.write(r.stdout)
    sys.stdout.write(r.stderr)
    if r.returncode != 0:
        raise SystemExit('demo: gfpool %s failed' % args[0])
    return r.stdout


def main():
    work = tempfile.mkdtemp(prefix='gfpdemo')
    show('starting a throwaway GlusterFS cluster (3 glusterd on 127.x addresses)')
    cluster = testbed.Cluster()
    daemon = None
    try:
        cluster.start()
        print('nodes: %s; volumes: rep3 (replica 3), single' % ', '.join(cluster.addresses))

        show('starting a private libvirtd with LIBVIRT_STORAGE_BACKEND_DIR -> our module')
        daemon = testbed.Libvirtd(os.path.join(work, 'libvirtd'),
                                  os.path.join(work, 'libvirtd', 'backends'),
                                  module=MODULE)
        daemon.start()
        loaded = os.path.realpath(MODULE) in daemon.maps()
        print('libvirtd pid %d, %s' % (daemon.pid, 'our module is mapped' if loaded
                                        else 'OUR MODULE IS NOT MAPPED'))

        show('examples/gluster-pool.xml with the cluster\'s hosts')
        xml = pool_xml('gluster-pool', cluster.addresses, volume='rep3', directory='/images')
        path = os.path.join(work, 'gluster-pool.xml')
        with open(path, 'w') as f:
            f.write(xml)
        print(xml)
        virsh(daemon, 'pool-define', path)
        virsh(daemon, 'pool-build', 'gluster-pool')
        virsh(daemon, 'pool-start', 'gluster-pool')

        show('creating volumes over gfapi (no FUSE, no qemu-img)')
        virsh(daemon, 'vol-create-as', 'gluster-pool', 'base.img', '1G', '--format', 'raw')
        virsh(daemon, 'vol-create-as', 'gluster-pool', 'vm1.qcow2', '10G', '--format', 'qcow2')
        virsh(daemon, 'vol-create-as', 'gluster-pool', 'vm2.qcow2', '1G', '--format', 'qcow2',
              '--backing-vol', 'base.img', '--backing-vol-format', 'raw')
        virsh(daemon, 'pool-refresh', 'gluster-pool')
        virsh(daemon, 'vol-list', '--details', 'gluster-pool')
        virsh(daemon, 'vol-dumpxml', '--pool', 'gluster-pool', 'vm2.qcow2')

        show('the domain disk XML that makes QEMU open vm2.qcow2 with its gluster driver')
        gfpool('disk-xml', '--pool-xml', path, 'vm2.qcow2')
        gfpool('disk-xml', '--pool-xml', path, '--format', 'uri', 'vm1.qcow2')

        show('the same pool without libvirtd: the gfpool CLI')
        gfpool('vol-list', '--details', '--pool-xml', path)

        show('cleaning up')
        for v in ('vm2.qcow2', 'vm1.qcow2', 'base.img'):
            virsh(daemon, 'vol-delete', '--pool', 'gluster-pool', v)
        virsh(daemon, 'pool-destroy', 'gluster-pool')
        virsh(daemon, 'pool-delete', 'gluster-pool')
        virsh(daemon, 'pool-undefine', 'gluster-pool')
        print('\ndemo: OK')
    finally:
        if daemon:
            daemon.stop()
        cluster.stop()
        subprocess.run(['rm', '-rf', work])


if __name__ == '__main__':
    main()
