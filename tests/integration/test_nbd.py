"""nbdkit-gfpool-plugin: the pool's volumes as NBD exports over one gfapi
connection, checked with nbdkit, nbdinfo, qemu-img and qemu-io against
the test cluster (no libvirtd)."""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import make_unique_name, unavailable
from helpers import REPO, gfpool_cli, pool_xml, tcp_peers

BUILD = os.environ.get('GFPOOL_BUILD_DIR') or os.path.join(REPO, 'build')
PLUGIN = os.path.join(BUILD, 'src', 'storage', 'nbdkit-gfpool-plugin.so')


class Nbdkit:
    """nbdkit with our plugin on a unix socket, in the foreground (-f) as
    our child."""

    def __init__(self, workdir, pool_xml_path, *params, sock=None):
        self.sock = sock or os.path.join(str(workdir), 'nbd-%d.sock' % time.monotonic_ns())
        self.log = self.sock + '.log'
        self.proc = subprocess.Popen(
            ['nbdkit', '-f'] + (['-v'] if os.environ.get('GFPOOL_NBD_VERBOSE') else []) +
            ['-U', self.sock, PLUGIN, 'pool-xml=' + pool_xml_path] + list(params),
            stdout=open(self.log, 'w'), stderr=subprocess.STDOUT)
        for _ in range(200):
            if os.path.exists(self.sock) or self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if not os.path.exists(self.sock):
            raise AssertionError('nbdkit did not start:\n' + self.output())

    def uri(self, export):
        return 'nbd+unix:///%s?socket=%s' % (export, self.sock)

    def output(self):
        with open(self.log) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)


def run(*cmd, check=True, timeout=60):
    p = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=timeout)
    if check:
        assert p.returncode == 0, '%s: %s%s' % (' '.join(cmd), p.stdout, p.stderr)
    return p


@pytest.fixture(scope='module')
def nbd_pool(cluster, gfapi_rep3, tmp_path_factory):
    if not os.path.exists(PLUGIN):
        unavailable('nbdkit plugin not built: %s (nbdkit-plugin-dev missing?)' % PLUGIN)
    work = tmp_path_factory.mktemp('nbd')
    name = make_unique_name('nbd')
    gfapi_rep3.mkdir('/' + name)
    path = str(work / 'pool.xml')
    with open(path, 'w') as f:
        f.write(pool_xml(name, [h for h, _ in cluster.volume_hosts('rep3')],
                         directory='/' + name))
    try:
        yield work, path, name
    finally:
        gfapi_rep3.rmtree('/' + name)


def cli(pool, *args, check=0):
    return gfpool_cli(args[0], '--pool-xml', pool, *args[1:], check=check)


def test_exports_io_and_one_connection(nbd_pool, cluster, gfapi_rep3):
    """Every volume is an export (nbdinfo --list), raw exactly its size;
    qemu-img writes through one export and reads back through another
    connection the same bytes gfapi sees; extents report holes; flags; two
    clients at once share nbdkit's one gfapi client (one glusterd
    connection)."""
    work, pool, name = nbd_pool
    cli(pool, 'vol-create-as', 'r.raw', '8M')
    cli(pool, 'vol-create-as', 'q.qcow2', '16M', '--format', 'qcow2')
    n = Nbdkit(work, pool)
    try:
        listing = json.loads(run('nbdinfo', '--list', '--json',
                                 'nbd+unix:///?socket=' + n.sock).stdout)
        exports = {e['export-name']: e for e in listing['exports']}
        assert sorted(exports) == ['q.qcow2', 'r.raw'], listing
        assert exports['r.raw']['export-size'] == 8 << 20
        assert exports['r.raw'].get('description') == 'raw'
        assert exports['q.qcow2'].get('description') == 'qcow2'

        data = os.urandom(3 << 20)
        src = str(work / 'src.bin')
        with open(src, 'wb') as f:
            f.write(data)
        run('qemu-img', 'convert', '-n', '-f', 'raw', '-O', 'raw', src, n.uri('r.raw'))
        assert gfapi_rep3.read('/%s/r.raw' % name, 0, len(data)) == data
        m = json.loads(run('qemu-img', 'map', '--output=json', '-f', 'raw',
                           n.uri('r.raw')).stdout)
        assert m[0]['start'] == 0 and m[0]['data'] and m[0]['length'] >= len(data)
        assert not m[-1]['data'] and m[-1]['zero'], m
        for flag in ('multi-conn', 'fast-zero', 'trim', 'zero', 'fua', 'flush'):
            assert run('nbdinfo', '--can', flag, n.uri('r.raw'), check=False).returncode == 0, flag

        # two clients at once, one gfapi client in nbdkit
        a = subprocess.Popen(['qemu-io', '-f', 'raw', '-c', 'sleep 1500', n.uri('r.raw')],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        b = subprocess.Popen(['qemu-io', '-f', 'qcow2', '-c', 'sleep 1500', n.uri('q.qcow2')],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(0.7)
        hosts = [h for h, _ in cluster.volume_hosts('rep3')]
        peers = tcp_peers(n.proc.pid, hosts)
        a.wait(10)
        b.wait(10)
        assert [p for p in peers if p[1] == 24007] == [(hosts[0], 24007)], peers
    finally:
        n.stop()


def test_qcow2_grows_inside_its_export(nbd_pool, gfapi_rep3):
    """An NBD export cannot grow; a qcow2 export has room for its whole
    virtual disk: QEMU's qcow2 layer writes past the file's end (the file
    grows), the image passes qemu-img check through NBD and as gfapi sees
    it, with the data where QEMU put it."""
    work, pool, name = nbd_pool
    cli(pool, 'vol-create-as', 'g.qcow2', '64M', '--format', 'qcow2')
    before = gfapi_rep3.stat('/%s/g.qcow2' % name).size
    n = Nbdkit(work, pool)
    try:
        p = run('qemu-io', '-f', 'qcow2', '-c', 'write -P 0xab 1M 2M', '-c', 'write -z 8M 1M',
                '-c', 'discard 8M 1M', '-c', 'write -P 0xcd 60M 4M', '-c', 'flush',
                n.uri('g.qcow2'))
        assert 'failed' not in p.stdout + p.stderr, p.stdout + p.stderr
        run('qemu-img', 'check', '-f', 'qcow2', n.uri('g.qcow2'))
    finally:
        n.stop()
    # the file grew: read by a new client (the test's long-lived gfapi
    # client may answer a stat from its metadata cache for a while)
    local = str(work / 'g.local')
    cli(pool, 'vol-download', 'g.qcow2', local)
    assert os.path.getsize(local) > before + (6 << 20)
    run('qemu-img', 'check', local)
    p = run('qemu-io', '-f', 'qcow2', '-r', '-c', 'read -P 0xcd 60M 4M',
            '-c', 'read -P 0xab 1M 2M', '-c', 'read -P 0 8M 1M', local)
    assert 'verification failed' not in p.stdout, p.stdout


def test_bad_names_and_restricted_exports(nbd_pool):
    """Names that are not volumes (missing, '..', a path, empty) fail the
    NBD handshake with a clear reason; with export=NAME only that volume
    opens, and any other is answered as if it did not exist."""
    work, pool, name = nbd_pool
    cli(pool, 'vol-create-as', 'one.raw', '1M')
    cli(pool, 'vol-create-as', 'two.raw', '1M')
    n = Nbdkit(work, pool, 'export=one.raw')
    try:
        assert run('nbdinfo', '--size', n.uri('one.raw')).stdout.strip() == str(1 << 20)
        for bad in ('two.raw', 'missing.raw', '..', '..%2Ftwo.raw', 'a%2Fb', ''):
            p = run('nbdinfo', '--size', n.uri(bad), check=False)
            assert p.returncode != 0, bad
        out = n.output()
        assert "export 'two.raw': no such volume" in out
        assert "export 'missing.raw': no such volume" in out
        listing = json.loads(run('nbdinfo', '--list', '--json',
                                 'nbd+unix:///?socket=' + n.sock).stdout)
        assert [e['export-name'] for e in listing['exports']] == ['one.raw']
    finally:
        n.stop()
    p = subprocess.run(['nbdkit', '-f', '-U', str(work / 'x.sock'), PLUGIN,
                        'pool-xml=' + str(work / 'missing.xml')],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=30)
    assert p.returncode != 0 and 'missing.xml' in p.stdout, p.stdout


def _brick_open_flags(cluster, volume, relpath):
    """The open flags of `relpath` in every brick process of `volume`
    that has it open (from /proc/PID/fdinfo)."""
    flags = []
    for (host, brick), (_, _, pid) in cluster.volume_status(volume).items():
        if not pid.isdigit() or not brick.startswith('/'):
            continue
        # bricks open files by their gfid's hard link: match the inode
        st = os.stat(os.path.join(brick, relpath))
        fddir = '/proc/%s/fd' % pid
        for fd in os.listdir(fddir):
            try:
                fst = os.stat(os.path.join(fddir, fd))
                if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
                    continue
                with open('/proc/%s/fdinfo/%s' % (pid, fd)) as f:
                    flags.append(int(f.read().split('flags:')[1].split()[0], 8))
            except (OSError, IndexError):
                pass
    return flags


def test_cache_none_opens_with_o_direct(nbd_pool, cluster, gfapi_rep3):
    """cache=none: every brick holds the volume open with O_DIRECT while a
    client uses it (cache=writeback: none does), the export announces
    512-byte blocks, and a client's unaligned write still lands (QEMU
    aligns it); a raw volume of a size that is not whole sectors is served
    whole, without O_DIRECT; a cache value that is neither fails at
    start."""
    work, pool, name = nbd_pool
    cli(pool, 'vol-create-as', 'd.raw', '4M')
    rel = '%s/d.raw' % name
    for cache, direct in (('none', True), ('writeback', False)):
        n = Nbdkit(work, pool, 'cache=' + cache)
        try:
            info = json.loads(run('nbdinfo', '--json', n.uri('d.raw')).stdout)
            export = info['exports'][0]
            assert export.get('block_size_minimum', 1) == (512 if direct else 1), export
            run('qemu-io', '-f', 'raw', '-c', 'write -P 0x%x 1000 3000' % (0x40 + direct),
                '-c', 'flush', n.uri('d.raw'))
            holder = subprocess.Popen(['qemu-io', '-f', 'raw', '-c', 'sleep 1500', n.uri('d.raw')],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            time.sleep(0.7)
            flags = _brick_open_flags(cluster, 'rep3', rel)
            holder.wait(10)
            assert len(flags) == 3, (cache, flags)
            assert all(bool(f & os.O_DIRECT) == direct for f in flags), (cache, [oct(f) for f in flags])
            assert gfapi_rep3.read('/' + rel, 1000, 3000) == bytes([0x40 + direct]) * 3000
            assert gfapi_rep3.read('/' + rel, 0, 1000) == b'\0' * 1000
        finally:
            n.stop()
    # a raw volume ending in a partial sector is served whole, without
    # O_DIRECT; a qcow2 export (sized by the plugin) is whole pages
    cli(pool, 'vol-create-as', 'odd.raw', '1000001B')
    cli(pool, 'vol-create-as', 'cn.qcow2', '4M', '--format', 'qcow2')
    n = Nbdkit(work, pool, 'cache=none')
    try:
        odd = json.loads(run('nbdinfo', '--json', n.uri('odd.raw')).stdout)['exports'][0]
        assert odd['export-size'] == 1000001, odd
        assert odd.get('block_size_minimum', 1) == 1, odd
        run('qemu-io', '-f', 'raw', '-c', 'write -P 0x6f 999936 65', '-c', 'flush',
            n.uri('odd.raw'))
        assert gfapi_rep3.read('/%s/odd.raw' % name, 999936, 65) == b'\x6f' * 65
        q = json.loads(run('nbdinfo', '--json', n.uri('cn.qcow2')).stdout)['exports'][0]
        assert q['export-size'] % 4096 == 0 and q['block_size_minimum'] == 512, q
        run('qemu-io', '-f', 'qcow2', '-c', 'write -P 0x71 1M 64k', n.uri('cn.qcow2'))
        p = run('qemu-io', '-f', 'qcow2', '-r', '-c', 'read -P 0x71 1M 64k', n.uri('cn.qcow2'))
        assert 'verification failed' not in p.stdout, p.stdout
    finally:
        n.stop()
    p = subprocess.run(['nbdkit', '-f', '-U', str(work / 'c.sock'), PLUGIN,
                        'pool-xml=' + pool, 'cache=unsafe'],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=30)
    assert p.returncode != 0 and 'cache=unsafe: none or writeback' in p.stdout, p.stdout


def test_acknowledged_writes_survive_a_killed_nbdkit(nbd_pool, gfapi_rep3):
    """qemu-io writes and flushes through nbdkit, which is then killed
    (SIGKILL): what the flush acknowledged is on the volume, as gfapi reads
    it; a new nbdkit serves the same bytes."""
    work, pool, name = nbd_pool
    cli(pool, 'vol-create-as', 'k.raw', '4M')
    n = Nbdkit(work, pool)
    try:
        run('qemu-io', '-f', 'raw', '-c', 'write -P 0x5a 0 1M', '-c', 'flush', n.uri('k.raw'))
    finally:
        n.stop(signal.SIGKILL)
    assert gfapi_rep3.read('/%s/k.raw' % name, 0, 1 << 20) == b'\x5a' * (1 << 20)
    n = Nbdkit(work, pool)
    try:
        p = run('qemu-io', '-f', 'raw', '-r', '-c', 'read -P 0x5a 0 1M', n.uri('k.raw'))
        assert 'verification failed' not in p.stdout
    finally:
        n.stop()


def _unit_exec_start():
    """ExecStart of the packaged gfpool-nbd@.service, as a list."""
    import shlex
    path = os.path.join(REPO, 'debian', 'nbdkit-plugin-gfpool.gfpool-nbd@.service')
    with open(path) as f:
        for line in f:
            if line.startswith('ExecStart='):
                return shlex.split(line[len('ExecStart='):])
    raise AssertionError('no ExecStart in ' + path)


def test_packaged_unit_under_socket_activation(nbd_pool, gfapi_rep3):
    """The command line of gfpool-nbd@.service, with this build's plugin
    and the test pool, started by socket activation as systemd would
    (systemd-socket-activate): clients connect to the socket it was
    handed; after SIGKILL and a new activation on the same socket path the
    data written and flushed before is served again."""
    work, pool, name = nbd_pool
    cli(pool, 'vol-create-as', 'u.raw', '2M')
    sock = str(work / 'unit.sock')
    argv = []
    for a in _unit_exec_start():
        if a == 'gfpool':
            a = PLUGIN
        elif a.startswith('pool-xml='):
            a = 'pool-xml=' + pool
        elif a.startswith('allow-dir='):
            os.makedirs(sock + '.allow', exist_ok=True)
            a = 'allow-dir=' + sock + '.allow'
        argv.append(a)
    assert argv[0].endswith('/nbdkit') and '--foreground' in argv, argv
    for round_ in range(2):
        if os.path.exists(sock):
            os.unlink(sock)
        act = subprocess.Popen(['systemd-socket-activate', '-l', sock, '--'] + argv,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            for _ in range(100):
                if os.path.exists(sock):
                    break
                time.sleep(0.05)
            uri = 'nbd+unix:///u.raw?socket=' + sock
            if round_ == 0:
                run('qemu-io', '-f', 'raw', '-c', 'write -P 0x33 0 1M', '-c', 'flush', uri)
            p = run('qemu-io', '-f', 'raw', '-r', '-c', 'read -P 0x33 0 1M', uri)
            assert 'verification failed' not in p.stdout
        finally:
            act.send_signal(signal.SIGKILL)
            act.wait(10)
    assert gfapi_rep3.read('/%s/u.raw' % name, 0, 1 << 20) == b'\x33' * (1 << 20)
