# SPDX-License-Identifier: LGPL-2.1-or-later
"""Issue 4: the gfpool CLI (build/src/tools/gfpool) on the replica-3 volume:
the pool given as --host/--volume/--dir and as --pool-xml, exit codes,
output formats, and agreement with what libvirtd shows for the same image."""

import errno
import json
import os
import pty
import re
import select
import subprocess
import time

import pytest

import testbed
from testbed.pools import (GFPOOL_CLI, GlusterPool, SilentListener, Timer,
                     gfpool_cli, pool_opts, qemu_img, qemu_img_info, sha256_file,
                     sparse_file, vol_xml_doc)

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

@pytest.fixture(autouse=True)
def cli_built():
    # a missing binary is a build failure under CI=true, not a skip
    if not os.path.exists(GFPOOL_CLI):
        testbed.unavailable('gfpool CLI not built: %s' % GFPOOL_CLI)


@pytest.fixture
def cpool(cluster, gfapi_rep3, unique_name, tmp_path):
    """A pool dir for the CLI alone (no libvirtd)."""
    p = GlusterPool(None, cluster, gfapi_rep3, unique_name('cli'), tmp_path)
    try:
        yield p
    finally:
        p.cleanup()


@pytest.fixture
def lpool(libvirtd, cluster, gfapi_rep3, unique_name, tmp_path):
    """A pool dir that libvirtd also has as a started pool."""
    p = GlusterPool(libvirtd, cluster, gfapi_rep3, unique_name('clilv'), tmp_path)
    try:
        yield p
    finally:
        p.cleanup()


def verbs():
    out = gfpool_cli('--help', check=0).stdout
    block = out.split('Verbs:', 1)[1].split('\n\n', 1)[0]
    return [l.split()[0] for l in block.splitlines() if l.strip()]


def test_help_every_verb():
    vs = verbs()
    for v in ('pool-info', 'pool-refresh', 'vol-list', 'vol-create-as',
              'vol-create', 'vol-delete', 'vol-info', 'vol-dumpxml',
              'vol-path', 'uri-parse'):
        assert v in vs
    for v in vs:
        r = gfpool_cli(v, '--help', check=0)
        assert v in r.stdout and 'Usage' in r.stdout, r.stdout
        assert r.stderr == ''
    r = gfpool_cli(check=2)
    assert 'Usage: gfpool VERB' in r.stderr
    assert 'Exit codes' in gfpool_cli('help', check=0).stdout


def _xml_wellformed(text, tmp_path):
    f = tmp_path / ('x%d.xml' % time.monotonic_ns())
    f.write_text(text)
    r = subprocess.run(['xmllint', '--noout', str(f)], stderr=subprocess.PIPE,
                       universal_newlines=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize('how', ['options', 'pool-xml'])
def test_cli_lifecycle(cpool, tmp_path, how):
    run = cpool.cli if how == 'options' else cpool.cli_xml

    with Timer() as t:
        r = run('vol-create-as', 'a.qcow2', '10G', '--format', 'qcow2', check=0)
    assert r.stdout == 'Vol a.qcow2 created\n'
    # no glfs_fini: a CLI call is milliseconds, not 10 s
    assert t.elapsed < 2, 'vol-create-as took %.1f s' % t.elapsed
    run('vol-create-as', 'b.img', '1M', check=0)
    xml = tmp_path / 'c.xml'
    xml.write_text("""<volume><name>c.qcow2</name>
      <capacity unit='bytes'>0</capacity>
      <target><format type='qcow2'/>
        <permissions><mode>0640</mode></permissions></target>
      <backingStore><path>b.img</path><format type='raw'/></backingStore>
    </volume>""")
    assert run('vol-create', str(xml), check=0).stdout == 'Vol c.qcow2 created\n'
    assert cpool.files() == ['a.qcow2', 'b.img', 'c.qcow2']

    # plain list: name and URI
    out = run('vol-list', check=0).stdout
    rows = {l.split()[0]: l.split()[1] for l in out.splitlines()[2:]}
    assert rows == {n: cpool.uri(n) if how == 'pool-xml' else rows[n]
                    for n in ('a.qcow2', 'b.img', 'c.qcow2')}
    for n, uri in rows.items():
        assert uri.startswith('gluster://') and uri.endswith('/rep3%s/%s' % (cpool.dir, n))

    # details table
    out = run('vol-list', '--details', check=0).stdout.splitlines()
    assert out[0].split() == ['Name', 'Type', 'Format', 'Capacity', 'Allocation', 'Record']
    assert set(out[1]) == {'-'}
    table = {l.split()[0]: l.split() for l in out[2:]}
    assert table['a.qcow2'][1:5] == ['network', 'qcow2', '10.00', 'GiB'], table
    assert table['b.img'][1:5] == ['network', 'raw', '1.00', 'MiB'], table
    assert table['c.qcow2'][1:5] == ['network', 'qcow2', '1.00', 'MiB'], table

    info = run('vol-info', 'c.qcow2', check=0).stdout
    assert re.search(r'^Format:\s+qcow2$', info, re.M), info
    assert re.search(r'^Capacity:\s+1\.00\s+MiB$', info, re.M), info
    assert re.search(r'^Backing:\s+b\.img \(raw\)$', info, re.M), info

    x = run('vol-dumpxml', 'c.qcow2', check=0).stdout
    _xml_wellformed(x, tmp_path)
    d = vol_xml_doc(x)
    assert (d['name'], d['type'], d['format']) == ('c.qcow2', 'network', 'qcow2')
    assert d['capacity'] == 1 * MiB
    # the backing volume's key: same host/port spelling as the volume's
    assert (d['backing_path'], d['backing_format']) == (
        d['path'].rsplit('/', 1)[0] + '/b.img', 'raw')
    assert d['mode'] == '0640'
    path = run('vol-path', 'c.qcow2', check=0).stdout.strip()
    assert path == d['path'] == d['key'] == rows['c.qcow2']

    assert run('pool-refresh', check=0).stdout == 'Pool refreshed: 3 volumes\n'
    pi = run('pool-info', check=0).stdout
    assert re.search(r'^Volume:\s+rep3$', pi, re.M), pi
    assert re.search(r'^Directory:\s+%s$' % re.escape(cpool.dir), pi, re.M), pi

    for n in ('c.qcow2', 'a.qcow2', 'b.img'):
        assert run('vol-delete', n, check=0).stdout == 'Vol %s deleted\n' % n
    assert cpool.files() == []
    assert run('vol-list', check=0).stdout.splitlines()[2:] == []


def test_cli_output_is_ascii_in_c_locale(cpool):
    """Under LC_ALL=C sizes are '1.00 MiB' with a plain space, as virsh
    prints them (g_format_size puts U+00A0 there): scripts split on ' '."""
    cpool.cli('vol-create-as', 'asc.img', '1M', check=0)
    for args in (('vol-list', '--details'), ('vol-info', 'asc.img'),
                 ('pool-info',)):
        out = cpool.cli(*args, check=0).stdout
        assert out.isascii(), '%s: %r' % (args[0], [l for l in out.splitlines()
                                                     if not l.isascii()])
    assert '1.00 MiB' in cpool.cli('vol-info', 'asc.img', check=0).stdout


def test_cli_vol_path_uri(cpool):
    """First host, port as given: like libvirt (port only when the pool
    sets one)."""
    cpool.cli('vol-create-as', 'p.img', '1M', check=0)
    h = cpool.hosts[0]
    assert cpool.cli('vol-path', 'p.img', check=0).stdout == \
        'gluster://%s:24007/rep3%s/p.img\n' % (h, cpool.dir)
    r = gfpool_cli('vol-path', '--host', h, '--volume', 'rep3', '--dir',
                   cpool.dir, 'p.img', check=0)
    assert r.stdout == 'gluster://%s/rep3%s/p.img\n' % (h, cpool.dir)
    assert cpool.cli_xml('vol-path', 'p.img', check=0).stdout == cpool.uri('p.img') + '\n'


def test_cli_exit_codes(cpool, tmp_path):
    cpool.cli('vol-create-as', 'e.img', '1M', check=0)
    # 3: no such volume
    for verb in ('vol-info', 'vol-delete', 'vol-dumpxml', 'vol-path'):
        r = cpool.cli(verb, 'nope.img', check=3)
        assert "'nope.img'" in r.stderr and 'No such file' in r.stderr, r.stderr
    # 4: exists
    r = cpool.cli('vol-create-as', 'e.img', '2M', check=4)
    assert "volume 'e.img' already exists" in r.stderr
    xml = tmp_path / 'e.xml'
    xml.write_text("<volume><name>e.img</name><capacity>1</capacity></volume>")
    cpool.cli('vol-create', str(xml), check=4)
    # 2: usage / invalid input
    cpool.cli('vol-create-as', 'x.img', check=2)
    cpool.cli('vol-create-as', 'x.img', '12 parsecs', check=2)
    cpool.cli('vol-create-as', 'x.img', '1M', '--format', 'vmdk', check=2)
    cpool.cli('vol-create-as', 'x.img', '1M', '--prealloc', 'lots', check=2)
    cpool.cli('vol-create-as', 'x.qcow2', '1M', '--format', 'qcow2',
              '--prealloc', 'full', check=2)
    cpool.cli('vol-info', check=2)
    cpool.cli('vol-info', 'a', 'b', check=2)
    cpool.cli('vol-info', '--bogus', 'e.img', check=2)
    gfpool_cli('no-such-verb', check=2)
    gfpool_cli('vol-list', '--volume', 'rep3', check=2)           # no host
    gfpool_cli('vol-list', '--host', 'h:70000', '--volume', 'rep3', check=2)
    gfpool_cli('vol-list', '--host', cpool.hosts[0], check=2)     # no volume
    assert cpool.files() == ['e.img']
    assert cpool.temp_files() == []


def test_cli_missing_pool_xml_is_usage_error(tmp_path):
    """A --pool-xml that cannot be read is invalid input (2), as a
    vol-create FILE.xml that cannot be read already is."""
    r = gfpool_cli('vol-create', '--pool-xml', str(tmp_path / 'p.xml'),
                   str(tmp_path / 'v.xml'), check=2)
    r = gfpool_cli('vol-list', '--pool-xml', str(tmp_path / 'missing.xml'))
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert 'missing.xml' in r.stderr


def test_cli_unreachable_exits_5_fast(cluster, cpool):
    base = cluster.addresses[0].rsplit('.', 1)[0]
    with Timer() as t:
        r = gfpool_cli('vol-list', '--host', base + '.200', '--volume', 'rep3',
                       check=5)
    assert t.elapsed < 5, 'refused host: %.1f s' % t.elapsed
    assert base + '.200' in r.stderr

    listener = SilentListener(base + '.202')
    try:
        with Timer() as t:
            r = gfpool_cli('vol-create-as', '--host', '%s:%d' % (listener.addr, listener.port),
                           '--volume', 'rep3', '--timeout', '1500', 'x.img', '1M',
                           check=5, timeout=30)
        assert t.elapsed < 5, 'silent host: %.1f s' % t.elapsed
        assert listener.conns, 'never connected to the silent listener'
    finally:
        listener.close()
    assert cpool.files() == []


def test_cli_dumpxml_matches_libvirtd(lpool, tmp_path):
    """The CLI and libvirtd describe the same image the same way."""
    lpool.cli('vol-create-as', 'base.img', '4M', check=0)
    lpool.cli('vol-create-as', 'top.qcow2', '1G', '--format', 'qcow2',
              '--backing-vol', 'base.img', '--backing-vol-format', 'raw', check=0)
    lpool.cli('vol-create-as', 'meta.qcow2', '8M', '--format', 'qcow2',
              '--prealloc-metadata', check=0)
    lpool.cli('vol-create-as', 'full.img', '2M', '--prealloc', 'falloc', check=0)
    lpool.refresh()
    for n in ('base.img', 'top.qcow2', 'meta.qcow2', 'full.img'):
        text = lpool.cli_xml('vol-dumpxml', n, check=0).stdout
        _xml_wellformed(text, tmp_path)
        cli = vol_xml_doc(text)
        lv = lpool.dumpxml(n)
        assert cli == lv, '%s:\nCLI      %s\nlibvirtd %s' % (n, cli, lv)
    assert lpool.dumpxml('top.qcow2')['backing_path'] == lpool.uri('base.img')


@pytest.mark.parametrize('cluster_size', [512, 64 * KiB, 2 * MiB])
def test_cli_cluster_size(cpool, tmp_path, cluster_size):
    name = 'cs%d.qcow2' % cluster_size
    cpool.cli('vol-create-as', name, '100M', '--format', 'qcow2',
              '--cluster-size', str(cluster_size), check=0)
    local = cpool.local_copy(name, tmp_path)
    r = qemu_img('check', '-f', 'qcow2', local)
    assert r.returncode == 0 and 'No errors were found' in r.stdout, r.stdout + r.stderr
    info = qemu_img_info(local, 'qcow2')
    assert info['cluster-size'] == cluster_size
    assert info['virtual-size'] == 100 * MiB


def test_cli_bad_cluster_size(cpool):
    for cs in ('1000', '256', '4M'):
        r = cpool.cli('vol-create-as', 'bad.qcow2', '1M', '--format', 'qcow2',
                      '--cluster-size', cs, check=2)
        assert 'cluster' in r.stderr.lower(), r.stderr
    assert cpool.files() == []


def test_cli_prealloc_modes(cpool, tmp_path):
    for mode in ('falloc', 'full'):
        cpool.cli('vol-create-as', mode + '.img', '8M', '--prealloc', mode, check=0)
        st = cpool.gfapi.stat(cpool.path(mode + '.img'))
        assert st.size == 8 * MiB and st.blocks * 512 >= 8 * MiB, (mode, st)
    cpool.cli('vol-create-as', 'alloc.img', '8M', '--allocation', '8M', check=0)
    assert cpool.gfapi.stat(cpool.path('alloc.img')).blocks * 512 >= 8 * MiB
    cpool.cli('vol-create-as', 'sparse.img', '8M', check=0)
    assert cpool.gfapi.stat(cpool.path('sparse.img')).blocks * 512 < 1 * MiB
    cpool.cli('vol-create-as', 'meta.qcow2', '8M', '--format', 'qcow2',
              '--prealloc', 'metadata', check=0)
    local = cpool.local_copy('meta.qcow2', tmp_path)
    r = qemu_img('map', '--output=json', '-f', 'qcow2', local)
    assert all('offset' in e for e in json.loads(r.stdout)), r.stdout


def test_cli_name_starting_with_dash(cpool):
    """'--' ends the options, so a volume may be called '-x.img'."""
    r = cpool.cli('vol-create-as', '--', '-x.img', '1M')
    assert r.returncode == 0, r.stderr
    assert cpool.files() == ['-x.img']
    cpool.cli('vol-delete', '--', '-x.img', check=0)


@pytest.mark.parametrize('uri,expect', [
    ('gluster://h/vol/dir/img',
     {'transport': 'tcp', 'server': 'h', 'volume': 'vol', 'path': 'dir/img',
      'uri': 'gluster://h/vol/dir/img'}),
    ('gluster+tcp://h:24007/vol/img',
     {'transport': 'tcp', 'server': 'h', 'port': '24007', 'volume': 'vol',
      'path': 'img', 'uri': 'gluster://h:24007/vol/img'}),
    ('gluster+unix:///vol/img?socket=/run/gd.sock',
     {'transport': 'unix', 'socket': '/run/gd.sock', 'volume': 'vol',
      'path': 'img', 'uri': 'gluster+unix:///vol/img?socket=/run/gd.sock'}),
    ('gluster://[::1]:24007/vol/a/b',
     {'transport': 'tcp', 'server': '::1', 'port': '24007', 'volume': 'vol',
      'path': 'a/b', 'uri': 'gluster://[::1]:24007/vol/a/b'}),
    ('gluster+rdma://h/v/x',
     {'transport': 'rdma', 'server': 'h', 'volume': 'v', 'path': 'x',
      'uri': 'gluster+rdma://h/v/x'}),
])
def test_uri_parse(uri, expect):
    out = gfpool_cli('uri-parse', uri, check=0).stdout
    got = dict(l.split(': ', 1) for l in out.splitlines())
    assert got == expect


@pytest.mark.parametrize('uri,why', [
    ('gluster://h/vol', 'missing image path'),
    ('http://h/vol/x', "scheme 'http'"),
    ('gluster://h:99999/v/x', 'port 99999'),
    ('', ''),
])
def test_uri_parse_invalid(uri, why):
    r = gfpool_cli('uri-parse', uri, check=2)
    assert why in r.stderr and r.stdout == ''


# ---- progress on a terminal ------------------------------------------------

def cli_on_pty(pool, verb, *args, timeout=120):
    """gfpool VERB under a pseudo-terminal as its stderr (stdout a pipe):
    (exit code, stdout, what the terminal received)."""
    master, slave = pty.openpty()
    cmd = [GFPOOL_CLI, verb] + pool_opts(pool.cluster, pool.dir, pool.volume) + \
        [str(a) for a in args]
    try:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=slave, env=dict(os.environ, LC_ALL='C'))
        os.close(slave)
        slave = None
        term = b''
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, 'gfpool %s: no end after %d s' % (verb, timeout)
            if not select.select([master], [], [], left)[0]:
                continue
            try:
                b = os.read(master, 65536)
            except OSError as e:
                # every writer gone: Linux says EIO
                if e.errno != errno.EIO:
                    raise
                break
            if not b:
                break
            term += b
        out = p.stdout.read().decode()
        p.stdout.close()
        rc = p.wait(timeout=30)
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)
    return rc, out, term.decode()


PROGRESS_RE = re.compile(r'^(\d+(?:\.\d\d)? [KMGT]?i?B) / (\d+(?:\.\d\d)? [KMGT]?i?B) +(\d+)%')


def progress_lines(term):
    """The progress line's redraws, in order (the terminal turns \\n into
    \\r\\n)."""
    assert term.startswith('\r'), repr(term[:200])
    assert term.endswith('\r\n'), repr(term[-200:])
    return [seg.strip() for seg in re.split(r'[\r\n]+', term) if seg.strip()]


def assert_progress_done(term, total):
    lines = progress_lines(term)
    for l in lines:
        assert PROGRESS_RE.match(l), (l, lines)
    pct = [int(PROGRESS_RE.match(l).group(3)) for l in lines]
    assert pct == sorted(pct), lines
    last = PROGRESS_RE.match(lines[-1])
    assert last.group(1) == last.group(2) == total and last.group(3) == '100', lines
    assert ' in ' in lines[-1], lines
    return lines


def test_cli_progress_on_terminal(cpool, tmp_path):
    """upload, download, clone (sparse: holes count) and wipe draw one line
    on a terminal, ending at 100%; the data is the same as without it."""
    src = str(tmp_path / 'src.img')
    sparse_file(src, 256 * MiB, [(0, 48 * MiB), (128 * MiB, 48 * MiB)])
    cpool.cli('vol-create-as', 'a.img', '256M', check=0)

    rc, out, term = cli_on_pty(cpool, 'vol-upload', 'a.img', src)
    assert rc == 0, term
    assert out == ''
    assert_progress_done(term, '256.00 MiB')

    rc, out, term = cli_on_pty(cpool, 'vol-upload', '--sparse', 'a.img', src)
    assert rc == 0, term
    assert_progress_done(term, '256.00 MiB')

    rc, out, term = cli_on_pty(cpool, 'vol-clone', 'a.img', 'b.img')
    assert rc == 0, term
    assert out == 'Vol b.img cloned from a.img\n'
    assert_progress_done(term, '256.00 MiB')

    back = str(tmp_path / 'back.img')
    rc, out, term = cli_on_pty(cpool, 'vol-download', '--sparse', 'b.img', back)
    assert rc == 0, term
    assert_progress_done(term, '256.00 MiB')
    assert sha256_file(back) == sha256_file(src)

    rc, out, term = cli_on_pty(cpool, 'vol-wipe', 'b.img')
    assert rc == 0, term
    assert out == 'Vol b.img wiped\n'
    assert_progress_done(term, '256.00 MiB')


def test_cli_progress_silent(cpool, tmp_path):
    """No progress with stderr a pipe, with --quiet / -q on a terminal, nor
    for a download whose data goes to the terminal."""
    src = str(tmp_path / 'src.img')
    sparse_file(src, 64 * MiB, [(0, 64 * MiB)])
    cpool.cli('vol-create-as', 'a.img', '64M', check=0)

    r = cpool.cli('vol-upload', 'a.img', src, check=0)
    assert r.stderr == '' and r.stdout == ''
    r = cpool.cli('vol-clone', 'a.img', 'b.img', check=0)
    assert r.stderr == ''
    r = cpool.cli('vol-download', 'b.img', str(tmp_path / 'b.img'), check=0)
    assert r.stderr == ''
    r = cpool.cli('vol-wipe', 'b.img', check=0)
    assert r.stderr == ''

    for verb, args in [('vol-upload', ['--quiet', 'a.img', src]),
                       ('vol-clone', ['-q', 'a.img', 'c.img']),
                       ('vol-download', ['--quiet', 'a.img', str(tmp_path / 'a.img')]),
                       ('vol-wipe', ['-q', 'c.img'])]:
        rc, out, term = cli_on_pty(cpool, verb, *args)
        assert rc == 0 and term == '', (verb, term)

    # the volume's bytes on the terminal: no line drawn in between
    master, slave = pty.openpty()
    try:
        p = subprocess.run([GFPOOL_CLI, 'vol-download', '--length', '1024'] +
                           pool_opts(cpool.cluster, cpool.dir, cpool.volume) + ['a.img', '-'],
                           stdout=slave, stderr=slave, env=dict(os.environ, LC_ALL='C'),
                           timeout=60)
        os.close(slave)
        slave = None
        term = b''
        while select.select([master], [], [], 0)[0]:
            try:
                b = os.read(master, 65536)
            except OSError:
                break
            if not b:
                break
            term += b
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)
    assert p.returncode == 0
    assert not re.search(rb'\r[0-9.]+ [KMGT]?i?B / ', term), term[-300:]
