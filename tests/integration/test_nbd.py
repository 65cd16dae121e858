# SPDX-License-Identifier: LGPL-2.1-or-later
"""nbdkit-gfpool-plugin: the pool's volumes as NBD exports over one gfapi
connection, checked with nbdkit, nbdinfo, qemu-img and qemu-io against
the test cluster (no libvirtd)."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import testbed
from testbed import make_unique_name, unavailable
from testbed.pools import REPO, gfpool_cli, pool_xml, tcp_peers

BUILD = os.environ.get('GFPOOL_BUILD_DIR') or os.path.join(REPO, 'build')
PLUGIN = os.path.join(BUILD, 'src', 'nbdkit', 'nbdkit-gfpool-plugin.so')


class Nbdkit:
    """nbdkit with our plugin on a unix socket, in the foreground (-f) as
    our child."""

    def __init__(self, workdir, pool_xml_path, *params, sock=None, env=None):
        self.sock = sock or os.path.join(str(workdir), 'nbd-%d.sock' % time.monotonic_ns())
        self.log = self.sock + '.log'
        self.proc = subprocess.Popen(
            ['nbdkit', '-f'] + (['-v'] if os.environ.get('GFPOOL_NBD_VERBOSE') else []) +
            ['-U', self.sock, PLUGIN, 'pool-xml=' + pool_xml_path] + list(params),
            stdout=open(self.log, 'w'), stderr=subprocess.STDOUT,
            env=dict(os.environ, **(env or {})))
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


# ---------------------------------------------------------------------------
# guests=libvirt: which guest a client is, from libvirt's records
# ---------------------------------------------------------------------------
QEMU_UID = 64055        # Debian's libvirt-qemu: every guest's QEMU runs as it
CLIENT = os.path.join(testbed.HERE, 'nbd_client.py')
SHIM = os.path.join(BUILD, 'tests', 'fault', 'gfapi_fault.so')
GFPOOL = os.path.join(BUILD, 'src', 'tools', 'gfpool')


class FakeLibvirt:
    """libvirt's QEMU driver records, written as libvirtd (root) writes them
    in its state dir: NAME.pid (0644, the pid) and NAME.xml (0600, a
    <domstatus pid=...> around the live <domain>). Plus a grant dir."""

    def __init__(self, base):
        self.state = os.path.join(base, 'state')
        self.grants = os.path.join(base, 'grants')
        os.makedirs(self.state, mode=0o755)
        os.makedirs(self.grants, mode=0o700)

    def record(self, name, pid, sock, chains, uuid=None, status_pid=None, mirror=None,
               in_place=False):
        """chains: one list of exports per disk, the image first then its
        backing chain; mirror: a blockcopy destination of the first disk;
        in_place: the pid file rewritten, not replaced (its lock stays)."""
        uuid = uuid or '6a1f0c9e-0000-4000-8000-%012x' % (abs(hash(name)) % (1 << 48))

        def source(export):
            return ("<source protocol='nbd' name='%s' index='1'><host transport='unix' "
                    "socket='%s'/></source>" % (export, sock))

        def chain_xml(chain):
            if not chain:
                return '<backingStore/>'
            return "<backingStore type='network'>%s%s</backingStore>" % (
                source(chain[0]), chain_xml(chain[1:]))
        disks = ''
        for i, chain in enumerate(chains):
            extra = ''
            if mirror and i == 0:
                extra = "<mirror type='network' job='copy'>%s<backingStore/></mirror>" % source(mirror)
            disks += ("<disk type='network' device='disk'><driver name='qemu' type='qcow2'/>"
                      "%s%s<target dev='vd%s' bus='virtio'/>%s</disk>"
                      % (source(chain[0]), chain_xml(chain[1:]), chr(ord('a') + i), extra))
        xml = ("<domstatus state='running' reason='booted' pid='%d'>\n"
               "  <monitor path='/nonexistent' type='unix'/>\n"
               "  <domain type='qemu' id='1'><name>%s</name><uuid>%s</uuid>"
               "<devices>%s</devices></domain>\n</domstatus>\n"
               % (status_pid or pid, name, uuid, disks))
        self._write(name + '.xml', xml, 0o600)
        if in_place:
            with open(os.path.join(self.state, name + '.pid'), 'r+') as f:
                f.truncate()
                f.write(str(pid))
        else:
            self._write(name + '.pid', str(pid), 0o644)
        return uuid

    def _write(self, fname, text, mode):
        tmp = os.path.join(self.state, '.' + fname)
        with open(tmp, 'w') as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.rename(tmp, os.path.join(self.state, fname))

    def forget(self, name):
        for ext in ('.pid', '.xml'):
            try:
                os.unlink(os.path.join(self.state, name + ext))
            except FileNotFoundError:
                pass

    def grant(self, *args, check=0, user=None):
        p = subprocess.run([GFPOOL, 'nbd-grant', '--state-dir', self.state,
                            '--grant-dir', self.grants] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=60, user=user,
                           env=dict(os.environ, LC_ALL='C'))
        if check is not None:
            assert p.returncode == check, (args, p.returncode, p.stdout, p.stderr)
        return p


class QemuLike:
    """A client as uid 64055, what every guest's QEMU runs as: started
    first, it connects only when told to (go()), so that the test can
    write the records naming its pid in between. `argv` goes on its
    command line (what the plugin must never believe)."""

    def __init__(self, sock, verb, *args, argv=(), lock_fd=None):
        lock = ['--lock-fd', str(lock_fd)] if lock_fd is not None else []
        self.p = subprocess.Popen(['/usr/bin/python3', CLIENT, sock, verb] + list(args) +
                                  ['--wait'] + lock + list(argv),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, universal_newlines=True,
                                  user=QEMU_UID, group=QEMU_UID, extra_groups=[], cwd='/',
                                  pass_fds=(lock_fd,) if lock_fd is not None else ())
        self.pid = self.p.pid
        if lock_fd is not None:
            line = self.p.stdout.readline()
            assert line.strip() == 'locked', line

    def go(self):
        out, _ = self.p.communicate('go\n', timeout=90)
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise AssertionError('client output: %r' % out)


@pytest.fixture(scope='module')
def guest_nbd(nbd_pool, tmp_path_factory):
    """nbdkit with guests=libvirt on a socket QEMU's uid may use, over a
    FakeLibvirt state dir, with the fault shim tracing every glfs_open."""
    work, pool, name = nbd_pool
    if not os.path.exists(SHIM):
        unavailable('fault shim not built: %s' % SHIM)
    for v in ('mine.raw', 'other.raw', 'base.raw', 'copy.raw'):
        cli(pool, 'vol-create-as', v, '1M')
    cli(pool, 'vol-create-as', 'secret.qcow2', '1M', '--format', 'qcow2')
    base = tempfile.mkdtemp(prefix='gfpool-guests-', dir='/tmp')
    os.chmod(base, 0o755)
    lib = FakeLibvirt(base)
    sock = os.path.join(base, 'pool.sock')
    trace = os.path.join(base, 'trace')
    n = Nbdkit(work, pool, 'guests=libvirt', 'state-dir=' + lib.state,
               'grant-dir=' + lib.grants, sock=sock,
               env={'LD_PRELOAD': SHIM, 'GFPOOL_FAULT_TRACE': trace})
    os.chown(sock, 0, QEMU_UID)
    os.chmod(sock, 0o660)
    try:
        yield lib, n, trace
    finally:
        n.stop()
        shutil.rmtree(base, ignore_errors=True)


def _opened(trace):
    """Volumes glfs_open'ed since the last call (and forget them)."""
    try:
        with open(trace) as f:
            lines = f.read().splitlines()
        os.unlink(trace)
    except FileNotFoundError:
        return []
    return sorted({os.path.basename(l.split()[1]) for l in lines
                   if l.startswith('glfs_open ') and len(l.split()) > 1})


def test_guest_opens_what_its_live_definition_names(guest_nbd):
    """A client whose pid libvirt recorded for a running domain opens the
    exports of that domain's NBD disks on this socket, their backing
    chains and a blockcopy destination, and nothing else; its export list
    holds exactly those, and listing them read no other volume's header
    (a root client's list reads and shows every volume)."""
    lib, n, trace = guest_nbd
    chains = [['mine.raw', 'base.raw']]
    for export, ok in (('mine.raw', True), ('base.raw', True), ('copy.raw', True),
                       ('other.raw', False), ('secret.qcow2', False)):
        q = QemuLike(n.sock, 'go', export)
        lib.record('vm1', q.pid, n.sock, chains, mirror='copy.raw')
        r = q.go()
        assert r['ok'] == ok, (export, r, n.output()[-2000:])
    assert "export 'other.raw': no such volume" in n.output()

    _opened(trace)
    q = QemuLike(n.sock, 'list')
    lib.record('vm1', q.pid, n.sock, chains)
    r = q.go()
    assert r['ok'] and sorted(r['exports']) == ['base.raw', 'mine.raw'], r
    assert set(_opened(trace)) <= {'base.raw', 'mine.raw'}
    # root sees everything: the trace does show a listing's header reads
    everything = json.loads(run('nbdinfo', '--list', '--json',
                                'nbd+unix:///?socket=' + n.sock).stdout)
    assert {'other.raw', 'secret.qcow2'} <= {e['export-name'] for e in everything['exports']}
    assert 'secret.qcow2' in _opened(trace)
    lib.forget('vm1')


def test_claimed_name_and_reused_pid_refused(guest_nbd):
    """What a process says about itself counts for nothing, and a pid is
    libvirt's QEMU only while it is the process libvirt recorded:
    - a client (uid 64055) with `-name guest=vm2` on its command line, vm2
      running with another pid, opens nothing;
    - a client whose pid the records name, but which started after the
      pid file was written (the recorded QEMU died, its pid was reused)
      opens nothing;
    - records that are not root's own regular files count for nothing
      (the status's pid and the pid file's must agree, no symlinks, not
      owned by another user, no group- or world-writable state dir)."""
    lib, n, trace = guest_nbd
    holder = subprocess.Popen(['sleep', '600'], user=QEMU_UID, group=QEMU_UID,
                              extra_groups=[])
    try:
        lib.record('vm2', holder.pid, n.sock, [['mine.raw']])
        q = QemuLike(n.sock, 'go', 'mine.raw', argv=['-name', 'guest=vm2,debug-threads=on'])
        r = q.go()
        assert not r['ok'], r
        q = QemuLike(n.sock, 'list', argv=['-name', 'guest=vm2'])
        r = q.go()
        assert not r['ok'] or r['exports'] == [], r

        # the pid file was written 30 s before the process at that pid started
        q = QemuLike(n.sock, 'go', 'mine.raw')
        lib.record('vm3', q.pid, n.sock, [['mine.raw']])
        old = time.time() - 30
        os.utime(os.path.join(lib.state, 'vm3.pid'), (old, old))
        r = q.go()
        assert not r['ok'], r
        assert 'started after libvirt recorded' in n.output(), n.output()[-2000:]

        # ... unless it holds the pid file's lock, as libvirt's QEMU does
        # for its whole life: then the wall clock was stepped forward
        # since the guest started, and it is that QEMU
        pidfile = os.path.join(lib.state, 'vm5.pid')
        with open(pidfile, 'w') as f:
            f.write('0')
        fd = os.open(pidfile, os.O_WRONLY)
        q = QemuLike(n.sock, 'go', 'mine.raw', lock_fd=fd)
        os.close(fd)
        lib.record('vm5', q.pid, n.sock, [['mine.raw']], in_place=True)
        os.utime(pidfile, (old, old))
        r = q.go()
        assert r['ok'], (r, n.output()[-2000:])

        # the pid file and the status disagree
        q = QemuLike(n.sock, 'go', 'mine.raw')
        lib.record('vm3', q.pid, n.sock, [['mine.raw']], status_pid=holder.pid)
        assert not q.go()['ok']

        # records that are not root's regular files
        def tamper_owner():
            os.chown(os.path.join(lib.state, 'vm3.pid'), QEMU_UID, QEMU_UID)

        def tamper_symlink():
            real = os.path.join(lib.state, 'elsewhere.xml')
            os.rename(os.path.join(lib.state, 'vm3.xml'), real)
            os.symlink(real, os.path.join(lib.state, 'vm3.xml'))

        def tamper_dir():
            os.chmod(lib.state, 0o775)
        for tamper in (tamper_owner, tamper_symlink, tamper_dir):
            q = QemuLike(n.sock, 'go', 'mine.raw')
            lib.record('vm3', q.pid, n.sock, [['mine.raw']])
            tamper()
            r = q.go()
            os.chmod(lib.state, 0o755)
            for f in ('vm3.xml', 'elsewhere.xml'):
                try:
                    os.unlink(os.path.join(lib.state, f))
                except FileNotFoundError:
                    pass
            assert not r['ok'], (tamper.__name__, r)
        # and untampered, the same steps let it in; also with the state dir
        # owned by QEMU's user, as libvirt 11 has it (the parent of its
        # channel dir)
        q = QemuLike(n.sock, 'go', 'mine.raw')
        lib.record('vm3', q.pid, n.sock, [['mine.raw']])
        os.chown(lib.state, QEMU_UID, QEMU_UID)
        try:
            assert q.go()['ok']
            # which a process of that uid may use to rename records: a
            # status counts only under its own domain's name
            q = QemuLike(n.sock, 'go', 'other.raw')
            lib.record('vm3', q.pid, n.sock, [['mine.raw']])
            lib.record('vm6', holder.pid, n.sock, [['other.raw']])
            for ext in ('.xml', '.pid'):
                os.rename(os.path.join(lib.state, 'vm3' + ext),
                          os.path.join(lib.state, 'vm6' + ext))
            assert not q.go()['ok']
        finally:
            os.chown(lib.state, 0, 0)
    finally:
        holder.kill()
        holder.wait()
        for vm in ('vm2', 'vm3', 'vm5', 'vm6'):
            lib.forget(vm)


def _grant_files(lib):
    return sorted(f for f in os.listdir(lib.grants) if not f.startswith('.'))


def test_grants_for_exports_qemu_opens_before_libvirt_saves_them(guest_nbd):
    """`gfpool nbd-grant` (root only) lets a running guest's QEMU open an
    export its live definition does not name yet, as QEMU does in
    attach-device, blockcopy and external snapshots before libvirt saves
    the status: only that QEMU instance (not a later one of the same
    domain), only until it expires, and only until the status names the
    export (the plugin then removes it). With `-- COMMAND` the grant lasts
    as long as the command."""
    lib, n, trace = guest_nbd
    q = QemuLike(n.sock, 'go', 'other.raw')
    lib.record('vm4', q.pid, n.sock, [['mine.raw']])
    p = lib.grant('vm4', n.sock, 'other.raw', check=1, user=QEMU_UID)
    assert 'root' in p.stderr, p.stderr
    lib.grant('vm4', n.sock, 'other.raw')
    granted = _grant_files(lib)
    assert len(granted) == 1, granted
    assert q.go()['ok']

    # another QEMU of the same domain (a restart): the grant was not its own
    q = QemuLike(n.sock, 'go', 'other.raw')
    lib.record('vm4', q.pid, n.sock, [['mine.raw']])
    assert not q.go()['ok']

    # expired: the grant says so itself (it would take up to a minute)
    q = QemuLike(n.sock, 'go', 'other.raw')
    lib.record('vm4', q.pid, n.sock, [['mine.raw']])
    lib.grant('vm4', n.sock, 'other.raw')
    path = os.path.join(lib.grants, _grant_files(lib)[0])
    with open(path) as f:
        text = f.read()
    assert 'expires=' in text, text
    with open(path, 'w') as f:
        f.write(re.sub(r'expires=\d+', 'expires=1', text))
    assert not q.go()['ok']
    with open(path, 'w') as f:
        f.write(text)

    # superseded: once the status names the export, the grant is gone
    q = QemuLike(n.sock, 'go', 'other.raw')
    lib.record('vm4', q.pid, n.sock, [['mine.raw']])
    lib.grant('vm4', n.sock, 'other.raw')
    lib.record('vm4', q.pid, n.sock, [['mine.raw'], ['other.raw']])
    assert q.go()['ok']
    assert _grant_files(lib) == []

    # -- COMMAND: the grant exists while the command runs, its status is ours
    holder = subprocess.Popen(['sleep', '600'], user=QEMU_UID, group=QEMU_UID,
                              extra_groups=[])
    try:
        lib.record('vm4', holder.pid, n.sock, [['mine.raw']])
        p = lib.grant('vm4', n.sock, 'copy.raw', '--', 'sh', '-c', 'ls "$0"; exit 3',
                      lib.grants, check=3)
        assert len(p.stdout.split()) == 1, p.stdout
        assert _grant_files(lib) == []
    finally:
        holder.kill()
        holder.wait()
    # a domain that does not run, an export name that is no volume name
    lib.grant('nosuchvm', n.sock, 'other.raw', check=3)
    lib.grant('vm4', n.sock, '../x', check=2)
    lib.forget('vm4')


def test_flush_does_not_stall_other_clients(nbd_pool):
    """One volume's flush is slow (its fsync held by the fault shim, as a
    brick that takes its time): meanwhile another client opens, writes,
    flushes and closes another volume, and a third opens and closes the
    slow volume itself; the held flush then completes."""
    work, pool, name = nbd_pool
    if not os.path.exists(SHIM):
        unavailable('fault shim not built: %s' % SHIM)
    cli(pool, 'vol-create-as', 'slow.raw', '1M')
    cli(pool, 'vol-create-as', 'fast.raw', '1M')
    release = str(work / ('release-%d' % time.monotonic_ns()))
    n = Nbdkit(work, pool, env={'LD_PRELOAD': SHIM, 'GFPOOL_FAULT_HOLD': 'slow.raw:' + release})
    slow = None
    try:
        slow = subprocess.Popen(['qemu-io', '-f', 'raw', '-c', 'write -P 0x11 0 64k',
                                 '-c', 'flush', n.uri('slow.raw')],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                universal_newlines=True)
        for _ in range(1200):
            if os.path.exists(release + '.held') or slow.poll() is not None:
                break
            time.sleep(0.05)
        assert os.path.exists(release + '.held'), 'the flush of slow.raw never reached fsync'
        run('qemu-io', '-f', 'raw', '-c', 'write -P 0x22 0 64k', '-c', 'flush',
            n.uri('fast.raw'), timeout=30)
        run('qemu-io', '-f', 'raw', '-r', '-c', 'read 0 4k', n.uri('slow.raw'), timeout=30)
        assert slow.poll() is None, 'the held flush ended early: ' + slow.stdout.read()
        open(release, 'w').close()
        out, _ = slow.communicate(timeout=60)
        assert slow.returncode == 0 and 'failed' not in out, out
    finally:
        open(release, 'w').close()
        if slow and slow.poll() is None:
            slow.kill()
            slow.wait()
        n.stop()


def _unit_service_directives():
    """[Service] of the packaged gfpool-nbd@.service: key -> [values]."""
    path = os.path.join(REPO, 'debian', 'nbdkit-plugin-gfpool.gfpool-nbd@.service')
    out, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith('['):
                section = line
            elif section == '[Service]' and '=' in line and not line.startswith('#'):
                k, v = line.split('=', 1)
                out.setdefault(k, []).append(v)
    return out


def test_packaged_unit_sandbox_without_systemd(nbd_pool, tmp_path):
    """What of the unit's sandbox can be applied without systemd (none
    runs here): its capability bounding set, no new privileges, a
    read-only system but its ReadWritePaths, a private /tmp (gfapi writes
    the volfile it fetched to /tmp: without one glfs_init fails with
    EROFS), under socket activation: nbdkit still reaches the cluster,
    reads libvirt's records, serves a root client and a guest's QEMU, and
    removes a superseded grant. Files live in /run, as the package's do:
    the private /tmp hides the host's."""
    work, pool, name = nbd_pool
    unit = _unit_service_directives()
    assert unit['CapabilityBoundingSet'] == ['CAP_NET_BIND_SERVICE'], unit
    assert unit['NoNewPrivileges'] == ['yes'] and unit['ProtectSystem'] == ['strict'], unit
    assert unit['ReadWritePaths'] == ['-/run/gfpool-nbd/grants'], unit
    assert unit['PrivateTmp'] == ['yes'], unit
    cli(pool, 'vol-create-as', 'sb.raw', '1M')
    cli(pool, 'vol-create-as', 'sb2.raw', '1M')
    base = tempfile.mkdtemp(prefix='gfpool-sandbox-', dir='/run')
    os.chmod(base, 0o755)
    shutil.copy(pool, os.path.join(base, 'pool.xml'))
    pool = os.path.join(base, 'pool.xml')
    lib = FakeLibvirt(base)
    sock = os.path.join(base, 'unit.sock')
    log = os.path.join(base, 'nbdkit.log')
    caps = ','.join(['-all'] + ['+' + c[len('CAP_'):].lower()
                                for c in unit['CapabilityBoundingSet'][0].split()])
    # A clone under /tmp (a developer's fresh clone) would lose its build
    # under the private /tmp: it is carried over by a bind mount, as a
    # packaged plugin under /usr needs none.
    build = os.path.dirname(os.path.realpath(PLUGIN))
    carry = ''
    if build.startswith(('/tmp/', '/var/tmp/')):
        keep = os.path.join(base, 'build')
        os.mkdir(keep)
        carry = ('mount --bind %s %s && mount -t tmpfs tmpfs /tmp && '
                 'mount -t tmpfs tmpfs /var/tmp && mkdir -p %s && mount --bind %s %s && '
                 % (build, keep, build, keep, build))
    else:
        carry = 'mount -t tmpfs tmpfs /tmp && mount -t tmpfs tmpfs /var/tmp && '
    sandbox = ('mount --bind "$1" "$1" && ' + carry +
               'mount -o remount,bind,ro / && '
               'exec setpriv --bounding-set=%s --inh-caps=-all --no-new-privs -- '
               'nbdkit --foreground %s pool-xml=%s guests=libvirt state-dir=%s grant-dir="$1"'
               % (caps, PLUGIN, pool, lib.state))
    act = subprocess.Popen(['systemd-socket-activate', '-l', sock, '--', 'unshare', '-m',
                            '--propagation', 'private', 'sh', '-c', sandbox, 'sandbox',
                            lib.grants],
                           stdout=open(log, 'w'), stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        os.chown(sock, 0, QEMU_UID)
        os.chmod(sock, 0o660)
        # root: a listing reads every header through gfapi
        p = run('nbdinfo', '--list', '--json', 'nbd+unix:///?socket=' + sock, check=False)
        assert p.returncode == 0, p.stderr + open(log).read()
        listing = json.loads(p.stdout)
        assert {'sb.raw', 'sb2.raw'} <= {e['export-name'] for e in listing['exports']}
        with open('/proc/%d/status' % act.pid) as f:
            status = f.read()
        assert 'NoNewPrivs:\t1' in status and 'CapBnd:\t0000000000000400' in status, status
        # a guest's QEMU, and a grant superseded by its status
        q = QemuLike(sock, 'go', 'sb2.raw')
        lib.record('sbvm', q.pid, sock, [['sb.raw']])
        lib.grant('sbvm', sock, 'sb2.raw')
        lib.record('sbvm', q.pid, sock, [['sb.raw'], ['sb2.raw']])
        r = q.go()
        assert r['ok'], (r, open(log).read())
        assert _grant_files(lib) == []
    finally:
        act.send_signal(signal.SIGKILL)
        act.wait(10)
        shutil.rmtree(base, ignore_errors=True)


def test_obsolete_allow_dir_checks_guests(nbd_pool):
    """allow-dir=, what drop-ins written for older packages still pass, is
    taken as guests=libvirt: a client of QEMU's uid that is no running
    domain's QEMU opens nothing (before, its command line would do)."""
    work, pool, name = nbd_pool
    base = tempfile.mkdtemp(prefix='gfpool-allowdir-', dir='/tmp')
    os.chmod(base, 0o755)
    n = Nbdkit(work, pool, 'allow-dir=' + os.path.join(base, 'gone'), sock=os.path.join(base, 's'))
    try:
        os.chown(n.sock, 0, QEMU_UID)
        os.chmod(n.sock, 0o660)
        r = QemuLike(n.sock, 'list', argv=['-name', 'guest=vm1']).go()
        assert not r['ok'] and r['exports'] == [], r
        assert 'not the QEMU of a running domain' in n.output()
    finally:
        n.stop()
        shutil.rmtree(base, ignore_errors=True)
