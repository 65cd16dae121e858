# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every gfapi call of the data verbs failing in turn (issue 12, defect 1).

The CLI runs with tests/fault/gfapi_fault.so preloaded: a first run traces
which gfapi calls a verb makes; then the first and the last call of each
kind fails (EIO) in a run of its own. Each run must end with a clear error
(never a crash, never the "internal error" that stands for a failure
without a reason) and, for the verbs that create a volume, with the
volume either whole (the failure was one the verb can live with, e.g. a
discard that only keeps zeros) or absent, and no temp file left.

The module in libvirtd runs the same core functions; its error path is the
same GError, reported through one helper (gfpoolReportError).
"""

import collections
import hashlib
import os

import pytest

from testbed.pools import GlusterPool, gfpool_cli, pool_opts
import testbed

MiB = 1 << 20
SHIM = os.path.join(testbed.BUILD, 'tests', 'fault', 'gfapi_fault.so')


@pytest.fixture(scope='module')
def fpool(cluster, gfapi_rep3, tmp_path_factory):
    if not os.path.exists(SHIM):
        testbed.unavailable('fault shim not built: %s' % SHIM)
    pool = GlusterPool(None, cluster, gfapi_rep3,
                       testbed.make_unique_name('fault'),
                       tmp_path_factory.mktemp('fault'))
    g = gfapi_rep3
    # base.img: data, a hole, data; ov.qcow2: an empty overlay on it
    g.put(pool.path('base.img'), os.urandom(2 * MiB) + b'\0' * (4 * MiB) +
          os.urandom(2 * MiB))
    pool.cli('vol-create-as', 'ov.qcow2', '8M', '--format', 'qcow2',
             '--backing-vol', 'base.img', '--backing-vol-format', 'raw',
             check=0)
    local = tmp_path_factory.mktemp('faultdata') / 'up.bin'
    local.write_bytes(os.urandom(3 * MiB))
    pool.local = str(local)
    yield pool
    pool.cleanup()


def digest(pool, vol, tmp_path):
    out = str(tmp_path / ('check-' + vol))
    pool.cli('vol-download', vol, out, check=0)
    with open(out, 'rb') as f:
        d = hashlib.sha256(f.read()).hexdigest()
    os.unlink(out)
    return d


# name: (inputs to make fresh before each run, CLI args, the volume made)
SCENARIOS = {
    'clone-raw': ([], ['vol-clone', 'base.img', 'out.img'], 'out.img'),
    'clone-flatten-qcow2-to-raw': ([], ['vol-clone', 'ov.qcow2', 'out.img',
                                        '--format', 'raw'], 'out.img'),
    'clone-raw-to-qcow2': ([], ['vol-clone', 'base.img', 'out.qcow2',
                                '--format', 'qcow2'], 'out.qcow2'),
    'upload': (['raw'], ['vol-upload', 'work.img', '{local}'], None),
    'download': ([], ['vol-download', 'base.img', '{tmp}/down.bin'], None),
    'resize-raw': (['raw'], ['vol-resize', 'work.img', '16M'], None),
    'resize-qcow2': (['qcow2'], ['vol-resize', 'work.qcow2', '1G'], None),
    'wipe': (['raw'], ['vol-wipe', 'work.img'], None),
}


def prepare(pool, kinds):
    for k in kinds:
        name = 'work.img' if k == 'raw' else 'work.qcow2'
        pool.cli('vol-delete', name)
        pool.cli('vol-create-as', name, '8M', '--format', k, check=0)
    for name in pool.files():
        if name.startswith('out.'):
            pool.gfapi.unlink(pool.path(name))


def trace_calls(pool, args, tmp_path):
    trace = str(tmp_path / 'trace')
    p = pool.cli(*args, env={'LD_PRELOAD': SHIM, 'GFPOOL_FAULT_TRACE': trace})
    assert p.returncode == 0, p.stderr
    with open(trace) as f:
        calls = [l.split()[0] for l in f if l.strip()]
    os.unlink(trace)
    return collections.Counter(calls)


@pytest.mark.parametrize('scenario', sorted(SCENARIOS))
def test_each_gfapi_call_failing(fpool, scenario, tmp_path):
    kinds, args, made = SCENARIOS[scenario]
    args = [a.format(local=fpool.local, tmp=tmp_path) for a in args]
    prepare(fpool, kinds)
    calls = trace_calls(fpool, args, tmp_path)
    assert calls, 'no gfapi call traced: is the shim preloaded?'
    good = digest(fpool, made, tmp_path) if made else None
    tried = []
    for fn, count in sorted(calls.items()):
        for nth in sorted({1, count}):
            prepare(fpool, kinds)
            p = fpool.cli(*args, env={'LD_PRELOAD': SHIM,
                                      'GFPOOL_FAULT': '%s:%d' % (fn, nth)})
            what = '%s with call %d of %s failing' % (scenario, nth, fn)
            tried.append((fn, nth, p.returncode))
            assert p.returncode >= 0, '%s: killed by signal %d\n%s' % (
                what, -p.returncode, p.stderr)
            assert 'internal error' not in p.stderr, '%s: %s' % (what,
                                                                 p.stderr)
            if p.returncode != 0:
                assert p.stderr.startswith('gfpool: error: ') and \
                    len(p.stderr.strip()) > len('gfpool: error: ') + 10, \
                    '%s: unclear error %r' % (what, p.stderr)
            assert fpool.temp_files() == [], '%s: temp file left: %s' % (
                what, fpool.files())
            if made:
                present = made in fpool.files()
                if p.returncode != 0:
                    assert not present, '%s: failed (%s) but %s exists' % (
                        what, p.stderr.strip(), made)
                else:
                    assert present and digest(fpool, made, tmp_path) == good, (
                        '%s: succeeded but %s differs' % (what, made))
    print('%s: %d runs, failed calls and exit codes: %s' % (
        scenario, len(tried), tried))


def test_pool_build_no_overwrite_unreadable_dir(fpool):
    """pool-build --no-overwrite passes on an empty directory and must not
    pass on one it could not read (a readdir error is not "empty")."""
    d = fpool.dir + '/empty'
    fpool.gfapi.mkdir(d)
    args = ['pool-build', '--no-overwrite'] + pool_opts(fpool.cluster, d)
    ok = gfpool_cli(*args)
    assert ok.returncode == 0, ok.stderr
    p = gfpool_cli(*args, env={'LD_PRELOAD': SHIM,
                               'GFPOOL_FAULT': 'glfs_readdir_r:1'})
    assert p.returncode != 0 and 'cannot read directory' in p.stderr, p


def test_write_that_moves_nothing_fails(fpool, tmp_path):
    """A glfs_pwrite that returns 0 (nothing written, no error) ends the
    upload and the clone with an error instead of looping forever."""
    prepare(fpool, ['raw'])
    for args in (['vol-upload', 'work.img', fpool.local],
                 ['vol-clone', 'base.img', 'out.img']):
        p = fpool.cli(*args, timeout=60,
                      env={'LD_PRELOAD': SHIM, 'GFPOOL_FAULT': 'glfs_pwrite:1',
                           'GFPOOL_FAULT_RETURN_ZERO': '1'})
        assert p.returncode != 0 and 'nothing written' in p.stderr, p
        assert fpool.temp_files() == [] and 'out.img' not in fpool.files()



@pytest.mark.parametrize('times', [1, 2])
def test_link_says_missing_source(fpool, times):
    """glfs_link answering ENOENT although its source (the written temp
    file) exists: the publish tries once more, and succeeds; a second such
    answer is a clear error naming the volume, with nothing left."""
    prepare(fpool, [])
    p = fpool.cli('vol-clone', 'base.img', 'out.img',
                  env={'LD_PRELOAD': SHIM, 'GFPOOL_FAULT': 'glfs_link:1',
                       'GFPOOL_FAULT_COUNT': str(times),
                       'GFPOOL_FAULT_ERRNO': '2'})
    if times == 1:
        assert p.returncode == 0, p.stderr
        assert 'out.img' in fpool.files()
    else:
        assert p.returncode != 0
        assert "cannot publish volume 'out.img'" in p.stderr, p.stderr
        assert 'No such file or directory' in p.stderr, p.stderr
        assert 'removed meanwhile' not in p.stderr, p.stderr
        assert 'out.img' not in fpool.files()
    assert [n for n in fpool.files() if n.startswith('.gfpool-tmp')] == []
