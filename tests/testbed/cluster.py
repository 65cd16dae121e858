#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""gfpool test bed: a private loopback GlusterFS cluster and a private libvirtd.

Run with Debian's /usr/bin/python3 (python3-libvirt lives there).

Cluster
    Starts N glusterd on 127.A.B.1..N (random A.B per run, never 127.0.0.1),
    one private directory per node under a single base dir, exactly like
    GlusterFS's tests/cluster.rc (management.working-directory,
    management.transport.socket.bind-address, management.run-directory,
    management.glusterd-sockfile, management.logging-directory,
    --pid-file, --log-file).  Volumes `rep3` (replica 3) and `single`
    (1 brick on node 1) are created and started.

Libvirtd
    A libvirtd in a private mount namespace with its own /etc/libvirt,
    /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt and /run, a
    storage-only driver dir and LIBVIRT_STORAGE_BACKEND_DIR pointing at a
    directory holding our module.

CLI
    testbed.py cluster-up DIR      start a cluster in DIR, print JSON, exit
                                   (daemons keep running; state in
                                   DIR/state.json)
    testbed.py cluster-down DIR    stop it and clean up
    testbed.py cluster-status DIR  print the state JSON
"""

import atexit
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PYTHON = '/usr/bin/python3'
GLUSTERD = shutil.which('glusterd') or '/usr/sbin/glusterd'
GLUSTER = shutil.which('gluster') or '/usr/sbin/gluster'
GLUSTER_SOCK_DIR = '/var/run/gluster'
GLUSTER_LOG_DIR = '/var/log/glusterfs'
GLUSTERD_PORT = 24007

LIBVIRT_LIBDIR = '/usr/lib/x86_64-linux-gnu/libvirt'


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


class TestbedError(RuntimeError):
    pass


def _log(msg):
    if os.environ.get('TESTBED_VERBOSE'):
        sys.stderr.write('[testbed %.3f] %s\n' % (time.time(), msg))


def _tail(path, n=40):
    try:
        with open(path, 'rb') as f:
            try:
                f.seek(-16384, os.SEEK_END)
            except OSError:
                pass
            lines = f.read().decode('utf-8', 'replace').splitlines()
        return '\n'.join(lines[-n:])
    except OSError as e:
        return '<cannot read %s: %s>' % (path, e)


def _proc_cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return [a.decode('utf-8', 'replace') for a in
                    f.read().split(b'\0') if a]
    except OSError:
        return None


def _all_pids():
    for d in os.listdir('/proc'):
        if d.isdigit():
            yield int(d)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # zombies count as dead
    try:
        with open('/proc/%d/stat' % pid) as f:
            st = f.read().rsplit(')', 1)[1].split()[0]
        return st != 'Z'
    except OSError:
        return False


def _read_pidfile(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _kill_pids(pids, grace=2.0):
    """SIGTERM, wait up to `grace`, then SIGKILL. Only the given pids."""
    pids = [p for p in set(pids) if p and p != os.getpid() and _pid_alive(p)]
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        pids = [p for p in pids if _pid_alive(p)]
        if not pids:
            return
        time.sleep(0.05)
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
        time.sleep(0.05)


def _my_mntns():
    return os.readlink('/proc/self/ns/mnt')


def _pids_in_mntns(ns):
    out = []
    for p in _all_pids():
        try:
            if os.readlink('/proc/%d/ns/mnt' % p) == ns:
                out.append(p)
        except OSError:
            pass
    return out


def _port_free(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((addr, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _tcp_open(addr, port, timeout=0.5):
    try:
        with socket.create_connection((addr, port), timeout=timeout):
            return True
    except OSError:
        return False


def _unix_open(path, timeout=0.5):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


# ---------------------------------------------------------------------------
# Cleanup registry (atexit + SIGTERM/SIGHUP)
# ---------------------------------------------------------------------------
_LIVE = []
_LIVE_LOCK = threading.Lock()
_HANDLERS_INSTALLED = False


def _cleanup_all():
    with _LIVE_LOCK:
        objs = list(reversed(_LIVE))
    for o in objs:
        try:
            o.stop()
        except Exception as e:  # pragma: no cover
            sys.stderr.write('testbed cleanup of %r failed: %s\n' % (o, e))


def _signal_handler(signum, frame):
    _cleanup_all()
    # re-raise default behaviour
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _register(obj):
    global _HANDLERS_INSTALLED
    with _LIVE_LOCK:
        if obj not in _LIVE:
            _LIVE.append(obj)
        if not _HANDLERS_INSTALLED:
            _HANDLERS_INSTALLED = True
            atexit.register(_cleanup_all)
            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGTERM, signal.SIGHUP):
                    try:
                        if signal.getsignal(sig) in (signal.SIG_DFL, None):
                            signal.signal(sig, _signal_handler)
                    except (ValueError, OSError):
                        pass


def _unregister(obj):
    with _LIVE_LOCK:
        if obj in _LIVE:
            _LIVE.remove(obj)


_REAPER_CODE = r"""
import json, os, sys, time, signal
spec = json.loads(sys.argv[1])
ppid = spec['ppid']
while True:
    time.sleep(0.5)
    try:
        os.kill(ppid, 0)
        continue
    except ProcessLookupError:
        break
    except PermissionError:
        continue
me = os.getpid()
pids = set()
for d in os.listdir('/proc'):
    if not d.isdigit() or int(d) == me:
        continue
    try:
        cl = open('/proc/%s/cmdline' % d, 'rb').read().split(b'\0')
        cl = [x.decode('utf-8', 'replace') for x in cl if x]
    except Exception:
        continue
    if not cl:
        continue
    argv0 = cl[0].rsplit('/', 1)[-1]
    if spec.get('marker') and any(argv0.startswith(p) for p in spec['argv0']) \
            and any(spec['marker'] in a for a in cl):
        pids.add(int(d))
    if spec.get('mntns'):
        try:
            if os.readlink('/proc/%s/ns/mnt' % d) == spec['mntns']:
                pids.add(int(d))
        except Exception:
            pass
socks = set()
for p in pids:
    try:
        cl = open('/proc/%d/cmdline' % p, 'rb').read().split(b'\0')
        cl = [x.decode('utf-8', 'replace') for x in cl]
        for i, a in enumerate(cl[:-1]):
            if a in ('-S', '--socket-file') and \
                    cl[i + 1].startswith('/var/run/gluster/'):
                socks.add(cl[i + 1])
    except Exception:
        pass
for p in pids:
    try:
        os.kill(p, signal.SIGKILL)
    except Exception:
        pass
time.sleep(0.5)
for s in socks:
    try:
        os.unlink(s)
    except Exception:
        pass
if spec.get('rmtree'):
    import shutil
    shutil.rmtree(spec['rmtree'], ignore_errors=True)
"""


def _spawn_reaper(marker=None, argv0=('gluster',), mntns=None, rmtree=None,
                  pass_fds=()):
    """Start a detached watchdog that, once this process has died (even by
    SIGKILL, when atexit cannot run), SIGKILLs every process whose argv[0]
    starts with one of `argv0` and whose cmdline mentions `marker`, and/or
    every process in mount namespace `mntns`; it also unlinks the
    /var/run/gluster sockets named on the killed processes' command lines
    and removes `rmtree`.  stop() terminates it."""
    spec = {'ppid': os.getpid(), 'marker': marker, 'argv0': list(argv0),
            'mntns': mntns, 'rmtree': rmtree}
    return subprocess.Popen([PYTHON, '-c', _REAPER_CODE, json.dumps(spec)],
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True,
                            pass_fds=pass_fds)


def _stop_reaper(proc):
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------------
# GlusterFS cluster
# ---------------------------------------------------------------------------
class Cluster:
    """A private N-node GlusterFS cluster on 127.A.B.{1..N}.

    Layout under base_dir (kept short: unix socket paths must be < 108):
        base/<i>/glusterd/        management.working-directory
        base/<i>/glusterd/gd.sock management.glusterd-sockfile
        base/<i>/run/gluster/     management.run-directory (pid files)
        base/<i>/log/             management.logging-directory (bricks, shd)
        base/<i>/glusterd.log     --log-file
        base/<i>/glusterd.pid     --pid-file
        base/<i>/bricks/<vol>     brick directories
        base/cli.log              gluster CLI log
        base/state.json           state for cluster-up/-down
    """

    VOLUMES = ('rep3', 'single')

    def __init__(self, base_dir=None, nodes=3, volumes=True, reaper=True,
                 volume_options=None):
        self.nodes = int(nodes)
        self._own_base = base_dir is None
        self.base_dir = base_dir
        self.addresses = []
        self.volumes = {}          # name -> list of (host, brickpath)
        self.volume_options = dict(volume_options or {})
        self.with_volumes = volumes
        self.reaper = reaper
        self._sockets_before = set()
        self._logs_before = set()
        self.created_sockets = set()
        self.started = False
        self.start_seconds = None
        self._reaper = None
        # a node was stopped since the last wait_healed: replicated
        # volumes may have entries waiting for the self-heal daemons
        self.heal_pending = False
        # start_stopped_nodes restarts nodes in threads, each saving state
        self._state_lock = threading.Lock()

    # -- paths ---------------------------------------------------------
    def node_dir(self, i):
        return os.path.join(self.base_dir, str(i))

    def sockfile(self, i):
        return os.path.join(self.node_dir(i), 'glusterd', 'gd.sock')

    def pidfile(self, i):
        return os.path.join(self.node_dir(i), 'glusterd.pid')

    def logfile(self, i):
        return os.path.join(self.node_dir(i), 'glusterd.log')

    def brick_path(self, i, vol):
        return os.path.join(self.node_dir(i), 'bricks', vol)

    @property
    def marker(self):
        return self.base_dir.rstrip('/') + '/'

    def __repr__(self):
        return '<Cluster %s %s>' % (self.base_dir, self.addresses)

    # -- address selection ---------------------------------------------
    def _pick_addresses(self):
        rnd = random.SystemRandom()
        for _ in range(200):
            a, b = rnd.randint(2, 254), rnd.randint(1, 254)
            addrs = ['127.%d.%d.%d' % (a, b, i + 1) for i in range(self.nodes)]
            if all(_port_free(x, GLUSTERD_PORT) and not _tcp_open(
                    x, GLUSTERD_PORT, 0.05) for x in addrs):
                return addrs
        raise TestbedError('no free 127.x.y.* address block for glusterd')

    # -- gluster CLI -----------------------------------------------------
    def cli(self, *args, node=1, check=True, timeout=120, xml=False):
        cmd = [GLUSTER, '--mode=script',
               '--glusterd-sock=%s' % self.sockfile(node),
               '--log-file=%s' % os.path.join(self.base_dir, 'cli.log')]
        if xml:
            cmd.append('--xml')
        cmd += [str(a) for a in args]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=timeout)
        _log('%s -> rc=%d %s %s' % (' '.join(cmd[4:]), p.returncode,
                                    p.stdout.strip()[:200], p.stderr.strip()))
        if check and p.returncode != 0:
            raise TestbedError('gluster %s (node %d) failed rc=%d: %s %s' % (
                ' '.join(map(str, args)), node, p.returncode,
                p.stdout.strip(), p.stderr.strip()))
        return p

    # -- glusterd --------------------------------------------------------
    def _glusterd_cmd(self, i):
        nd = self.node_dir(i)
        addr = self.addresses[i - 1]
        opts = [
            'management.working-directory=%s/glusterd' % nd,
            'management.transport.socket.bind-address=%s' % addr,
            'management.run-directory=%s/run/gluster' % nd,
            'management.glusterd-sockfile=%s' % self.sockfile(i),
            'management.logging-directory=%s/log' % nd,
        ]
        cmd = [GLUSTERD]
        for o in opts:
            cmd += ['--xlator-option', o]
        cmd += ['--log-file=%s' % self.logfile(i),
                '--pid-file=%s' % self.pidfile(i)]
        return cmd

    def _start_glusterd(self, i):
        nd = self.node_dir(i)
        for d in ('glusterd', 'run/gluster', 'log', 'bricks'):
            os.makedirs(os.path.join(nd, d), exist_ok=True)
        try:
            os.unlink(self.pidfile(i))
        except FileNotFoundError:
            pass
        # glusterd daemonizes itself: the foreground process exits once
        # the daemon is initialised.
        return subprocess.Popen(self._glusterd_cmd(i), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT,
                                universal_newlines=True,
                                start_new_session=True)

    def _finish_glusterd(self, i, proc, timeout=60):
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        if proc.returncode != 0:
            raise TestbedError('glusterd %d failed to start rc=%d: %s\n%s' % (
                i, proc.returncode, out, _tail(self.logfile(i))))

    def _wait_glusterd(self, i, timeout=20):
        deadline = time.monotonic() + timeout
        sock = self.sockfile(i)
        addr = self.addresses[i - 1]
        while time.monotonic() < deadline:
            pid = _read_pidfile(self.pidfile(i))
            if pid and not _pid_alive(pid):
                raise TestbedError('glusterd %d (pid %d) died:\n%s' % (
                    i, pid, _tail(self.logfile(i))))
            if (os.path.exists(sock) and _unix_open(sock)
                    and _tcp_open(addr, GLUSTERD_PORT)):
                return
            time.sleep(0.05)
        raise TestbedError('glusterd %d not up after %ss:\n%s' % (
            i, timeout, _tail(self.logfile(i))))

    # -- lifecycle ---------------------------------------------------------
    def start(self, timeout=60):
        t0 = time.monotonic()
        if self.base_dir is None:
            self.base_dir = tempfile.mkdtemp(prefix='gfp', dir='/tmp')
        else:
            os.makedirs(self.base_dir, exist_ok=True)
        self.base_dir = os.path.abspath(self.base_dir)
        if len(self.sockfile(self.nodes)) > 100:
            raise TestbedError('base dir path too long for unix sockets: %s'
                               % self.base_dir)
        self._sockets_before = self._list_dir(GLUSTER_SOCK_DIR)
        self._logs_before = self._list_tree(GLUSTER_LOG_DIR)
        self.addresses = self._pick_addresses()
        _register(self)
        self.started = True
        self._save_state()
        if self.reaper:
            self._reaper = _spawn_reaper(
                marker=self.marker,
                rmtree=self.base_dir if self._own_base else None)
        try:
            procs = [(i, self._start_glusterd(i))
                     for i in range(1, self.nodes + 1)]
            for i, p in procs:
                self._finish_glusterd(i, p)
            for i in range(1, self.nodes + 1):
                self._wait_glusterd(i)
            _log('glusterds up %.2fs' % (time.monotonic() - t0))
            self._probe_peers(timeout)
            _log('peers connected %.2fs' % (time.monotonic() - t0))
            if self.with_volumes:
                self.create_volume('rep3', replica=self.nodes,
                                   nodes=range(1, self.nodes + 1),
                                   start=False)
                self.create_volume('single', nodes=[1], start=False)
                for v in ('rep3', 'single'):
                    for k, val in self.volume_options.items():
                        self.cli('volume', 'set', v, k, val)
                    self.cli('volume', 'start', v)
                for v in ('rep3', 'single'):
                    self.wait_volume_online(v, timeout=timeout)
                _log('bricks online %.2fs' % (time.monotonic() - t0))
                for v in ('rep3', 'single'):
                    self.probe_gfapi(v, timeout=timeout)
                _log('gfapi probes ok %.2fs' % (time.monotonic() - t0))
            self._collect_sockets()
            self._save_state()
        except BaseException:
            try:
                self.stop()
            finally:
                pass
            raise
        self.start_seconds = time.monotonic() - t0
        self._save_state()
        return self

    def _probe_peers(self, timeout):
        for i in range(2, self.nodes + 1):
            self.cli('peer', 'probe', self.addresses[i - 1])
        deadline = time.monotonic() + timeout
        while True:
            ok = True
            for i in range(1, self.nodes + 1):
                out = self.cli('peer', 'status', node=i).stdout
                if out.count('Peer in Cluster (Connected)') != self.nodes - 1:
                    ok = False
                    break
            if ok:
                return
            if time.monotonic() > deadline:
                raise TestbedError('peers not connected: %s' % out)
            time.sleep(0.1)

    def create_volume(self, name, nodes, replica=None, start=True,
                      options=None):
        bricks = []
        for i in nodes:
            bp = self.brick_path(i, name)
            bricks.append('%s:%s' % (self.addresses[i - 1], bp))
        args = ['volume', 'create', name]
        if replica and replica > 1:
            args += ['replica', str(replica)]
        args += bricks + ['force']
        self.cli(*args)
        self.volumes[name] = [(self.addresses[i - 1], self.brick_path(i, name))
                              for i in nodes]
        for k, v in (options or {}).items():
            self.cli('volume', 'set', name, k, v)
        if start:
            self.cli('volume', 'start', name)
            self.wait_volume_online(name)
            self.probe_gfapi(name)
        self._save_state()

    def volume_status(self, name, node=1):
        """-> {(host, path): (online: bool, port, pid)} for bricks and
        {('Self-heal Daemon', host)...} entries for shd."""
        p = self.cli('volume', 'status', name, node=node, xml=True,
                     check=False, timeout=30)
        res = {}
        if p.returncode != 0:
            return res
        try:
            root = ET.fromstring(p.stdout)
        except ET.ParseError:
            return res
        for n in root.iter('node'):
            host = (n.findtext('hostname') or '').strip()
            path = (n.findtext('path') or '').strip()
            st = (n.findtext('status') or '0').strip() == '1'
            port = (n.findtext('port') or '').strip()
            pid = (n.findtext('pid') or '').strip()
            res[(host, path)] = (st, port, pid)
        return res

    def wait_volume_online(self, name, timeout=60, nodes=None):
        """Wait until every brick of `name` (on running nodes) is online."""
        deadline = time.monotonic() + timeout
        want = [(h, p) for h, p in self.volumes[name]
                if nodes is None or h in [self.addresses[i - 1]
                                          for i in nodes]]
        live = [i for i in range(1, self.nodes + 1) if self.node_running(i)]
        st = {}
        while time.monotonic() < deadline:
            st = self.volume_status(name, node=live[0])
            if all(st.get(k, (False,))[0] for k in want):
                # and the bricks really accept TCP on their node address
                if all(_tcp_open(h, int(st[(h, p)][1]))
                       for h, p in want if st[(h, p)][1].isdigit()):
                    return st
            time.sleep(0.1)
        raise TestbedError('volume %s bricks not online after %ss: %s' % (
            name, timeout, st))

    def probe_gfapi(self, name, timeout=30, hosts=None):
        """Write+read+unlink a file through gfapi in a throwaway process
        (which _exits without glfs_fini)."""
        hosts = hosts or self.volume_hosts(name)
        code = r'''
import os, sys, json
sys.path.insert(0, %r)
from gfapi_ctypes import Gfapi
g = Gfapi(%r, json.loads(sys.argv[1]), logfile=sys.argv[2])
p = '/.testbed-probe-%%d' %% os.getpid()
g.put(p, b'probe')
assert g.read(p) == b'probe'
g.unlink(p)
sys.stdout.flush()
os._exit(0)
''' % (HERE, name)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                p = subprocess.run(
                    [PYTHON, '-c', code, json.dumps(hosts),
                     os.path.join(self.base_dir, 'gfapi-probe.log')],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    universal_newlines=True,
                    timeout=max(1, deadline - time.monotonic()))
                if p.returncode == 0:
                    return True
                last = p.stdout
            except subprocess.TimeoutExpired as e:
                last = 'timeout: %s' % e
            time.sleep(0.2)
        raise TestbedError('gfapi probe of %s failed: %s' % (name, last))

    def volume_hosts(self, volname, port=GLUSTERD_PORT):
        """[(host, 24007), ...] for gfapi: the volume's brick hosts first,
        then every other node (all run glusterd and serve volfiles)."""
        hosts = []
        for h, _ in self.volumes.get(volname, []):
            if h not in hosts:
                hosts.append(h)
        for h in self.addresses:
            if h not in hosts:
                hosts.append(h)
        return [(h, port) for h in hosts]

    # -- node control ------------------------------------------------------
    def node_pids(self, i):
        """pids of glusterd, bricks and shd belonging to node i."""
        mark = self.node_dir(i).rstrip('/') + '/'
        pids = set()
        pid = _read_pidfile(self.pidfile(i))
        if pid and _pid_alive(pid):
            cl = _proc_cmdline(pid) or []
            if any(mark in a or a.endswith(self.pidfile(i)) for a in cl):
                pids.add(pid)
        for p in _all_pids():
            if p == os.getpid():
                continue
            cl = _proc_cmdline(p)
            if cl and cl[0].split('/')[-1].startswith('gluster') and any(
                    mark in a for a in cl):
                pids.add(p)
        return pids

    def all_pids(self):
        pids = set()
        for i in range(1, self.nodes + 1):
            pids |= self.node_pids(i)
        # anything else mentioning our base dir that is a gluster process
        for p in _all_pids():
            cl = _proc_cmdline(p)
            if cl and cl[0].split('/')[-1].startswith('gluster') and any(
                    self.marker in a for a in cl):
                pids.add(p)
        return pids

    def node_running(self, i):
        pid = _read_pidfile(self.pidfile(i))
        return bool(pid and _pid_alive(pid))

    def stop_node(self, i):
        """Kill glusterd and all brick/shd processes of node i (SIGKILL
        glusterd first so it cannot respawn anything)."""
        self.heal_pending = True
        self._collect_sockets()
        gd = _read_pidfile(self.pidfile(i))
        if gd and _pid_alive(gd):
            try:
                os.kill(gd, signal.SIGKILL)
            except OSError:
                pass
            _kill_pids([gd], grace=0)
        _kill_pids(self.node_pids(i), grace=0)
        # stale pid files confuse the restart (cf. cluster.rc kill_node)
        rd = os.path.join(self.node_dir(i), 'run')
        for root, _, files in os.walk(rd):
            for f in files:
                if f.endswith('.pid'):
                    try:
                        os.unlink(os.path.join(root, f))
                    except OSError:
                        pass
        for root, _, files in os.walk(os.path.join(self.node_dir(i),
                                                   'glusterd', 'vols')):
            for f in files:
                if f.endswith('.pid'):
                    try:
                        os.unlink(os.path.join(root, f))
                    except OSError:
                        pass

    def start_node(self, i, timeout=60):
        """Restart glusterd of node i; it restarts its bricks; wait until
        they are online."""
        self._finish_glusterd(i, self._start_glusterd(i))
        self._wait_glusterd(i)
        deadline = time.monotonic() + timeout
        # wait for peers to reconnect from this node's point of view
        while True:
            out = self.cli('peer', 'status', node=i, check=False).stdout
            up = [j for j in range(1, self.nodes + 1)
                  if j != i and self.node_running(j)]
            if out.count('Peer in Cluster (Connected)') >= len(up):
                break
            if time.monotonic() > deadline:
                raise TestbedError('node %d peers not reconnected: %s'
                                   % (i, out))
            time.sleep(0.1)
        addr = self.addresses[i - 1]
        for v, bricks in self.volumes.items():
            if any(h == addr for h, _ in bricks):
                self.wait_volume_online(
                    v, timeout=max(1, deadline - time.monotonic()),
                    nodes=[i])
        self._collect_sockets()
        self._save_state()

    def start_stopped_nodes(self):
        """Start every stopped node, together: a glusterd that has peers
        starts its bricks only after a handshake with them, so restarting
        the nodes of a fully stopped cluster one by one never brings a
        brick up."""
        down = [i for i in range(1, self.nodes + 1)
                if not self.node_running(i)]
        errors = []

        def start(i):
            try:
                self.start_node(i)
            except Exception as e:      # reported below, after the others
                errors.append(e)
        threads = [threading.Thread(target=start, args=(i,)) for i in down]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    # -- self-heal -----------------------------------------------------------
    def replicated_volumes(self):
        return [v for v, bricks in self.volumes.items() if len(bricks) > 1]

    def heal_counts(self, volume):
        """Entries waiting for heal on each brick of `volume`, or None
        while that is unknown. (`heal VOL info` cannot run on the test bed:
        glfsheal fetches its volfile over /var/run/glusterd.socket, which
        our glusterds do not create.)"""
        live = [i for i in range(1, self.nodes + 1) if self.node_running(i)]
        if not live:
            return None
        r = self.cli('volume', 'heal', volume, 'statistics', 'heal-count',
                     node=live[0], check=False, timeout=30)
        counts = [int(c) for c in re.findall(r'Number of entries:\s*(\d+)',
                                             r.stdout)]
        if r.returncode != 0 or len(counts) != len(self.volumes[volume]):
            return None
        return counts

    def wait_healed(self, volumes=None, timeout=90):
        """Trigger index heals until no brick of `volumes` (default: every
        replicated one) has entries waiting; -> seconds. A test that stops
        a node ends here, so the next test's failure never meets this
        one's leftovers: two failures before a heal are another test."""
        t0 = time.monotonic()
        for volume in volumes or self.replicated_volumes():
            kicked = 0
            while True:
                if time.monotonic() - kicked > 5:
                    # the first trigger can come before every self-heal
                    # daemon is connected again: repeat it, or the next
                    # crawl is 10 min away
                    self.cli('volume', 'heal', volume, check=False,
                             timeout=30)
                    kicked = time.monotonic()
                counts = self.heal_counts(volume)
                if counts is not None and not any(counts):
                    break
                if time.monotonic() - t0 > timeout:
                    raise TestbedError('%s not healed after %d s: %s\n%s' % (
                        volume, timeout, counts, self.heal_diagnosis(volume)))
                time.sleep(0.5)
        if volumes is None:
            self.heal_pending = False
        return time.monotonic() - t0

    def heal_diagnosis(self, volume):
        """What a heal that does not finish waits for: each brick's
        pending entries with their AFR attributes on every brick, the
        volume's status, the self-heal daemons' last complaints, and the
        processes around."""
        out = []
        r = self.cli('volume', 'status', volume, check=False, timeout=30)
        out.append('$ gluster volume status %s\n%s%s' % (volume, r.stdout,
                                                        r.stderr))
        bricks = [path for _, path in self.volumes[volume]]
        gfids = set()
        for b in bricks:
            for sub in ('xattrop', 'entry-changes', 'dirty'):
                d = os.path.join(b, '.glusterfs', 'indices', sub)
                try:
                    names = sorted(n for n in os.listdir(d)
                                   if not n.startswith(sub + '-'))
                except OSError as e:
                    names = [str(e)]
                out.append('%s: %s' % (d, names))
                gfids.update(n for n in names if len(n) == 36)
        names = self._names_of(bricks, gfids)
        for g in sorted(gfids):
            for b in bricks:
                path = self._gfid_handle(b, g)
                line = '%s on %s: names %s;' % (g, b, names.get((b, g), []))
                try:
                    if os.path.islink(path):
                        line += ' dir -> %s' % os.readlink(path)
                    else:
                        # a heal's time grows with the apparent size
                        st = os.lstat(path)
                        line += ' size %d (%d allocated)' % (
                            st.st_size, st.st_blocks * 512)
                    for a in os.listxattr(path, follow_symlinks=False):
                        if a.startswith('trusted.afr') or a == 'trusted.gfid':
                            line += ' %s=0x%s' % (a, os.getxattr(
                                path, a, follow_symlinks=False).hex())
                except OSError as e:
                    line += ' %s' % e
                out.append(line)
        for i in range(1, self.nodes + 1):
            log = os.path.join(self.node_dir(i), 'log', 'glustershd.log')
            try:
                with open(log, errors='replace') as f:
                    whole = f.read()
            except OSError:
                whole = ''
            for g, kind, since in self._heals_running(whole, gfids):
                out.append('node %d: %s self-heal of %s running since %s'
                           % (i, kind, g, since))
            lines = [l for l in _tail(log, 400).splitlines()
                     if re.search(r'\] [EW] \[', l)]
            out.append('--- node %d glustershd.log, last errors ---\n%s' % (
                i, '\n'.join(l[:300] for l in lines[-15:])))
        ps = subprocess.run(['ps', '-eo', 'pid,stat,etimes,args'],
                            stdout=subprocess.PIPE,
                            universal_newlines=True).stdout.splitlines()
        out.append('\n'.join(l[:200] for l in ps[:1] + [
            l for l in ps
            if re.search(r'gluster|nbdkit|libvirtd|qemu-system', l)]))
        return '\n'.join(out)

    @staticmethod
    def _heals_running(log_text, gfids):
        """[(gfid, kind, time)] of the heals of `gfids` a self-heal
        daemon's log shows started and not completed: still running (a
        file with holes heals 128 KiB at a time: minutes for GiBs), or
        given up without a word."""
        running = {}
        for line in log_text.splitlines():
            m = re.search(r'^\[\S+ (\S+) .*\b(performing|Completed) '
                          r'(?:granular )?(\w+) selfheal on ([0-9a-f-]{36})',
                          line)
            if not m or m.group(4) not in gfids:
                continue
            key = (m.group(4), m.group(3))
            if m.group(2) == 'performing':
                running[key] = m.group(1)
            else:
                running.pop(key, None)
        return [(g, kind, t) for (g, kind), t in sorted(running.items())]

    @staticmethod
    def _gfid_handle(brick, gfid):
        """The brick's hard link (a symlink for a directory) by gfid."""
        return os.path.join(brick, '.glusterfs', gfid[:2], gfid[2:4], gfid)

    @staticmethod
    def _names_of(bricks, gfids):
        """{(brick, gfid): [paths]}: the names a pending file has on each
        brick (its gfid handle's hard links outside .glusterfs)."""
        inodes = {}
        for b in bricks:
            for g in gfids:
                try:
                    st = os.lstat(Cluster._gfid_handle(b, g))
                    inodes[(b, st.st_dev, st.st_ino)] = g
                except OSError:
                    pass
        names = {}
        for b in bricks:
            for root, dirs, files in os.walk(b):
                if root == b:
                    dirs[:] = [d for d in dirs if d != '.glusterfs']
                for f in files:
                    path = os.path.join(root, f)
                    try:
                        st = os.lstat(path)
                    except OSError:
                        continue
                    g = inodes.get((b, st.st_dev, st.st_ino))
                    if g:
                        names.setdefault((b, g), []).append(os.path.relpath(path, b))
        return names

    # -- teardown ------------------------------------------------------------
    def _collect_sockets(self):
        """Remember /var/run/gluster sockets named on our processes'
        command lines (-S / --socket-file) so stop() can remove them."""
        if not self.base_dir:
            return
        found = set()
        for p in self.all_pids():
            cl = _proc_cmdline(p) or []
            for k, a in enumerate(cl):
                val = None
                if a in ('-S', '--socket-file') and k + 1 < len(cl):
                    val = cl[k + 1]
                elif a.startswith('--socket-file='):
                    val = a.split('=', 1)[1]
                if val and val.startswith(GLUSTER_SOCK_DIR + '/'):
                    found.add(val)
        with self._state_lock:
            self.created_sockets |= found

    @staticmethod
    def _list_dir(d):
        try:
            return set(os.path.join(d, f) for f in os.listdir(d))
        except OSError:
            return set()

    @staticmethod
    def _list_tree(d):
        out = set()
        for root, _, files in os.walk(d):
            for f in files:
                out.add(os.path.join(root, f))
        return out

    def stop(self):
        if not self.started or not self.base_dir:
            return
        self._collect_sockets()
        # glusterds first so they do not restart bricks
        gds = [_read_pidfile(self.pidfile(i)) for i in range(1, self.nodes + 1)]
        _kill_pids([p for p in gds if p], grace=1.0)
        _kill_pids(self.all_pids(), grace=1.0)
        left = self.all_pids()
        if left:
            _kill_pids(left, grace=0)
        # files glusterd wrote outside base_dir that are ours
        for s in sorted(self.created_sockets):
            if s in self._sockets_before:
                continue
            try:
                os.unlink(s)
            except OSError:
                pass
        for f in self._list_tree(GLUSTER_LOG_DIR) - self._logs_before:
            if self._log_is_ours(f):
                try:
                    os.unlink(f)
                except OSError:
                    pass
        self.started = False
        _unregister(self)
        _stop_reaper(self._reaper)
        self._reaper = None
        if self._own_base:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        else:
            # keep DIR (may hold state.json of the caller); remove our tree
            for i in range(1, self.nodes + 1):
                shutil.rmtree(self.node_dir(i), ignore_errors=True)
            for f in os.listdir(self.base_dir):
                if f in ('cli.log', 'state.json', '.state.json.tmp') or (
                        f.startswith('gfapi-') and f.endswith('.log')):
                    try:
                        os.unlink(os.path.join(self.base_dir, f))
                    except OSError:
                        pass

    def _log_is_ours(self, path):
        """A log file in /var/log/glusterfs created during our run whose
        name mentions our base dir (gluster mangles '/' into '-'),
        our volumes or our addresses."""
        name = os.path.basename(path)
        mangled = self.base_dir.strip('/').replace('/', '-')
        if mangled and mangled in name:
            return True
        for a in self.addresses:
            if a in name:
                return True
        try:
            with open(path, 'rb') as f:
                head = f.read(65536).decode('utf-8', 'replace')
            return self.marker in head
        except OSError:
            return False

    def __enter__(self):
        if not self.started:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- state ---------------------------------------------------------------
    def state(self):
        return {
            'base_dir': self.base_dir,
            'nodes': self.nodes,
            'addresses': self.addresses,
            'volumes': {v: {'bricks': ['%s:%s' % b for b in bricks],
                            'hosts': [h for h, _ in self.volume_hosts(v)],
                            'port': GLUSTERD_PORT}
                        for v, bricks in self.volumes.items()},
            'glusterd_sockets': [self.sockfile(i)
                                 for i in range(1, self.nodes + 1)],
            'glusterd_pidfiles': [self.pidfile(i)
                                  for i in range(1, self.nodes + 1)],
            'sockets_before': sorted(self._sockets_before),
            'logs_before': sorted(self._logs_before),
            'created_sockets': sorted(self.created_sockets),
            'own_base': self._own_base,
            'start_seconds': self.start_seconds,
        }

    def _save_state(self):
        if not self.base_dir or not os.path.isdir(self.base_dir):
            return
        tmp = os.path.join(self.base_dir, '.state.json.tmp')
        with self._state_lock:
            with open(tmp, 'w') as f:
                json.dump(self.state(), f, indent=1)
            os.replace(tmp, os.path.join(self.base_dir, 'state.json'))

    @classmethod
    def from_state(cls, base_dir):
        with open(os.path.join(base_dir, 'state.json')) as f:
            st = json.load(f)
        c = cls(base_dir=st['base_dir'], nodes=st['nodes'], reaper=False)
        c._own_base = st.get('own_base', False)
        c.addresses = st['addresses']
        c.volumes = {}
        for v, d in st['volumes'].items():
            c.volumes[v] = [tuple(b.split(':', 1)) for b in d['bricks']]
        c._sockets_before = set(st.get('sockets_before', ()))
        c._logs_before = set(st.get('logs_before', ()))
        c.created_sockets = set(st.get('created_sockets', ()))
        c.start_seconds = st.get('start_seconds')
        c.started = True
        return c


# ---------------------------------------------------------------------------
# Private libvirtd
# ---------------------------------------------------------------------------
QEMU_MODULE_DIR = '/usr/lib/x86_64-linux-gnu/qemu'
_PASSWD_EXTRA = 'libvirt-qemu:x:64055:64055:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin\n'
_GROUP_EXTRA = {'kvm': 'kvm:x:{gid}:libvirt-qemu\n',
                'libvirt-qemu': 'libvirt-qemu:x:64055:libvirt-qemu\n'}


def make_backend_dir(path, module, include_distro=True):
    """Populate `path` with a symlink libvirt_storage_backend_gluster.so ->
    `module` plus Debian's other storage backends (not gluster)."""
    os.makedirs(path, exist_ok=True)
    for f in os.listdir(path):
        os.unlink(os.path.join(path, f))
    if include_distro and os.path.isdir(DISTRO_BACKEND_DIR):
        for f in sorted(os.listdir(DISTRO_BACKEND_DIR)):
            if f.endswith('.so') and 'gluster' not in f:
                os.symlink(os.path.join(DISTRO_BACKEND_DIR, f),
                           os.path.join(path, f))
    if module:
        os.symlink(os.path.abspath(module),
                   os.path.join(path, 'libvirt_storage_backend_gluster.so'))
    return path


def make_file_dir(path, file_module):
    """Populate `path` (LIBVIRT_STORAGE_FILE_DIR) with Debian's storage-file
    modules, ours as libvirt_storage_file_gluster.so when `file_module` is
    given (else Debian's gluster one stays)."""
    os.makedirs(path, exist_ok=True)
    for f in os.listdir(path):
        os.unlink(os.path.join(path, f))
    if os.path.isdir(DISTRO_FILE_DIR):
        for f in sorted(os.listdir(DISTRO_FILE_DIR)):
            if f.endswith('.so') and not (file_module and 'gluster' in f):
                os.symlink(os.path.join(DISTRO_FILE_DIR, f), os.path.join(path, f))
    if file_module:
        os.symlink(os.path.abspath(file_module),
                   os.path.join(path, 'libvirt_storage_file_gluster.so'))
    return path


class Libvirtd:
    """libvirtd in a private mount namespace.

    workdir      all state: etc/, lib/, cache/, log/, run/ (mounted over the
                 system dirs inside the namespace) and sock/ (the unix
                 socket dir, reachable from outside the namespace).
    backend_dir  LIBVIRT_STORAGE_BACKEND_DIR.  If `module` is given the
                 directory is (re)populated by make_backend_dir().
    file_module  our storage-file module for LIBVIRT_STORAGE_FILE_DIR
                 (make_file_dir); 'auto': the one built next to `module`;
                 None: Debian's.
    """

    def __init__(self, workdir, backend_dir=None, with_qemu=False,
                 module=None, log_filters='1:storage 3:util 4:rpc',
                 extra_env=None, start_timeout=30, share_qemu_caps=True,
                 file_module='auto', hostname=None, host_uuid=None,
                 hosts_file=None, qemu_user=None, qemu_conf_extra='',
                 qemu_hide_modules=(), hooks=None):
        self.workdir = os.path.abspath(workdir)
        if file_module == 'auto':
            near = module and os.path.join(os.path.dirname(os.path.abspath(module)),
                                           'libvirt_storage_file_gluster.so')
            file_module = near if near and os.path.exists(near) else None
        self.file_module = file_module
        # a second "host" for migration: its own UTS namespace (hostname),
        # host UUID (libvirt refuses a migration between equal ones) and
        # /etc/hosts naming both hosts' addresses
        self.hostname = hostname
        self.host_uuid = host_uuid
        self.hosts_file = hosts_file
        # QEMU as this user (libvirt's DAC driver with dynamic_ownership
        # gives it the images); None: root
        self.qemu_user = qemu_user
        self.qemu_conf_extra = qemu_conf_extra
        # QEMU modules (e.g. block-gluster.so) its QEMUs must not find: the
        # daemon's namespace gets a copy of QEMU's module dir without them
        self.qemu_hide_modules = tuple(qemu_hide_modules)
        # {'qemu.d/NAME': script text}: libvirt hooks, in place before start
        self.hooks = dict(hooks or {})
        self.file_dir = os.path.join(self.workdir, 'storage-file')
        self.share_qemu_caps = share_qemu_caps
        self.backend_dir = os.path.abspath(
            backend_dir or os.path.join(self.workdir, 'backends'))
        self.module = module
        self.with_qemu = with_qemu
        self.log_filters = log_filters
        self.extra_env = dict(extra_env or {})
        self.start_timeout = start_timeout
        self.driver_dir = os.path.join(self.workdir, 'drivers')
        self.sock_dir = os.path.join(self.workdir, 'sock')
        self.sock = os.path.join(self.sock_dir, 'libvirt-sock')
        self.log_path = os.path.join(self.workdir, 'log', 'libvirtd.log')
        self.stderr_path = os.path.join(self.workdir, 'libvirtd.stderr')
        self.pidfile = os.path.join(self.workdir, 'libvirtd.pid')
        self.conf_path = os.path.join(self.workdir, 'etc', 'libvirt',
                                      'libvirtd.conf')
        self._unshare = None
        self.pid = None
        self._conn = None
        self.prepared = False
        self.mntns = None
        self._mntns_fd = None
        self._reaper = None

    @property
    def uri(self):
        drv = 'qemu' if self.with_qemu else 'storage'
        return '%s:///system?socket=%s' % (drv, self.sock)

    def __repr__(self):
        return '<Libvirtd %s pid=%s>' % (self.workdir, self.pid)

    # -- setup ---------------------------------------------------------------
    def _prepare(self):
        w = self.workdir
        for d in ('etc', 'lib', 'cache', 'log', 'run', 'sock', 'drivers'):
            os.makedirs(os.path.join(w, d), exist_ok=True)
        etc = os.path.join(w, 'etc', 'libvirt')
        if not os.path.isdir(etc):
            if os.path.isdir('/etc/libvirt'):
                shutil.copytree('/etc/libvirt', etc, symlinks=True)
            else:
                os.makedirs(etc)
        for d in ('lib/libvirt', 'cache/libvirt', 'log/libvirt'):
            os.makedirs(os.path.join(w, d), exist_ok=True)
        with open(self.conf_path, 'w') as f:
            f.write('# gfpool test bed\n'
                    'auth_unix_rw = "none"\n'
                    'auth_unix_ro = "none"\n'
                    'unix_sock_group = "root"\n'
                    'unix_sock_rw_perms = "0770"\n'
                    'unix_sock_dir = "%s"\n'
                    'log_outputs = "1:file:%s"\n'
                    'log_filters = "%s"\n'
                    'max_workers = 20\n'
                    'admin_max_workers = 2\n'
                    % (self.sock_dir, self.log_path, self.log_filters))
            if self.host_uuid:
                f.write('host_uuid = "%s"\n' % self.host_uuid)
        if self.with_qemu:
            self._prepare_qemu(etc)
        for rel, text in self.hooks.items():
            path = os.path.join(etc, 'hooks', rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'w') as f:
                f.write(text)
            os.chmod(path, 0o755)
        if self.qemu_hide_modules:
            mods = os.path.join(w, 'qemu-modules')
            shutil.rmtree(mods, ignore_errors=True)
            os.makedirs(mods)
            for f in os.listdir(QEMU_MODULE_DIR):
                if f not in self.qemu_hide_modules:
                    shutil.copy2(os.path.join(QEMU_MODULE_DIR, f), mods)
        # driver dir: storage only (+ qemu)
        for f in os.listdir(self.driver_dir):
            os.unlink(os.path.join(self.driver_dir, f))
        drivers = ['libvirt_driver_storage.so']
        if self.with_qemu:
            drivers.append('libvirt_driver_qemu.so')
        for d in drivers:
            os.symlink(os.path.join(DISTRO_DRIVER_DIR, d),
                       os.path.join(self.driver_dir, d))
        if self.module is not None or not os.path.isdir(self.backend_dir):
            make_backend_dir(self.backend_dir, self.module)
        self.prepared = True

    # -- QEMU ---------------------------------------------------------------
    # libvirt caches what it probed of each emulator (QMP capabilities,
    # ~10 s per binary with TCG) in /var/cache/libvirt/qemu/capabilities
    # and revalidates the cache at each start (emulator and libvirt ctimes,
    # kernel, microcode...).  Every with_qemu daemon of this process seeds
    # its private cache from the last one stopped, so only the first pays
    # the probing.  share_qemu_caps=False (or TESTBED_NO_QEMU_CAPS_SHARE=1)
    # turns it off.
    _QEMU_CAPS_SEED = None
    _QEMU_CAPS_REAPER = None

    def _qemu_caps_dir(self):
        return os.path.join(self.workdir, 'cache', 'libvirt', 'qemu',
                            'capabilities')

    def _share_qemu_caps(self):
        return self.with_qemu and self.share_qemu_caps \
            and not os.environ.get('TESTBED_NO_QEMU_CAPS_SHARE')

    def _seed_qemu_caps(self):
        seed = Libvirtd._QEMU_CAPS_SEED
        if not self._share_qemu_caps() or not seed or not os.path.isdir(seed):
            return
        dst = self._qemu_caps_dir()
        os.makedirs(dst, exist_ok=True)
        for f in os.listdir(seed):
            if f.endswith('.xml') and not os.path.exists(
                    os.path.join(dst, f)):
                shutil.copy2(os.path.join(seed, f), os.path.join(dst, f))

    def _save_qemu_caps(self):
        src = self._qemu_caps_dir()
        if not self._share_qemu_caps() or not os.path.isdir(src):
            return
        files = [f for f in os.listdir(src) if f.endswith('.xml')]
        if not files:
            return
        if Libvirtd._QEMU_CAPS_SEED is None:
            Libvirtd._QEMU_CAPS_SEED = tempfile.mkdtemp(prefix='gfpcaps',
                                                        dir='/tmp')
            atexit.register(shutil.rmtree, Libvirtd._QEMU_CAPS_SEED, True)
            # atexit does not run when this is reached from the SIGTERM
            # handler (or on SIGKILL): a watchdog removes the dir then
            Libvirtd._QEMU_CAPS_REAPER = _spawn_reaper(
                rmtree=Libvirtd._QEMU_CAPS_SEED)
        for f in files:
            try:
                shutil.copy2(os.path.join(src, f),
                             os.path.join(Libvirtd._QEMU_CAPS_SEED, f))
            except OSError:
                pass

    def qemu_log_path(self, domain):
        """Host-side path of the daemon's /var/log/libvirt/qemu/DOM.log."""
        return os.path.join(self.workdir, 'log', 'libvirt', 'qemu',
                            domain + '.log')

    def qemu_log(self, domain, n=60):
        """The last `n` lines of the domain's QEMU log (for assertion
        messages)."""
        return _tail(self.qemu_log_path(domain), n)

    def qemu_pid(self, domain):
        """pid of the domain's running QEMU (from the daemon's private
        /run/libvirt/qemu/DOM.pid), or None."""
        pid = _read_pidfile(os.path.join(self.workdir, 'run', 'qemu',
                                         domain + '.pid'))
        return pid if pid and _pid_alive(pid) else None

    def _prepare_qemu(self, etc):
        self._seed_qemu_caps()
        user = self.qemu_user or 'root'
        with open(os.path.join(etc, 'qemu.conf'), 'w') as f:
            f.write('user = "%s"\n'
                    'group = "%s"\n'
                    'stdio_handler = "file"\n'
                    'namespaces = []\n'
                    'remember_owner = 0\n'
                    'dynamic_ownership = %d\n'
                    'security_driver = "none"\n'
                    % (user, user, 1 if self.qemu_user else 0))
            f.write(self.qemu_conf_extra)
        pw = os.path.join(self.workdir, 'etc', 'passwd')
        gr = os.path.join(self.workdir, 'etc', 'group')
        with open('/etc/passwd') as f:
            passwd = f.read()
        if not re.search(r'^libvirt-qemu:', passwd, re.M):
            passwd += _PASSWD_EXTRA
        with open(pw, 'w') as f:
            f.write(passwd)
        with open('/etc/group') as f:
            group = f.read()
        if not re.search(r'^kvm:', group, re.M):
            used = set(int(l.split(':')[2]) for l in group.splitlines()
                       if l.count(':') >= 3 and l.split(':')[2].isdigit())
            gid = next(g for g in range(990, 100, -1) if g not in used)
            group += _GROUP_EXTRA['kvm'].format(gid=gid)
        if not re.search(r'^libvirt-qemu:', group, re.M):
            group += _GROUP_EXTRA['libvirt-qemu']
        with open(gr, 'w') as f:
            f.write(group)

    def _ns_script(self):
        w = self.workdir
        binds = [
            (os.path.join(w, 'etc', 'libvirt'), '/etc/libvirt'),
            (os.path.join(w, 'lib', 'libvirt'), '/var/lib/libvirt'),
            (os.path.join(w, 'cache', 'libvirt'), '/var/cache/libvirt'),
            (os.path.join(w, 'log', 'libvirt'), '/var/log/libvirt'),
        ]
        if self.with_qemu:
            binds += [(os.path.join(w, 'etc', 'passwd'), '/etc/passwd'),
                      (os.path.join(w, 'etc', 'group'), '/etc/group')]
        if self.hosts_file:
            binds.append((self.hosts_file, '/etc/hosts'))
        if self.qemu_hide_modules:
            binds.append((os.path.join(w, 'qemu-modules'), QEMU_MODULE_DIR))
        lines = ['set -e']
        if self.hostname:
            lines.append('hostname %s' % _q(self.hostname))
        for src, dst in binds:
            lines.append('mkdir -p %s 2>/dev/null || true' % _q(dst))
            lines.append('mount --bind %s %s' % (_q(src), _q(dst)))
        # private /run/libvirt: a dir of ours that survives restart() like
        # the real /run survives a daemon restart (restart(reboot=True)
        # empties it).  /run itself is left alone so that /run/gluster
        # stays the host's.
        lines.append('mkdir -p /run/libvirt')
        lines.append('mount --bind %s /run/libvirt'
                     % _q(os.path.join(w, 'run')))
        lines.append('exec libvirtd --config %s --pid-file %s'
                     % (_q(self.conf_path), _q(self.pidfile)))
        return '\n'.join(lines)

    def start(self):
        if self.pid and _pid_alive(self.pid):
            return self
        self._prepare()
        for f in (self.sock, self.sock + '-ro', self.sock + '-admin',
                  self.pidfile):
            try:
                os.unlink(f)
            except FileNotFoundError:
                pass
        env = dict(os.environ)
        make_file_dir(self.file_dir, self.file_module)
        env.update({
            'LIBVIRT_STORAGE_BACKEND_DIR': self.backend_dir,
            'LIBVIRT_STORAGE_FILE_DIR': self.file_dir,
            'LIBVIRT_DRIVER_DIR': self.driver_dir,
            'LC_ALL': 'C',
        })
        env.pop('LIBVIRT_DEFAULT_URI', None)
        env.update(self.extra_env)
        self._stderr = open(self.stderr_path, 'ab')
        self._log_offset = os.path.getsize(self.log_path) if os.path.exists(
            self.log_path) else 0
        self._unshare = subprocess.Popen(
            ['unshare', '-m'] + (['-u'] if self.hostname else []) +
            ['--propagation', 'private', 'sh', '-c', self._ns_script()],
            stdin=subprocess.DEVNULL, stdout=self._stderr,
            stderr=self._stderr, env=env, start_new_session=True)
        # unshare execs sh which execs libvirtd: same pid throughout
        self.pid = self._unshare.pid
        _register(self)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            rc = self._unshare.poll()
            if rc is not None:
                self.pid = None
                raise TestbedError(
                    'libvirtd exited rc=%d during start (backend dir %s)\n'
                    '--- stderr ---\n%s\n--- log ---\n%s' % (
                        rc, self.backend_dir, _tail(self.stderr_path),
                        _tail(self.log_path)))
            if os.path.exists(self.sock) and _unix_open(self.sock):
                try:
                    # A namespace's id is its nsfs inode number, which the
                    # kernel hands out again once the namespace is gone: a
                    # kill by id after libvirtd exited could hit another
                    # daemon's namespace. A descriptor of it keeps it (and
                    # its id) alive until stop() has killed what is left;
                    # the reaper holds one as well.
                    self._mntns_fd = os.open('/proc/%d/ns/mnt' % self.pid,
                                             os.O_RDONLY | os.O_CLOEXEC)
                    self.mntns = os.readlink('/proc/%d/ns/mnt' % self.pid)
                except OSError:
                    self.mntns = None
                if self.mntns and self.mntns != _my_mntns():
                    self._reaper = _spawn_reaper(
                        mntns=self.mntns, pass_fds=(self._mntns_fd,))
                break
            time.sleep(0.05)
        else:
            self.stop()
            raise TestbedError('libvirtd socket %s not up after %ss\n%s' % (
                self.sock, self.start_timeout, _tail(self.log_path)))
        # a quick round trip proves the driver is there
        p = self.virsh('pool-list', '--all', check=False, timeout=30)
        if p.returncode != 0:
            err = p.stderr
            self.stop()
            raise TestbedError('libvirtd up but virsh failed: %s\n%s' % (
                err, _tail(self.log_path)))
        return self

    def stop(self, timeout=10):
        self._conn_close()
        if self._unshare is not None:
            self._save_qemu_caps()
        self.last_exit = None
        self.last_stop_seconds = None
        if self._unshare is not None:
            t0 = time.monotonic()
            if self._unshare.poll() is None:
                try:
                    self._unshare.terminate()
                    self._unshare.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._unshare.kill()
                    self._unshare.wait(10)
            # libvirtd's own exit status (sh and unshare exec'ed it):
            # 0 after SIGTERM means a clean shutdown, -9 that we had to kill it.
            self.last_exit = self._unshare.returncode
            self.last_stop_seconds = time.monotonic() - t0
            self._unshare = None
        if self.mntns and self.mntns != _my_mntns():
            # everything the daemon spawned (QEMU, helpers) lives in its
            # private mount namespace: kill what is left there
            _kill_pids(_pids_in_mntns(self.mntns))
        _stop_reaper(self._reaper)
        self._reaper = None
        if self._mntns_fd is not None:
            os.close(self._mntns_fd)
            self._mntns_fd = None
        self.mntns = None
        self.pid = None
        try:
            self._stderr.close()
        except Exception:
            pass
        _unregister(self)

    def restart(self, reboot=False):
        """Stop and start again keeping all state dirs.  reboot=True
        also empties the private /run/libvirt (like a host reboot)."""
        self.stop()
        if reboot:
            rd = os.path.join(self.workdir, 'run')
            shutil.rmtree(rd, ignore_errors=True)
            os.makedirs(rd)
        self.start()
        return self

    def alive(self):
        return bool(self._unshare and self._unshare.poll() is None)

    # -- clients ----------------------------------------------------------------
    def virsh(self, *args, check=True, timeout=60, input=None):
        cmd = ['virsh', '-q', '-c', self.uri] + [str(a) for a in args]
        env = dict(os.environ, LC_ALL='C')
        env.pop('LIBVIRT_DEFAULT_URI', None)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=timeout,
                           input=input, env=env)
        if check and p.returncode != 0:
            raise TestbedError('virsh %s failed rc=%d: %s%s' % (
                ' '.join(map(str, args)), p.returncode, p.stderr, p.stdout))
        return p

    def conn(self):
        """A (cached) python3-libvirt connection to this daemon."""
        import libvirt
        if self._conn is not None:
            try:
                if self._conn.isAlive():
                    return self._conn
            except libvirt.libvirtError:
                pass
        self._conn = libvirt.open(self.uri)
        return self._conn

    def _conn_close(self):
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None

    def maps(self):
        with open('/proc/%d/maps' % self.pid) as f:
            return f.read()

    def status(self):
        """'running', or how the daemon ended: a signal (a crash, or a kill
        by something else), or an exit status."""
        if self._unshare is None:
            return 'stopped'
        rc = self._unshare.poll()
        if rc is None:
            return 'running'
        if rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = 'signal %d' % -rc
            return 'killed by %s' % name
        return 'exited with status %d' % rc

    def log_tail(self, n=60):
        """The log's last lines; for a daemon that is gone, how it ended
        (a crash and a SIGKILL from elsewhere both look like "end of file"
        to virsh) and its stderr, where glibc and GLib say why they abort."""
        text = _tail(self.log_path, n)
        state = self.status()
        if state not in ('running', 'stopped'):
            text += '\n--- libvirtd pid %s %s (a core, if any, is /core: check ' \
                    '"Core was generated by") ---\n--- stderr ---\n%s' % (
                        self.pid, state, _tail(self.stderr_path, 20))
        return text

    def thread_stacks(self, timeout=60):
        """Every thread's backtrace (gdb -batch), for a test that found the
        daemon stuck; a sentence saying why not when gdb cannot give it."""
        gdb = shutil.which('gdb')
        if not gdb:
            return '(no thread stacks: gdb is not installed)'
        if not self.pid or not _pid_alive(self.pid):
            return '(no thread stacks: libvirtd is not running)'
        try:
            p = subprocess.run([gdb, '-p', str(self.pid), '-batch', '-nx',
                                '-ex', 'thread apply all bt'],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return '(no thread stacks: gdb took more than %d s)' % timeout
        # keep the frames, not gdb's chatter about every thread it attached
        return '\n'.join(line for line in p.stdout.splitlines()
                         if line.startswith(('Thread ', '#')))

    def log_since_start(self):
        try:
            with open(self.log_path, 'rb') as f:
                f.seek(self._log_offset)
                return f.read().decode('utf-8', 'replace')
        except OSError:
            return ''

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _q(s):
    return "'" + s.replace("'", "'\\''") + "'"


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------
def _main(argv):
    import argparse
    ap = argparse.ArgumentParser(prog='testbed.py')
    sub = ap.add_subparsers(dest='cmd', required=True)
    up = sub.add_parser('cluster-up')
    up.add_argument('dir')
    up.add_argument('--nodes', type=int, default=3)
    down = sub.add_parser('cluster-down')
    down.add_argument('dir')
    stt = sub.add_parser('cluster-status')
    stt.add_argument('dir')
    a = ap.parse_args(argv)
    if a.cmd == 'cluster-up':
        d = os.path.abspath(a.dir)
        if os.path.exists(os.path.join(d, 'state.json')):
            sys.exit('%s already holds a cluster (state.json); '
                     'run cluster-down first' % d)
        c = Cluster(base_dir=d, nodes=a.nodes, reaper=False)
        c.start()
        _unregister(c)      # keep it running after we exit
        print(json.dumps(c.state(), indent=1))
        return 0
    if a.cmd == 'cluster-down':
        d = os.path.abspath(a.dir)
        try:
            c = Cluster.from_state(d)
        except FileNotFoundError:
            sys.exit('no state.json in %s' % d)
        c.stop()
        return 0
    if a.cmd == 'cluster-status':
        with open(os.path.join(os.path.abspath(a.dir), 'state.json')) as f:
            st = json.load(f)
        c = Cluster.from_state(a.dir)
        st['running_nodes'] = [i for i in range(1, c.nodes + 1)
                               if c.node_running(i)]
        print(json.dumps(st, indent=1))
        return 0


if __name__ == '__main__':
    sys.exit(_main(sys.argv[1:]))
