# SPDX-License-Identifier: LGPL-2.1-or-later
"""Issue 4: bad input to volume creation, through virsh, python3-libvirt and
the CLI, on the replica-3 volume. Every case asserts the exact outcome and
that nothing is lost: an existing image keeps its bytes, no hidden temp file
(.gfpool-tmp-*) stays behind, the name is not listed afterwards.

A NUL byte in a name cannot be tested from here: argv (CLI, virsh) cannot
carry one, and libvirt's XML parser rejects it before the module sees it.
The core's check for it is covered by the unit tests."""

import secrets

import libvirt
import pytest

import testbed
from testbed.pools import (GlusterPool, assert_nothing_left, qcow2_header,
                     virsh_fails)

KiB = 1024
MiB = 1024 * KiB


@pytest.fixture(scope='module')
def bpool(libvirtd, cluster, gfapi_rep3, tmp_path_factory):
    """A pool holding keep.img (known bytes) and keep.qcow2."""
    p = GlusterPool(libvirtd, cluster, gfapi_rep3,
                    testbed.make_unique_name('bad'),
                    tmp_path_factory.mktemp('bad'))
    p.keep_bytes = secrets.token_bytes(64 * KiB)
    p.gfapi.put(p.path('keep.img'), p.keep_bytes, mode=0o600)
    p.cli('vol-create-as', 'keep.qcow2', '1G', '--format', 'qcow2', check=0)
    p.keep_qcow2 = p.gfapi.read(p.path('keep.qcow2'))
    p.refresh()
    try:
        yield p
    finally:
        p.cleanup()


def unchanged(p):
    """The pool's pre-existing images are exactly as they were, and the
    directory holds nothing else that a test did not expect."""
    assert p.gfapi.read(p.path('keep.img')) == p.keep_bytes
    assert p.gfapi.stat(p.path('keep.img')).mode & 0o7777 == 0o600
    assert p.gfapi.read(p.path('keep.qcow2')) == p.keep_qcow2
    assert p.temp_files() == []




def libvirt_fails(p, xml, code, expect, flags=0):
    with pytest.raises(libvirt.libvirtError) as e:
        p.pool().createXML(xml, flags)
    assert expect in str(e.value), str(e.value)
    assert e.value.get_error_code() == code, (
        'error code %d, expected %d: %s' % (e.value.get_error_code(), code, e.value))
    return e.value


def vol(name, cap='1048576', fmt='raw', extra=''):
    return ("<volume><name>%s</name><capacity unit='bytes'>%s</capacity>"
            "<target><format type='%s'/></target>%s</volume>" % (name, cap, fmt, extra))


# ---- duplicates ----------------------------------------------------------

@pytest.mark.parametrize('fmt', ['raw', 'qcow2'])
def test_duplicate_virsh(bpool, fmt):
    for existing in ('keep.img', 'keep.qcow2'):
        virsh_fails(bpool, 'vol-create-as', bpool.name, existing, '2M',
                    '--format', fmt,
                    expect="storage volume '%s' exists already" % existing)
    unchanged(bpool)


def test_duplicate_python_and_xml(bpool, tmp_path):
    libvirt_fails(bpool, vol('keep.img', fmt='qcow2'),
                  libvirt.VIR_ERR_STORAGE_VOL_EXIST,
                  "storage volume 'keep.img' exists already")
    x = tmp_path / 'dup.xml'
    x.write_text(vol('keep.qcow2'))
    virsh_fails(bpool, 'vol-create', bpool.name, str(x),
                expect="storage volume 'keep.qcow2' exists already")
    unchanged(bpool)


def test_duplicate_cli(bpool, tmp_path):
    for existing in ('keep.img', 'keep.qcow2'):
        r = bpool.cli('vol-create-as', existing, '2M', '--format', 'qcow2', check=4)
        assert "volume '%s' already exists on gluster volume 'rep3'" % existing in r.stderr
        x = tmp_path / 'dup.xml'
        x.write_text(vol(existing))
        bpool.cli('vol-create', str(x), check=4)
    unchanged(bpool)


def test_duplicate_behind_libvirts_back(bpool):
    """A file libvirtd has not seen yet (no pool-refresh since it appeared)
    is not overwritten either: the core checks, and glfs_link publishes
    without replacing."""
    data = secrets.token_bytes(4096)
    name = 'late-%s.img' % secrets.token_hex(3)
    bpool.gfapi.put(bpool.path(name), data)
    for fmt in ('raw', 'qcow2'):
        virsh_fails(bpool, 'vol-create-as', bpool.name, name, '2M', '--format', fmt,
                    expect="volume '%s' already exists on gluster volume 'rep3'" % name)
    assert bpool.gfapi.read(bpool.path(name)) == data
    bpool.gfapi.unlink(bpool.path(name))
    unchanged(bpool)


# ---- names ---------------------------------------------------------------

BAD_NAMES = [
    ('a/b', "it contains '/'"),
    ('../escape.img', "it contains '/'"),
    ('..', "'.' and '..' are not volume names"),
    ('.', "'.' and '..' are not volume names"),
    ('x' * 256, 'it is longer than 255 bytes'),
    ('.gfpool-tmp-0123456789abcdef', "the prefix '.gfpool-tmp-' is reserved"),
    ('.gfpool-tmp-', "the prefix '.gfpool-tmp-' is reserved"),
]


@pytest.mark.parametrize('name,why', BAD_NAMES, ids=lambda v: v[:12] if isinstance(v, str) else v)
def test_bad_name_virsh(bpool, name, why):
    before = bpool.files()
    virsh_fails(bpool, 'vol-create-as', bpool.name, name, '1M',
                expect="invalid volume name")
    r = virsh_fails(bpool, 'vol-create-as', bpool.name, name, '1M',
                    '--format', 'qcow2', expect=why)
    assert 'invalid argument' in r.stderr
    assert bpool.files() == before
    assert name not in bpool.listed()
    unchanged(bpool)


@pytest.mark.parametrize('name,why', BAD_NAMES, ids=lambda v: v[:12] if isinstance(v, str) else v)
def test_bad_name_cli(bpool, tmp_path, name, why):
    before = bpool.files()
    r = bpool.cli('vol-create-as', name, '1M', check=2)
    assert 'invalid volume name' in r.stderr and why in r.stderr, r.stderr
    x = tmp_path / 'n.xml'
    x.write_text(vol(name.replace('&', '&amp;')))
    bpool.cli('vol-create', str(x), check=2)
    # other verbs never reach outside the pool directory either
    for verb in ('vol-info', 'vol-delete', 'vol-dumpxml', 'vol-path'):
        r = bpool.cli(verb, name, check=2)
        assert why in r.stderr, (verb, r.stderr)
    assert bpool.files() == before
    unchanged(bpool)


def test_empty_name(bpool, tmp_path):
    # virsh refuses an empty argument itself; the XML path reaches libvirt
    r = bpool.virsh('vol-create-as', bpool.name, '', '1M', check=False)
    assert r.returncode == 1 and 'Option argument is empty' in r.stderr
    libvirt_fails(bpool, "<volume><name></name><capacity>1</capacity></volume>",
                  libvirt.VIR_ERR_XML_ERROR, 'missing volume name element')
    r = bpool.cli('vol-create-as', '', '1M', check=2)
    assert "invalid volume name '': it is empty" in r.stderr
    unchanged(bpool)


def test_bad_name_python_xml(bpool):
    libvirt_fails(bpool, vol('a/b'), libvirt.VIR_ERR_INVALID_ARG, "it contains '/'")
    libvirt_fails(bpool, vol('..'), libvirt.VIR_ERR_INVALID_ARG,
                  "'.' and '..' are not volume names")
    unchanged(bpool)


def test_longest_name_ok(bpool):
    name = 'y' * 255
    bpool.cli('vol-create-as', name, '1M', check=0)
    assert name in bpool.listed()
    bpool.virsh('vol-delete', '--pool', bpool.name, name)
    assert name not in bpool.files()


# ---- capacities ----------------------------------------------------------

def test_capacity_zero(bpool):
    for fmt in ('raw', 'qcow2'):
        name = 'zero.' + fmt
        virsh_fails(bpool, 'vol-create-as', bpool.name, name, '0', '--format', fmt,
                    expect="invalid capacity 0 for volume '%s': must be at least 1 byte" % name)
        assert_nothing_left(bpool, name)
        libvirt_fails(bpool, vol(name, '0', fmt), libvirt.VIR_ERR_INVALID_ARG,
                      'invalid capacity 0')
        r = bpool.cli('vol-create-as', name, '0', '--format', fmt, check=2)
        assert 'invalid capacity 0' in r.stderr
        assert_nothing_left(bpool, name)
    unchanged(bpool)


def test_capacity_negative(bpool):
    virsh_fails(bpool, 'vol-create-as', bpool.name, 'neg.img', '--', '-1',
                expect='Malformed size -1')
    bpool.cli('vol-create-as', 'neg.img', '-1', check=2)
    libvirt_fails(bpool, vol('neg.img', '-1'), libvirt.VIR_ERR_XML_ERROR,
                  'malformed capacity element')
    assert_nothing_left(bpool, 'neg.img')
    unchanged(bpool)


def test_capacity_2_pow_63(bpool):
    for fmt in ('raw', 'qcow2'):
        virsh_fails(bpool, 'vol-create-as', bpool.name, 'huge.' + fmt,
                    str(2 ** 63), '--format', fmt, expect='numerical overflow')
        r = bpool.cli('vol-create-as', 'huge.' + fmt, str(2 ** 63), '--format', fmt,
                      check=2)
        assert 'larger than 2^63-1' in r.stderr, r.stderr
        r = bpool.cli('vol-create-as', 'huge.' + fmt, '8E', '--format', fmt, check=2)
        assert_nothing_left(bpool, 'huge.' + fmt)
    unchanged(bpool)


def test_capacity_beyond_qcow2_limit(bpool):
    """2^62 bytes needs a 64 MiB L1 table with 64 KiB clusters; QEMU
    refuses L1 tables over 32 MiB, so the image would be unusable."""
    cap = str(2 ** 62)
    why = 'capacity %s is invalid: must be at most 2251799813685248 bytes' % cap
    virsh_fails(bpool, 'vol-create-as', bpool.name, 'big.qcow2', cap,
                '--format', 'qcow2', expect=why)
    assert_nothing_left(bpool, 'big.qcow2')
    r = bpool.cli('vol-create-as', 'big.qcow2', cap, '--format', 'qcow2', check=2)
    assert why in r.stderr
    # the limit itself is fine (empty image: metadata only)
    bpool.cli('vol-create-as', 'max.qcow2', '2251799813685248', '--format', 'qcow2',
              check=0)
    bpool.cli('vol-delete', 'max.qcow2', check=0)
    assert_nothing_left(bpool, 'big.qcow2')
    unchanged(bpool)


def test_capacity_beyond_qcow2_limit_error_code(bpool):
    """An invalid parameter is VIR_ERR_INVALID_ARG through libvirt, as the
    CLI calls it invalid input (exit 2) and capacity 0 is INVALID_ARG."""
    libvirt_fails(bpool, vol('big2.qcow2', str(2 ** 62), 'qcow2'),
                  libvirt.VIR_ERR_INVALID_ARG, 'must be at most')
    assert_nothing_left(bpool, 'big2.qcow2')


def test_capacity_fails_while_writing_leaves_nothing(bpool):
    """A failure after the temp file exists: raw 2^63-1 (the bricks' file
    system refuses the size)."""
    r = bpool.cli('vol-create-as', 'max.img', str(2 ** 63 - 1), '--prealloc', 'off',
                  check=1)
    assert 'File too large' in r.stderr, r.stderr
    assert_nothing_left(bpool, 'max.img')
    virsh_fails(bpool, 'vol-create-as', bpool.name, 'max.img', str(2 ** 63 - 1),
                expect="cannot create volume 'max.img'")
    assert_nothing_left(bpool, 'max.img')
    unchanged(bpool)


# ---- formats -------------------------------------------------------------

def test_unknown_format(bpool, tmp_path):
    supported = 'supported formats are raw and qcow2'
    for fmt in ('vmdk', 'vdi', 'qed'):
        virsh_fails(bpool, 'vol-create-as', bpool.name, 'f.' + fmt, '1M',
                    '--format', fmt, expect=supported)
        libvirt_fails(bpool, vol('f.' + fmt, fmt=fmt),
                      libvirt.VIR_ERR_CONFIG_UNSUPPORTED, supported)
        r = bpool.cli('vol-create-as', 'f.' + fmt, '1M', '--format', fmt, check=2)
        assert "cannot create volumes of format '%s': %s" % (fmt, supported) in r.stderr
        x = tmp_path / 'f.xml'
        x.write_text(vol('f.' + fmt, fmt=fmt))
        r = bpool.cli('vol-create', str(x), check=2)
        assert supported in r.stderr
        assert_nothing_left(bpool, 'f.' + fmt)
    # a name libvirt does not know at all
    libvirt_fails(bpool, vol('f.bogus', fmt='bogus'), libvirt.VIR_ERR_CONFIG_UNSUPPORTED,
                  'unknown volume format type bogus')
    bpool.cli('vol-create-as', 'f.bogus', '1M', '--format', 'bogus', check=2)
    assert_nothing_left(bpool, 'f.bogus')
    unchanged(bpool)


def test_backing_only_for_qcow2(bpool):
    libvirt_fails(bpool, vol('rb.img', extra="<backingStore><path>keep.img</path>"
                             "</backingStore>"),
                  libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
                  'only qcow2 volumes can have a backing file')
    bpool.cli('vol-create-as', 'rb.img', '1M', '--backing-vol', 'keep.img', check=1)
    assert_nothing_left(bpool, 'rb.img')
    unchanged(bpool)


# ---- backing files -------------------------------------------------------

def test_backing_missing(bpool):
    libvirt_fails(bpool, vol('ovl.qcow2', fmt='qcow2',
                             extra='<backingStore><path>missing.img</path></backingStore>'),
                  libvirt.VIR_ERR_NO_STORAGE_VOL, "'missing.img'")
    assert_nothing_left(bpool, 'ovl.qcow2')
    # virsh resolves --backing-vol itself
    virsh_fails(bpool, 'vol-create-as', bpool.name, 'ovl.qcow2', '1M', '--format',
                'qcow2', '--backing-vol', 'missing.img', expect="failed to get vol 'missing.img'")
    r = bpool.cli('vol-create-as', 'ovl.qcow2', '1M', '--format', 'qcow2',
                  '--backing-vol', 'missing.img', check=3)
    assert "'missing.img'" in r.stderr and 'backing' in r.stderr, r.stderr
    assert_nothing_left(bpool, 'ovl.qcow2')
    unchanged(bpool)


def test_backing_format_mismatch(bpool):
    virsh_fails(bpool, 'vol-create-as', bpool.name, 'mm.qcow2', '0', '--format', 'qcow2',
                '--backing-vol', 'keep.img', '--backing-vol-format', 'qcow2',
                expect="backing volume 'keep.img' is raw, not qcow2")
    r = bpool.cli('vol-create-as', 'mm.qcow2', '0', '--format', 'qcow2',
                  '--backing-vol', 'keep.qcow2', '--backing-vol-format', 'raw', check=2)
    assert "backing volume 'keep.qcow2' is qcow2, not raw" in r.stderr
    assert_nothing_left(bpool, 'mm.qcow2')
    unchanged(bpool)


def test_backing_in_another_volume_is_not_rebased(bpool, cluster):
    """A backing path naming an image elsewhere (another gluster volume, or
    a local path) must not be silently taken as the pool volume of the same
    base name: keep.img here is not /single/<dir>/keep.img."""
    other = 'gluster://%s/single/elsewhere/keep.img' % bpool.hosts[0]
    for path in (other, '/var/lib/libvirt/images/keep.img'):
        try:
            bpool.pool().createXML(vol('rebased.qcow2', fmt='qcow2',
                                       extra='<backingStore><path>%s</path>'
                                       '</backingStore>' % path), 0)
        except libvirt.libvirtError as e:
            assert 'not a volume of' in str(e) or 'pool' in str(e), str(e)
        else:
            info = bpool.cli('vol-info', 'rebased.qcow2').stdout
            bpool.gfapi.unlink(bpool.path('rebased.qcow2'))
            pytest.fail('backing %s accepted as this pool\'s keep.img:\n%s'
                        % (path, info))
        assert_nothing_left(bpool, 'rebased.qcow2')
    unchanged(bpool)


def test_backing_loop(bpool):
    t = secrets.token_hex(3)
    a, b, s = 'loopA-%s' % t, 'loopB-%s' % t, 'self-%s' % t
    g = bpool.gfapi
    g.put(bpool.path(a), qcow2_header(1 * MiB, backing=b, file_len=4096))
    g.put(bpool.path(b), qcow2_header(1 * MiB, backing=a, file_len=4096))
    g.put(bpool.path(s), qcow2_header(1 * MiB, backing=s, file_len=4096))
    bpool.refresh()
    before = bpool.files()

    virsh_fails(bpool, 'vol-create-as', bpool.name, 'top-' + t, '0', '--format', 'qcow2',
                '--backing-vol', a, expect="backing chain of '%s' loops back to '%s'" % (a, a))
    r = bpool.cli('vol-create-as', 'top-' + t, '0', '--format', 'qcow2',
                  '--backing-vol', b, check=2)
    assert "backing chain of '%s' loops back to '%s'" % (b, b) in r.stderr
    libvirt_fails(bpool, vol('top-' + t, fmt='qcow2', extra='<backingStore><path>%s'
                             '</path></backingStore>' % s),
                  libvirt.VIR_ERR_INVALID_ARG, "loops back to '%s'" % s)
    # an overlay may not name itself either
    r = bpool.cli('vol-create-as', 'me-' + t, '1M', '--format', 'qcow2',
                  '--backing-vol', 'me-' + t, check=2)
    assert "volume 'me-%s' cannot be its own backing file" % t in r.stderr
    assert_nothing_left(bpool, 'top-' + t, before=before)
    assert bpool.virsh('vol-info', '--pool', bpool.name, a).returncode == 0
    for n in (a, b, s):
        g.unlink(bpool.path(n))
    unchanged(bpool)


def test_backing_chain_too_long(bpool):
    """GFPOOL_BACKING_DEPTH_MAX (16) is the longest chain followed: an
    overlay on 16 images is fine, on 17 it is refused."""
    t = secrets.token_hex(3)
    names = ['ch%02d-%s' % (i, t) for i in range(17)]
    for i, n in enumerate(names):
        back = names[i + 1] if i + 1 < len(names) else None
        bpool.gfapi.put(bpool.path(n), qcow2_header(1 * MiB, backing=back, file_len=4096))
    r = bpool.cli('vol-create-as', 'top-' + t, '0', '--format', 'qcow2',
                  '--backing-vol', names[0])
    if r.returncode == 0:
        bpool.gfapi.unlink(bpool.path('top-' + t))
    assert r.returncode == 2, 'a chain of 17 backing images was accepted'
    assert 'is longer than 16 images' in r.stderr, r.stderr
    assert_nothing_left(bpool, 'top-' + t)
    # 16 is fine
    bpool.cli('vol-create-as', 'top-' + t, '0', '--format', 'qcow2',
              '--backing-vol', names[1], check=0)
    for n in names + ['top-' + t]:
        bpool.gfapi.unlink(bpool.path(n))
    unchanged(bpool)


# ---- malformed XML -------------------------------------------------------

@pytest.mark.parametrize('text,virsh_err,cli_err', [
    ("<volume><name>m.img</name><capacity>1</capacity>",
     'Premature end of data', ''),
    ("<volume><name>m.img</name><capacity>1</capacity></volum>",
     'mismatch', ''),
    ("<pool type='dir'><name>m.img</name></pool>",
     "expecting root element of 'volume', not 'pool'", 'volume'),
    ("not xml at all", 'Start tag expected', ''),
    ("<volume><name>m.img</name><capacity>lots</capacity></volume>",
     'malformed capacity element', 'lots'),
])
def test_malformed_volume_xml(bpool, tmp_path, text, virsh_err, cli_err):
    x = tmp_path / 'm.xml'
    x.write_text(text)
    virsh_fails(bpool, 'vol-create', bpool.name, str(x), expect=virsh_err)
    r = bpool.cli('vol-create', str(x), check=2)
    assert str(x) in r.stderr and cli_err in r.stderr, r.stderr
    assert_nothing_left(bpool, 'm.img')
    unchanged(bpool)


def test_missing_xml_file_cli(bpool, tmp_path):
    r = bpool.cli('vol-create', str(tmp_path / 'none.xml'), check=2)
    assert 'none.xml' in r.stderr


# ---- corrupt images in the pool -----------------------------------------

def test_corrupt_headers_keep_their_format(bpool, libvirtd, tmp_path):
    """A file whose signature says qcow2 (or qcow) but whose header cannot
    be used is listed in that format, never as raw (raw would hand a guest
    its metadata and let a shrink truncate it), with the reason in
    libvirt's log. Resize, clone, upload and overlays refuse it naming the
    defect; wipe and delete still work."""
    t = secrets.token_hex(3)
    files = {
        'short10-%s' % t: b'QFI\xfb\0\0\0\x03\0\0',
        'boff-%s' % t: qcow2_header(1 * MiB, backing='x', backing_offset=1 << 40,
                                    file_len=4096),
        'bsize-%s' % t: qcow2_header(1 * MiB, backing='x', backing_size=0xffffffff,
                                     file_len=4096),
        'cb99-%s' % t: qcow2_header(1 * MiB, cluster_bits=99, file_len=4096),
        'l1-%s' % t: qcow2_header(1 * MiB, l1_offset=(1 << 63) + 5, file_len=4096),
        'l1odd-%s' % t: qcow2_header(1 * MiB, l1_offset=12345, file_len=4096),
        'v99-%s' % t: qcow2_header(1 * MiB, version=99, file_len=4096),
    }
    for n, data in files.items():
        bpool.gfapi.put(bpool.path(n), data)
    pid = libvirtd.pid
    r = bpool.virsh('pool-refresh', bpool.name, check=False)
    assert r.returncode == 0, r.stderr
    assert libvirtd.alive() and libvirtd.pid == pid
    listed = bpool.listed(refresh=False)
    log = libvirtd.log_since_start()
    fmt = {n: 'qcow' if n.startswith('v99') else 'qcow2' for n in files}
    for n, data in files.items():
        assert n in listed
        d = bpool.dumpxml(n)
        assert d['format'] == fmt[n], (n, d)
        assert d['capacity'] == len(data), (n, d)
        assert d['backing_path'] is None
        assert "volume '%s'" % n in log and 'unusable %s image' % fmt[n] in log, n
    # the CLI lists them the same way and exits 0
    out = bpool.cli('vol-list', '--details', check=0).stdout
    rows = {l.split()[0]: l.split() for l in out.splitlines()[2:]}
    for n in files:
        assert rows[n][2] == fmt[n], rows[n]
    r = bpool.cli('vol-info', 'cb99-%s' % t, check=0)
    assert 'cluster_bits 99' in r.stdout
    # an overlay on a corrupt image is refused: QEMU would not open it
    libvirt_fails(bpool, vol('o-' + t, fmt='qcow2', extra="<backingStore><path>cb99-%s"
                             "</path><format type='qcow2'/></backingStore>" % t),
                  libvirt.VIR_ERR_INVALID_ARG, 'cannot be used: unusable qcow2 image')
    assert_nothing_left(bpool, 'o-' + t)
    # nothing rewrites it on the strength of its header (a sparse 1 MiB
    # file: libvirt itself refuses to shrink below the allocation)
    l1 = 'l1big-%s' % t
    head = qcow2_header(1 * MiB, l1_offset=(1 << 63) + 5, file_len=4096)
    bpool.gfapi.put_sparse(bpool.path(l1), MiB)
    bpool.gfapi.write_at(bpool.path(l1), 0, head)
    files[l1] = head + b'\0' * (MiB - len(head))
    bpool.refresh()
    # 8 MiB: the client is still sending when the upload fails (libvirt
    # 11.x's daemon crashed when a stream send failed)
    local = tmp_path / 'up'
    local.write_bytes(b'x' * (8 * MiB))
    for args, what in (
            (('vol-resize', '--pool', bpool.name, l1, '512K', '--shrink'),
             'resize'),
            (('vol-resize', '--pool', bpool.name, l1, '1G'), 'resize'),
            (('vol-upload', '--pool', bpool.name, l1, str(local)), 'upload'),
            (('vol-clone', '--pool', bpool.name, l1, 'c-' + t), 'clone')):
        r = bpool.virsh(*args, check=False)
        assert r.returncode != 0 and 'unusable qcow2 image' in r.stderr, (
            what, r.stderr)
        assert bpool.gfapi.read(bpool.path(l1)) == files[l1], what
        r = bpool.cli(*[a for a in args if a not in ('--pool', bpool.name)])
        assert r.returncode != 0 and 'unusable qcow2 image' in r.stderr, (
            what, r.stderr)
        assert bpool.gfapi.read(bpool.path(l1)) == files[l1], what
    assert_nothing_left(bpool, 'c-' + t)
    bpool.virsh('vol-wipe', '--pool', bpool.name, l1)
    r = bpool.cli('vol-download', l1, '-', check=0)
    assert r.stdout == '\0' * MiB
    assert libvirtd.alive() and libvirtd.pid == pid
    for n in files:
        bpool.virsh('vol-delete', '--pool', bpool.name, n)
    unchanged(bpool)
