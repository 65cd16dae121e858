# SPDX-License-Identifier: LGPL-2.1-or-later
"""A private GlusterFS cluster on loopback addresses.

Starts N glusterd on 127.A.B.1..N (random A.B per run, never 127.0.0.1),
one private directory per node under a single base dir, exactly like
GlusterFS's tests/cluster.rc (management.working-directory,
management.transport.socket.bind-address, management.run-directory,
management.glusterd-sockfile, management.logging-directory, --pid-file,
--log-file).  Volumes `rep3` (replica 3) and `single` (1 brick on node 1)
are created and started.  `python3 tests/testbed cluster-up DIR` starts
one that outlives the command (testbed/__main__.py).
"""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

from .paths import (GLUSTER, GLUSTER_LOG_DIR, GLUSTER_SOCK_DIR, GLUSTERD,
                    GLUSTERD_PORT, HERE, PYTHON)
from .process import (TestbedError, kill_pids, pid_alive, port_free,
                      proc_cmdline, proc_pids, read_pidfile, register_cleanup,
                      spawn_reaper, stop_reaper, tail, tcp_open, trace,
                      unix_open, unregister_cleanup)


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
            if all(port_free(x, GLUSTERD_PORT) and not tcp_open(
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
        trace('%s -> rc=%d %s %s' % (' '.join(cmd[4:]), p.returncode,
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
                i, proc.returncode, out, tail(self.logfile(i))))

    def _wait_glusterd(self, i, timeout=20):
        deadline = time.monotonic() + timeout
        sock = self.sockfile(i)
        addr = self.addresses[i - 1]
        while time.monotonic() < deadline:
            pid = read_pidfile(self.pidfile(i))
            if pid and not pid_alive(pid):
                raise TestbedError('glusterd %d (pid %d) died:\n%s' % (
                    i, pid, tail(self.logfile(i))))
            if (os.path.exists(sock) and unix_open(sock)
                    and tcp_open(addr, GLUSTERD_PORT)):
                return
            time.sleep(0.05)
        raise TestbedError('glusterd %d not up after %ss:\n%s' % (
            i, timeout, tail(self.logfile(i))))

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
        register_cleanup(self)
        self.started = True
        self._save_state()
        if self.reaper:
            self._reaper = spawn_reaper(
                marker=self.marker,
                rmtree=self.base_dir if self._own_base else None)
        try:
            procs = [(i, self._start_glusterd(i))
                     for i in range(1, self.nodes + 1)]
            for i, p in procs:
                self._finish_glusterd(i, p)
            for i in range(1, self.nodes + 1):
                self._wait_glusterd(i)
            trace('glusterds up %.2fs' % (time.monotonic() - t0))
            self._probe_peers(timeout)
            trace('peers connected %.2fs' % (time.monotonic() - t0))
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
                trace('bricks online %.2fs' % (time.monotonic() - t0))
                for v in ('rep3', 'single'):
                    self.probe_gfapi(v, timeout=timeout)
                trace('gfapi probes ok %.2fs' % (time.monotonic() - t0))
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
                if all(tcp_open(h, int(st[(h, p)][1]))
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
        pid = read_pidfile(self.pidfile(i))
        if pid and pid_alive(pid):
            cl = proc_cmdline(pid) or []
            if any(mark in a or a.endswith(self.pidfile(i)) for a in cl):
                pids.add(pid)
        for p in proc_pids():
            if p == os.getpid():
                continue
            cl = proc_cmdline(p)
            if cl and cl[0].split('/')[-1].startswith('gluster') and any(
                    mark in a for a in cl):
                pids.add(p)
        return pids

    def all_pids(self):
        pids = set()
        for i in range(1, self.nodes + 1):
            pids |= self.node_pids(i)
        # anything else mentioning our base dir that is a gluster process
        for p in proc_pids():
            cl = proc_cmdline(p)
            if cl and cl[0].split('/')[-1].startswith('gluster') and any(
                    self.marker in a for a in cl):
                pids.add(p)
        return pids

    def node_running(self, i):
        pid = read_pidfile(self.pidfile(i))
        return bool(pid and pid_alive(pid))

    def stop_node(self, i):
        """Kill glusterd and all brick/shd processes of node i (SIGKILL
        glusterd first so it cannot respawn anything)."""
        self.heal_pending = True
        self._collect_sockets()
        gd = read_pidfile(self.pidfile(i))
        if gd and pid_alive(gd):
            try:
                os.kill(gd, signal.SIGKILL)
            except OSError:
                pass
            kill_pids([gd], grace=0)
        kill_pids(self.node_pids(i), grace=0)
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
            lines = [l for l in tail(log, 400).splitlines()
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
            cl = proc_cmdline(p) or []
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
        gds = [read_pidfile(self.pidfile(i)) for i in range(1, self.nodes + 1)]
        kill_pids([p for p in gds if p], grace=1.0)
        kill_pids(self.all_pids(), grace=1.0)
        left = self.all_pids()
        if left:
            kill_pids(left, grace=0)
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
        unregister_cleanup(self)
        stop_reaper(self._reaper)
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

