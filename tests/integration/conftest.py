# SPDX-License-Identifier: LGPL-2.1-or-later
"""pytest wiring for gfpool integration tests.

Session fixtures
    cluster       one private 3-node GlusterFS cluster per run (volumes
                  `rep3`, `single`); or reuse a running one from
                  `python3 tests/testbed cluster-up DIR` with
                  GFPOOL_CLUSTER_DIR=DIR
                  (then it is not stopped at the end).
    libvirtd      private storage-only libvirtd whose
                  LIBVIRT_STORAGE_BACKEND_DIR holds our module
                  (GFPOOL_MODULE, default
                  <repo>/build/src/guard/libvirt_storage_backend_gluster.so)
                  plus Debian's other storage backends.
    gfapi_rep3, gfapi_single
                  shared testbed.gfapi_ctypes.Gfapi connections (never
                  glfs_fini'ed, see gfapi_ctypes.py).
    tls_cluster   a second, locked-down cluster (tests/testbed/tls.py:
                  TLS on management and I/O, privileged ports only),
                  started only by the tests that ask for it; or one from
                  `python3 tests/testbed tls-cluster-up DIR` with
                  GFPOOL_TLS_CLUSTER_DIR=DIR.
Function fixtures
    unique_name   unique_name('pool') -> 'pool-<test>-<n>-<rand>'
    make_libvirtd make_libvirtd(module=None, with_qemu=False, **kw) -> an
                  extra started Libvirtd stopped after the test.

Everything else the tests share is the testbed package (tests/testbed/,
see its __init__.py): test files import from it, never from this file.

When a fixture cannot start its servers the test is SKIPPED, unless
CI=true in the environment: then it FAILS with the reason and log tail.

A test that runs longer than GFPOOL_TEST_LIMIT_S (default 420 s; the
longest takes about 100 s) fails: a watchdog saves the thread stacks of
every private libvirtd it started (gdb) and kills them, so a client call
blocked in a stalled daemon returns and the run goes on.
"""

import os
import re
import signal
import sys
import threading

import pytest

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

import testbed  # noqa: E402
from testbed import (cleanup_libvirtd, make_unique_name, module_path,  # noqa: E402
                     running_libvirtds, start_libvirtd, unavailable)
from testbed.gfapi_ctypes import Gfapi  # noqa: E402


TEST_LIMIT_S = float(os.environ.get('GFPOOL_TEST_LIMIT_S', '420'))


def _daemon_stacks(d):
    """The frames that tell a stall (ours, gfapi's, libvirt's storage
    driver, lock waits) of every thread of `d`."""
    keep = re.compile(r'^Thread |gfpool|glfs|virStorage|pthread_(mutex_lock|rwlock)|__lll_lock')
    lines = [l for l in d.thread_stacks().splitlines() if keep.search(l)]
    return '\n' + '\n'.join(lines)[-12000:]


@pytest.fixture(autouse=True)
def _time_limit(request):
    """Fail a test that outlives TEST_LIMIT_S instead of hanging the run:
    a python3-libvirt call blocked in a stalled daemon cannot be
    interrupted (libvirt retries its poll on EINTR), so the daemons go."""
    expired = []

    def expire():
        for d in list(running_libvirtds):
            if d.pid:
                expired.append('%r: stacks %s' % (d, _daemon_stacks(d)))
                try:
                    os.kill(d.pid, signal.SIGKILL)
                except OSError:
                    pass
        expired.append('')

    timer = threading.Timer(TEST_LIMIT_S, expire)
    timer.daemon = True
    timer.start()
    yield
    timer.cancel()
    if expired:
        pytest.fail('the test ran longer than %.0f s; private libvirtds '
                    'killed: %s' % (TEST_LIMIT_S, '; '.join(expired[:-1]) or
                                    'none running'), pytrace=False)


@pytest.fixture(autouse=True)
def _cluster_healed(request):
    """A test that stopped a node ends once the replicated volumes have
    healed (testbed.Cluster.wait_healed), with every node running again."""
    yield
    if 'cluster' not in request.fixturenames:
        return
    c = request.getfixturevalue('cluster')
    if c.heal_pending:
        c.start_stopped_nodes()
        c.wait_healed()


@pytest.fixture(scope='session')
def cluster():
    reuse = os.environ.get('GFPOOL_CLUSTER_DIR')
    if reuse:
        try:
            c = testbed.Cluster.from_state(reuse)
        except Exception as e:
            unavailable('GFPOOL_CLUSTER_DIR=%s unusable: %s' % (reuse, e))
        down = [i for i in range(1, c.nodes + 1) if not c.node_running(i)]
        if down:
            unavailable('cluster in %s: nodes %s not running' % (reuse, down))
        yield c
        return
    c = testbed.Cluster()
    try:
        c.start()
    except Exception as e:
        tails = ''
        if c.base_dir:
            for i in range(1, c.nodes + 1):
                tails += '\n--- glusterd %d ---\n%s' % (
                    i, testbed.tail(c.logfile(i), 15))
        try:
            c.stop()
        except Exception:
            pass
        unavailable('cannot start GlusterFS test cluster: %s%s' % (e, tails))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope='session')
def tls_cluster():
    from testbed.tls import TlsCluster
    reuse = os.environ.get('GFPOOL_TLS_CLUSTER_DIR')
    if reuse:
        try:
            c = TlsCluster.from_state(reuse)
        except Exception as e:
            unavailable('GFPOOL_TLS_CLUSTER_DIR=%s unusable: %s' % (reuse, e))
        yield c
        return
    c = TlsCluster()
    try:
        c.start()
    except Exception as e:
        try:
            c.stop()
        except Exception:
            pass
        unavailable('cannot start the locked-down GlusterFS test cluster: %s' % e)
    try:
        yield c
    finally:
        c.stop()


def _gfapi(cluster, vol):
    try:
        return Gfapi.shared(vol, cluster.volume_hosts(vol),
                            logfile=os.path.join(cluster.base_dir,
                                                 'gfapi-%s.log' % vol))
    except Exception as e:
        unavailable('gfapi connection to %s failed: %s' % (vol, e))


@pytest.fixture(scope='session')
def gfapi_rep3(cluster):
    return _gfapi(cluster, 'rep3')


@pytest.fixture(scope='session')
def gfapi_single(cluster):
    return _gfapi(cluster, 'single')


@pytest.fixture(scope='session')
def libvirtd():
    d = start_libvirtd(module_path())
    try:
        yield d
    finally:
        cleanup_libvirtd(d)


@pytest.fixture
def make_libvirtd():
    started = []

    def make(module=None, with_qemu=False, **kw):
        d = start_libvirtd(module or module_path(), with_qemu=with_qemu,
                            **kw)
        started.append(d)
        return d

    yield make
    for d in reversed(started):
        cleanup_libvirtd(d)


@pytest.fixture
def unique_name(request):
    def make(prefix='t'):
        return make_unique_name(prefix, request.node.name)
    return make
