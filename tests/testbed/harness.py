# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the pytest suites share besides their fixtures
(tests/integration/conftest.py builds its fixtures on these): skip or
fail when a server cannot start, names unique across runs, and a private
libvirtd started and removed for a test."""

import itertools
import os
import re
import secrets
import shutil
import tempfile

from .libvirtd import Libvirtd

# Private libvirtds start_libvirtd started and cleanup_libvirtd has not
# removed yet: conftest's time limit kills these when a test overruns.
running_libvirtds = []

_counter = itertools.count(1)


def unavailable(reason):
    """Skip, or fail when CI=true."""
    import pytest
    if os.environ.get('CI') == 'true':
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def make_unique_name(prefix='t', test=None):
    """A name unique in this run and across runs: [a-z0-9-], <= 60 chars."""
    base = prefix
    if test:
        t = re.sub(r'[^a-zA-Z0-9]+', '-', test).strip('-').lower()
        base = '%s-%s' % (prefix, t[-30:].strip('-'))
    return '%s-%d-%s' % (base, next(_counter), secrets.token_hex(3))


def work_root():
    """Where private daemons keep their state: GFPOOL_TEST_TMP, or /tmp."""
    return os.environ.get('GFPOOL_TEST_TMP') or '/tmp'


def start_libvirtd(module, with_qemu=False, cls=None, **kw):
    """A started Libvirtd (or `cls`, a subclass) with `module` as its
    gluster storage backend, in a fresh directory under work_root(); the
    test is unavailable() when it cannot start.  Give it back with
    cleanup_libvirtd()."""
    if not module or not os.path.exists(module):
        unavailable('storage backend module not built: %s (set '
                    'GFPOOL_MODULE)' % module)
    work = tempfile.mkdtemp(prefix='gfpl', dir=work_root())
    # GFPOOL_LIBVIRTD_ENV="K=V K2=V2": extra environment for every private
    # libvirtd (scripts/sanitize-run.sh preloads ASan/UBSan this way).
    extra = dict(kw.pop('extra_env', None) or {})
    for item in os.environ.get('GFPOOL_LIBVIRTD_ENV', '').split():
        k, _, v = item.partition('=')
        extra[k] = v
    d = (cls or Libvirtd)(work, os.path.join(work, 'backends'),
                          with_qemu=with_qemu, module=module,
                          extra_env=extra, **kw)
    running_libvirtds.append(d)
    try:
        d.start()
    except Exception as e:
        try:
            d.stop()
        except Exception:
            pass
        running_libvirtds.remove(d)
        unavailable('cannot start private libvirtd with %s: %s'
                    % (module, e))
    return d


def cleanup_libvirtd(d):
    """Stop a daemon from start_libvirtd() and remove its directory
    (kept with GFPOOL_KEEP_LIBVIRTD=1)."""
    d.stop()
    if d in running_libvirtds:
        running_libvirtds.remove(d)
    if not os.environ.get('GFPOOL_KEEP_LIBVIRTD'):
        shutil.rmtree(d.workdir, ignore_errors=True)
