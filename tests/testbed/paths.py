# SPDX-License-Identifier: LGPL-2.1-or-later
"""Where things are: this checkout, its build, and what the Debian it runs
on installed (GlusterFS binaries, libvirt's module directories, QEMU's
modules)."""

import os
import shutil

# the package's own directory: gfapi_ctypes.py and nbd_client.py live here
# and run from here in helper processes (sys.path.insert(0, HERE))
HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
REPO = os.path.dirname(TESTS)
PYTHON = '/usr/bin/python3'
GLUSTERD = shutil.which('glusterd') or '/usr/sbin/glusterd'
GLUSTER = shutil.which('gluster') or '/usr/sbin/gluster'
GLUSTER_SOCK_DIR = '/var/run/gluster'
GLUSTER_LOG_DIR = '/var/log/glusterfs'
GLUSTERD_PORT = 24007

LIBVIRT_LIBDIR = '/usr/lib/x86_64-linux-gnu/libvirt'
QEMU_MODULE_DIR = '/usr/lib/x86_64-linux-gnu/qemu'


def _release_label():
    """'debian12', 'debian13', ...: which Debian this runs on (natively
    or in a root from scripts/release-root.sh)."""
    try:
        with open('/etc/os-release') as f:
            kv = dict(l.rstrip('\n').split('=', 1) for l in f if '=' in l)
        return 'debian' + kv.get('VERSION_ID', '?').strip('"')
    except OSError:
        return 'unknown'


RELEASE = _release_label()
DISTRO_BACKEND_DIR = LIBVIRT_LIBDIR + '/storage-backend'
DISTRO_FILE_DIR = LIBVIRT_LIBDIR + '/storage-file'
DISTRO_DRIVER_DIR = LIBVIRT_LIBDIR + '/connection-driver'
# scripts/run-tests.sh builds each Debian release into its own directory
BUILD = os.environ.get('GFPOOL_BUILD_DIR') or os.path.join(REPO, 'build')
DEFAULT_MODULE = os.path.join(
    BUILD, 'src', 'guard', 'libvirt_storage_backend_gluster.so')


def module_path():
    """The storage backend module under test: GFPOOL_MODULE, or this
    build's."""
    return os.environ.get('GFPOOL_MODULE') or DEFAULT_MODULE
