# SPDX-License-Identifier: LGPL-2.1-or-later
"""The first refresh on a host that has never seen a pool answers recorded
volumes from their records, without reading a header: a raw format record
is the whole answer, a qcow2 one with a header record stamped with the
file's current size and mtime (trusted.gfpool.header, written by our verbs)
is too. Anything else has its header read as before, and the records never
make a volume something its header read would not.

The hostile and edge cases first: a qcow2 rewritten after its header record
(same size, another mtime), forged and garbled header records, a raw-recorded
file whose bytes are a qcow2 header, a file without records."""

import errno
import re
import subprocess

import pytest

from testbed.pools import define_pool, gfpool_cli, pool_opts, pool_xml, vol_xml_doc

MiB = 1 << 20
GiB = 1 << 30
HEADER_XATTR = 'trusted.gfpool.header'
FORMAT_XATTR = 'trusted.gfpool.format'
N_RAW = 1930
N_QCOW2 = 64


def _refreshes(libvirtd, directory):
    """(volumes, headers read, from records) of each refresh of directory."""
    return [tuple(int(x) for x in m.groups()) for m in re.finditer(
        r"refresh of '%s' on gluster volume '\w+': (\d+) volumes, (\d+) headers read, "
        r"(\d+) from records" % re.escape(directory), libvirtd.log_since_start())]


def _qcow2(tmp_path, name, size, *opts):
    path = str(tmp_path / name)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2'] + list(opts) + [path, str(size)],
                   check=True)
    with open(path, 'rb') as f:
        return f.read()


def _start_fresh(make_libvirtd, cluster, name, directory, tmp_path):
    """A libvirtd that has never seen the pool (its own cache directory),
    with the pool started in it."""
    d = make_libvirtd()
    define_pool(d, tmp_path, pool_xml(name, cluster.addresses, directory=directory))
    d.virsh('pool-start', name)
    return d


def _vol(d, pool, vol):
    """vol-dumpxml as vol_xml_doc reads it, less the allocation (the bricks'
    filesystem may trim it between two looks)."""
    doc = vol_xml_doc(d.virsh('vol-dumpxml', '--pool', pool, vol).stdout)
    del doc['allocation']
    return doc


@pytest.fixture
def populated(cluster, gfapi_rep3, unique_name, tmp_path):
    """A pool directory of ~2,000 images, recorded by two vol-record calls."""
    g = gfapi_rep3
    name = unique_name('lrec')
    directory = '/' + name
    g.mkdir(directory)
    one = _qcow2(tmp_path, 'one.qcow2', GiB)
    # as long as `one` (the same L1 table), another virtual size
    two = _qcow2(tmp_path, 'two.qcow2', 768 * MiB)
    assert len(one) == len(two)
    overlay = _qcow2(tmp_path, 'ov.qcow2', GiB, '-u', '-b', 'base.img', '-F', 'raw')
    raws = ['r%04d.img' % i for i in range(N_RAW)]
    qcows = ['q%03d.qcow2' % i for i in range(N_QCOW2)]
    g.put_sparse('%s/base.img' % directory, GiB)
    for i, n in enumerate(raws):
        g.put_sparse('%s/%s' % (directory, n), (i % 7 + 1) * MiB)
    for n in qcows:
        g.put('%s/%s' % (directory, n), overlay)
    for n in ('stale.qcow2', 'forged.qcow2', 'garbled.qcow2'):
        g.put('%s/%s' % (directory, n), one)
    g.put('%s/looks-qcow2.img' % directory, one)
    g.put('%s/placed.qcow2' % directory, one)
    opts = pool_opts(cluster, directory)
    gfpool_cli('vol-record', *(opts + ['--format', 'raw', 'base.img', 'looks-qcow2.img'] + raws),
               timeout=600, check=0)
    gfpool_cli('vol-record', *(opts + ['--format', 'qcow2', 'stale.qcow2', 'forged.qcow2',
                                       'garbled.qcow2'] + qcows), timeout=600, check=0)
    try:
        yield name, directory, raws, qcows
    finally:
        g.rmtree(directory)


def test_first_refresh_from_records(make_libvirtd, cluster, gfapi_rep3, populated, tmp_path):
    name, directory, raws, qcows = populated
    g = gfapi_rep3
    p = lambda v: '%s/%s' % (directory, v)  # noqa: E731

    # our verbs wrote header records for the qcow2s only
    rec = g.getxattr(p(qcows[0]), HEADER_XATTR).decode()
    assert re.match(r'^1 size=\d+ mtime=-?\d+ capacity=%d cluster=65536 backing-format=raw '
                    r'backing=base.img$' % GiB, rec), rec
    with pytest.raises(OSError) as e:
        g.getxattr(p(raws[0]), HEADER_XATTR)
    assert e.value.errno == errno.ENODATA

    # the hostile and edge cases
    two = _qcow2(tmp_path, 'two.qcow2', 768 * MiB)
    g.write_at(p('stale.qcow2'), 0, two)            # same size, later mtime
    g.setxattr(p('forged.qcow2'), HEADER_XATTR,
               b'1 size=1 mtime=2 capacity=1125899906842624 cluster=65536 '
               b'backing-format=raw backing=other-guest.img')
    g.setxattr(p('garbled.qcow2'), HEADER_XATTR, b'\x00\xffnot a record at all')

    d = _start_fresh(make_libvirtd, cluster, name, directory, tmp_path)
    total = N_RAW + N_QCOW2 + 6
    # stale, forged, garbled (recorded, header record of no use) and
    # placed (no record) are read; nothing else is
    assert _refreshes(d, directory)[-1] == (total, 4, total - 4)

    assert _vol(d, name, 'stale.qcow2')['capacity'] == 768 * MiB
    for v in ('forged.qcow2', 'garbled.qcow2', 'placed.qcow2'):
        doc = _vol(d, name, v)
        assert (doc['capacity'], doc['format'], doc['backing_path']) == (GiB, 'qcow2', None), doc
    doc = _vol(d, name, 'looks-qcow2.img')
    assert (doc['format'], doc['capacity']) == ('raw', g.stat_raw(p('looks-qcow2.img')).st_size)
    for i in (0, 1, 6, N_RAW - 1):
        doc = _vol(d, name, raws[i])
        assert (doc['format'], doc['capacity']) == ('raw', (i % 7 + 1) * MiB), doc

    # The same qcow2s with their header records gone are read, and read
    # the same as their records said.
    sample = qcows[::8]
    from_records = {v: _vol(d, name, v) for v in sample}
    for doc in from_records.values():
        assert (doc['capacity'], doc['format'], doc['backing_format']) == (GiB, 'qcow2', 'raw')
        assert doc['backing_path'].endswith('/base.img'), doc
    for v in sample:
        g.removexattr(p(v), HEADER_XATTR)
    d2 = _start_fresh(make_libvirtd, cluster, name, directory, tmp_path)
    read = 4 + len(sample)
    assert _refreshes(d2, directory)[-1] == (total, read, total - read)
    for v in sample:
        assert _vol(d2, name, v) == from_records[v], v

    # What the module's own verbs leave is answered from records too.
    d2.virsh('vol-create-as', name, 'made.qcow2', '1G', '--format', 'qcow2')
    d2.virsh('vol-resize', '--pool', name, 'made.qcow2', '3G')
    d2.virsh('vol-clone', '--pool', name, qcows[1], 'cloned.qcow2')
    for v in ('made.qcow2', 'cloned.qcow2'):
        g.getxattr(p(v), HEADER_XATTR)
    d3 = _start_fresh(make_libvirtd, cluster, name, directory, tmp_path)
    assert _refreshes(d3, directory)[-1] == (total + 2, read, total + 2 - read)
    assert _vol(d3, name, 'made.qcow2')['capacity'] == 3 * GiB
    assert _vol(d3, name, 'cloned.qcow2') == dict(_vol(d2, name, 'cloned.qcow2'))
    for dd in (d, d2, d3):
        dd.virsh('pool-destroy', name, check=False)
