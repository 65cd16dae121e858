# SPDX-License-Identifier: LGPL-2.1-or-later
"""gfpool's Debian packages installed as a user would: built with
scripts/build-debs.sh (dpkg-buildpackage + lintian) for the release this
suite runs on, installed with apt-get into a fresh copy of a user's root of
that release (scripts/release-root.sh CODENAME user: what
`install-deps.sh --runtime` installs and Debian's gluster modules, no build
or test package; made with mmdebstrap once and cached), where
tests/packages/check-install.sh checks that the root and what apt adds for
the three .debs hold nothing of the build or test stack, the diversions, a libvirtd with
the default module directories running our modules against the test
cluster, `gfpool --help` and `man gfpool`, then the purge that gives
Debian's modules back byte for byte."""

import os
import shutil
import subprocess
import tempfile

import pytest

from testbed import BUILD, REPO, make_unique_name, unavailable
from testbed.pools import pool_xml


def _codename():
    with open('/etc/os-release') as f:
        for line in f:
            if line.startswith('VERSION_CODENAME='):
                return line.split('=', 1)[1].strip().strip('"')
    return None


def _run(cmd, timeout, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=timeout, **kw)


@pytest.fixture(scope='module')
def debs():
    out = os.path.join(BUILD, 'debs')
    env = dict(os.environ, DEB_BUILD_OPTIONS='nocheck')
    p = _run([os.path.join(REPO, 'scripts', 'build-debs.sh'), out], 1800, env=env)
    assert p.returncode == 0, 'build-debs.sh failed:\n' + p.stdout[-6000:]
    names = sorted(f.split('_')[0] for f in os.listdir(out) if f.endswith('.deb'))
    assert [n for n in names if not n.endswith('-dbgsym')] == \
        ['gfpool', 'libvirt-daemon-driver-storage-gfpool', 'nbdkit-plugin-gfpool'], names
    return out


@pytest.fixture(scope='module')
def user_root():
    rel = _codename()
    p = _run([os.path.join(REPO, 'scripts', 'release-root.sh'), rel, 'user'], 1800)
    if p.returncode != 0:
        unavailable('no Debian %s user root: %s' % (rel, p.stdout[-3000:]))
    return p.stdout.strip().splitlines()[-1]


def test_install_divert_run_and_purge(debs, user_root, cluster, gfapi_rep3):
    fresh = tempfile.mkdtemp(prefix='gfpool-user-', dir='/var/tmp')
    name = make_unique_name('pkg')
    try:
        p = _run(['cp', '-a', user_root + '/.', fresh], 600)
        assert p.returncode == 0, p.stdout
        os.makedirs(os.path.join(fresh, 'tmp', 'debs'))
        for f in os.listdir(debs):
            if f.endswith('.deb'):
                shutil.copy(os.path.join(debs, f), os.path.join(fresh, 'tmp', 'debs'))
        gfapi_rep3.mkdir('/' + name)
        hosts = [h for h, _ in cluster.volume_hosts('rep3')]
        with open(os.path.join(fresh, 'tmp', 'pool.xml'), 'w') as f:
            f.write(pool_xml(name, hosts, directory='/' + name))
        p = _run([os.path.join(REPO, 'scripts', 'in-root.sh'), fresh, 'bash',
                  os.path.join(REPO, 'tests', 'packages', 'check-install.sh'),
                  '/tmp/debs', '/tmp/pool.xml'], 900)
        failed = [l for l in p.stdout.splitlines() if l.startswith('not ok')]
        assert p.returncode == 0 and not failed, p.stdout[-8000:]
        assert p.stdout.count('\nok ') >= 20, p.stdout
    finally:
        # the root's /proc, /dev... were mounted in in-root.sh's own
        # namespace: nothing is mounted here
        shutil.rmtree(fresh, ignore_errors=True)
        gfapi_rep3.rmtree('/' + name)
