# SPDX-License-Identifier: LGPL-2.1-or-later
"""gfpool's test bed: real servers, started privately for the tests and the
benchmarks, never mocks.  Run it with Debian's /usr/bin/python3
(python3-libvirt lives there); put tests/ on sys.path and `import testbed`.

Which file starts what:

    cluster.py      Cluster: N glusterd on 127.A.B.1..N, volumes rep3 and
                    single, stopping and restarting nodes, waiting for heals
    tls.py          TlsCluster, TlsLibvirtd: the same locked down (TLS on
                    management and I/O, privileged ports, CNs checked)
    libvirtd.py     Libvirtd: libvirtd in a private mount namespace with our
                    modules in its backend dirs (make_backend_dir,
                    make_file_dir)
    harness.py      for pytest: start_libvirtd/cleanup_libvirtd, unavailable
                    (skip, or fail with CI=true), make_unique_name
    process.py      pids, mount namespaces, kills, the cleanup registry and
                    the reaper that cleans up after a killed test process
    paths.py        where things are: REPO, BUILD, DEFAULT_MODULE, Debian's
                    libvirt and QEMU module dirs, the GlusterFS binaries
    __main__.py     `python3 tests/testbed cluster-up DIR` and friends

and what the tests use around those servers (imported by name:
`from testbed import guests`, `from testbed.pools import GlusterPool`):

    pools.py        pool XML, GlusterPool, qcow2 headers, the gfpool CLI,
                    qemu-img, leftover checks
    guests.py       domain XML for test guests, serial-log waits, what a
                    <disk> or QEMU's query-block says
    bootsector.py   the hand-made boot sector the guests run
    gfapi_ctypes.py Gfapi: libgfapi through ctypes, to look at volumes
                    without the code under test (runs in helper processes
                    from this directory too: keep it free of package imports)
    nbd_client.py   a minimal NBD client program, playing a QEMU
"""

from .cluster import Cluster
from .harness import (cleanup_libvirtd, make_unique_name, running_libvirtds,
                      start_libvirtd, unavailable, work_root)
from .libvirtd import Libvirtd, make_backend_dir, make_file_dir
from .paths import (BUILD, DEFAULT_MODULE, DISTRO_BACKEND_DIR,
                    DISTRO_DRIVER_DIR, DISTRO_FILE_DIR, GLUSTER,
                    GLUSTER_LOG_DIR, GLUSTER_SOCK_DIR, GLUSTERD, GLUSTERD_PORT,
                    HERE, LIBVIRT_LIBDIR, PYTHON, QEMU_MODULE_DIR, RELEASE,
                    REPO, TESTS, module_path)
from .process import (TestbedError, kill_pids, pid_alive, proc_cmdline,
                      read_pidfile, tail)

__all__ = [
    'BUILD', 'Cluster', 'DEFAULT_MODULE', 'DISTRO_BACKEND_DIR',
    'DISTRO_DRIVER_DIR', 'DISTRO_FILE_DIR', 'GLUSTER', 'GLUSTERD',
    'GLUSTERD_PORT', 'GLUSTER_LOG_DIR', 'GLUSTER_SOCK_DIR', 'HERE',
    'LIBVIRT_LIBDIR', 'Libvirtd', 'PYTHON', 'QEMU_MODULE_DIR', 'RELEASE',
    'REPO', 'TESTS', 'TestbedError', 'cleanup_libvirtd', 'kill_pids',
    'make_backend_dir', 'make_file_dir', 'make_unique_name', 'module_path',
    'pid_alive', 'proc_cmdline', 'read_pidfile', 'running_libvirtds',
    'start_libvirtd', 'tail', 'unavailable', 'work_root',
]
