# SPDX-License-Identifier: LGPL-2.1-or-later
"""gfpool test bed, locked down: a GlusterFS cluster with TLS on management
and on the I/O path, privileged source ports only, and clients checked by
their certificate's CN.

Debian's GlusterFS takes its TLS files and its management-TLS switch from
fixed paths that no glusterd option moves (management.working-directory
included):

    SSL_CERT_PATH/glusterfs.pem, .key, .ca
        the socket transport's certificate, key and CA list, SSL_CERT_PATH
        compiled in: /usr/lib/ssl on Debian 12 (openssl's OPENSSLDIR),
        /etc/ssl on Debian 13 (its package sets it); read by glusterd,
        bricks, self-heal daemons and every gfapi client (libvirtd's
        modules, the gfpool CLI, nbdkit, qemu-img, QEMU)
    /var/lib/glusterd/secure-access
        management TLS on (GLUSTERD_DEFAULT_WORKDIR): glusterd, every
        glusterfs process, gfapi's glfs_init, the gluster CLI (which still
        talks plain over glusterd's unix socket: the socket transport
        never uses TLS on AF_UNIX)

So nothing here touches the machine's own: one holder process keeps a
private mount namespace in which a copy of SSL_CERT_PATH (with the
hypervisor's certificate) and a private /var/lib/glusterd (secure-access)
are bind-mounted. Each node's glusterd runs in a namespace of its own
under it with that node's certificate (its bricks and self-heal daemon
inherit it); clients under test run in the holder's namespace (`ns_cmd`),
or in one with the same binds (`TlsLibvirtd`). Other identities (no
certificate, another CA, a CN not allowed, a key a non-root user can read)
are a namespace away: `ns_cmd(argv, identity=...)`.

    python3 tests/testbed tls-cluster-up DIR     start one, print JSON,
                                                 keep it running
    python3 tests/testbed tls-cluster-down DIR   stop it
"""

import glob
import io
import json
import os
import pickle
import re
import shutil
import struct
import subprocess
import tempfile
import time

from .cluster import Cluster
from .libvirtd import Libvirtd
from .paths import HERE, PYTHON
from .process import (TestbedError, kill_pids, pid_alive, pids_in_mntns,
                      shell_quote, spawn_reaper, stop_reaper, trace)



def gluster_ssl_dir():
    """SSL_CERT_PATH of the installed GlusterFS: where its socket
    transport reads glusterfs.pem (the string compiled into it)."""
    for so in sorted(glob.glob('/usr/lib/*/glusterfs/*/rpc-transport/socket.so')):
        with open(so, 'rb') as f:
            m = re.search(rb'\0(/[\x21-\x7e]+)/glusterfs\.pem\0', f.read())
        if m:
            return m.group(1).decode()
    return '/usr/lib/ssl'


SSL_DIR = gluster_ssl_dir()
GLUSTERD_DIR = '/var/lib/glusterd'
SECURE_ACCESS = GLUSTERD_DIR + '/secure-access'
DOMAIN = 'gfpool.test'
# the hypervisor: libvirtd, the CLI, nbdkit, qemu-img, QEMU
CLIENT_CN = 'hypervisor.' + DOMAIN
QEMU_UID = 64055


def node_cn(i):
    return 'node%d.%s' % (i, DOMAIN)


def lockdown_options(allowed_cns):
    """What an administrator sets on a volume to lock its I/O path down:
    TLS both ways, only the named certificates, privileged source ports
    only (clients bind them only with client.bind-insecure off: without
    it server.allow-insecure off refuses every client, root included)."""
    return {
        'client.ssl': 'on',
        'server.ssl': 'on',
        'auth.ssl-allow': ','.join(allowed_cns),
        'server.allow-insecure': 'off',
        'client.bind-insecure': 'off',
    }


def _openssl(*args, cwd):
    p = subprocess.run(['openssl'] + list(args), cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    if p.returncode != 0:
        raise TestbedError('openssl %s: %s' % (' '.join(args), p.stdout))


class CertificateAuthority:
    """A CA of the test's own (EC P-256, valid a few days) and the
    certificates it signs, in `directory`."""

    def __init__(self, directory, name):
        self.dir = directory
        self.name = name
        os.makedirs(directory, exist_ok=True)
        self.cert = os.path.join(directory, name + '-ca.pem')
        self.key = os.path.join(directory, name + '-ca.key')
        _openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt',
                 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '7',
                 '-subj', '/CN=%s test CA' % name, '-keyout', self.key,
                 '-out', self.cert, cwd=directory)

    def issue(self, cn):
        """-> (certificate path, key path) for a new key with CN `cn`."""
        base = os.path.join(self.dir, '%s-%s' % (self.name, cn))
        _openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
                 '-nodes', '-subj', '/CN=' + cn, '-keyout', base + '.key',
                 '-out', base + '.csr', cwd=self.dir)
        _openssl('x509', '-req', '-in', base + '.csr', '-CA', self.cert,
                 '-CAkey', self.key, '-set_serial', str(int.from_bytes(os.urandom(8), 'big')),
                 '-days', '7', '-out', base + '.pem', cwd=self.dir)
        return base + '.pem', base + '.key'


def make_ssl_dir(path, cert=None, key=None, cas=(), key_owner=None):
    """A copy of SSL_DIR (its links and modes kept) holding
    glusterfs.pem / .key / .ca as GlusterFS wants them: the key 0600,
    root's unless `key_owner` (uid) says otherwise."""
    shutil.copytree(SSL_DIR, path, symlinks=True)
    if cert:
        shutil.copyfile(cert, os.path.join(path, 'glusterfs.pem'))
    if key:
        k = os.path.join(path, 'glusterfs.key')
        shutil.copyfile(key, k)
        os.chmod(k, 0o600)
        if key_owner is not None:
            os.chown(k, key_owner, key_owner)
    if cas:
        with open(os.path.join(path, 'glusterfs.ca'), 'w') as out:
            for ca in cas:
                with open(ca) as f:
                    out.write(f.read())
    return path


class TlsCluster(Cluster):
    """A testbed.Cluster locked down from its start: management TLS
    (secure-access), volumes with `lockdown_options` allowing the nodes'
    and the hypervisor's CNs. Volume `rep3` only, unless told otherwise.

    Identities (ssl dirs under base/tls/, `ns_cmd(identity=)`):
        node1..N   each node's certificate (its glusterd, bricks, shd)
        client     the hypervisor's: CN hypervisor.gfpool.test
        nocert     the CA only, no certificate or key
        stranger   a certificate from another CA (which also trusts ours)
        intruder   a certificate from our CA whose CN is not allowed
        client-<uid>  the hypervisor's, key owned by uid (a non-root client
                   that has the key: what is left is the ports)
    """

    VOLUMES = ('rep3',)

    def __init__(self, base_dir=None, nodes=3, volumes=('rep3',), reaper=True,
                 secure_management=True):
        super().__init__(base_dir=base_dir, nodes=nodes, volumes=False,
                         reaper=reaper)
        self.tls_volumes = tuple(volumes)
        self.secure_management = secure_management
        self.holder = None
        self.holder_pid = None
        self.mntns = None
        self._ns_reaper = None

    # -- paths -------------------------------------------------------------
    @property
    def tls_dir(self):
        return os.path.join(self.base_dir, 'tls')

    def ssl_dir(self, identity):
        return os.path.join(self.tls_dir, 'ssl-' + identity)

    @property
    def glusterd_dir(self):
        """What the namespace sees as /var/lib/glusterd."""
        return os.path.join(self.tls_dir, 'var-lib-glusterd')

    def allowed_cns(self):
        return [node_cn(i) for i in range(1, self.nodes + 1)] + [CLIENT_CN]

    # -- identities ----------------------------------------------------------
    def _make_identities(self):
        os.makedirs(self.tls_dir, exist_ok=True)
        os.chmod(self.tls_dir, 0o755)
        ca = CertificateAuthority(os.path.join(self.tls_dir, 'pki'), 'gfpool')
        other = CertificateAuthority(os.path.join(self.tls_dir, 'pki'), 'other')
        os.chmod(os.path.join(self.tls_dir, 'pki'), 0o700)
        for i in range(1, self.nodes + 1):
            make_ssl_dir(self.ssl_dir('node%d' % i), *ca.issue(node_cn(i)), cas=[ca.cert])
        client = ca.issue(CLIENT_CN)
        make_ssl_dir(self.ssl_dir('client'), *client, cas=[ca.cert])
        make_ssl_dir(self.ssl_dir('client-%d' % QEMU_UID), *client, cas=[ca.cert],
                     key_owner=QEMU_UID)
        make_ssl_dir(self.ssl_dir('nocert'), cas=[ca.cert])
        make_ssl_dir(self.ssl_dir('stranger'), *other.issue(CLIENT_CN),
                     cas=[ca.cert, other.cert])
        make_ssl_dir(self.ssl_dir('intruder'), *ca.issue('intruder.' + DOMAIN),
                     cas=[ca.cert])
        # a private /var/lib/glusterd: secure-access, and the option groups
        # `gluster volume set VOL group NAME` reads from there
        os.makedirs(self.glusterd_dir)
        groups = os.path.join(GLUSTERD_DIR, 'groups')
        if os.path.isdir(groups):
            shutil.copytree(groups, os.path.join(self.glusterd_dir, 'groups'))
        if self.secure_management:
            self._write_secure_access()

    def _write_secure_access(self):
        with open(os.path.join(self.glusterd_dir, 'secure-access'), 'w') as f:
            f.write('option transport.socket.ssl-cert-depth 1\n')

    def switch_management_tls(self, on=True):
        """What the administrator does to switch management TLS: the
        secure-access file on every server and client (here one file all
        of them see), then every glusterd restarted at once (with their
        bricks and self-heal daemons: they read it at their start too)."""
        if on:
            self._write_secure_access()
        else:
            os.unlink(os.path.join(self.glusterd_dir, 'secure-access'))
        self.secure_management = on
        for i in range(1, self.nodes + 1):
            self.stop_node(i)
        self.start_stopped_nodes()

    # -- the namespace -------------------------------------------------------
    def binds(self, identity='client'):
        """[(source, target)]: the bind mounts of a namespace of `identity`."""
        return [(self.ssl_dir(identity), SSL_DIR),
                (self.glusterd_dir, GLUSTERD_DIR)]

    def _start_holder(self):
        lines = ['set -e']
        for src, dst in self.binds():
            lines.append('mount --bind %s %s' % (shell_quote(src), shell_quote(dst)))
        lines += ['echo up', 'exec sleep infinity']
        self.holder = subprocess.Popen(
            ['unshare', '-m', '--propagation', 'private', 'sh', '-c', '\n'.join(lines)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            universal_newlines=True, start_new_session=True)
        line = self.holder.stdout.readline()
        if line.strip() != 'up':
            self.holder.kill()
            raise TestbedError('cannot set up the TLS namespace: %s%s' % (
                line, self.holder.stdout.read()))
        self.holder_pid = self.holder.pid
        self.mntns = os.readlink('/proc/%d/ns/mnt' % self.holder_pid)
        if self.reaper:
            # whatever runs in the namespace when this process dies
            self._ns_reaper = spawn_reaper(mntns=self.mntns)

    def ns_cmd(self, argv, identity='client', uid=None, secure_access=True):
        """argv run in the cluster's namespace as `identity` (a namespace
        of its own under the holder's for any but 'client'), as `uid`
        (with that gid, no supplementary groups) when given; without
        management TLS (an empty /var/lib/glusterd) when not
        secure_access."""
        # -r: the holder's root, not the namespace's (a chroot: scripts/in-root.sh)
        cmd = ['nsenter', '-t', str(self.holder_pid), '-m', '-r', '--']
        if identity != 'client' or not secure_access:
            mounts = 'mount --bind "$0" %s' % SSL_DIR
            if not secure_access:
                mounts += ' && mount -t tmpfs gfpool-no-secure-access %s' % GLUSTERD_DIR
            cmd += ['unshare', '-m', '--propagation', 'private', 'sh', '-c',
                    mounts + ' && exec "$@"', self.ssl_dir(identity)]
        if uid is not None:
            cmd += ['setpriv', '--reuid=%d' % uid, '--regid=%d' % uid,
                    '--clear-groups']
        return cmd + [str(a) for a in argv]

    def ns_run(self, argv, identity='client', uid=None, timeout=120, env=None,
               check=False, secure_access=True):
        p = subprocess.run(self.ns_cmd(argv, identity, uid, secure_access),
                           stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True,
                           timeout=timeout, env=dict(os.environ, LC_ALL='C', **(env or {})))
        if check and p.returncode != 0:
            raise TestbedError('%s (as %s) failed rc=%d: %s%s' % (
                ' '.join(map(str, argv)), identity, p.returncode, p.stdout, p.stderr))
        return p

    # -- testbed.Cluster, in the namespace ----------------------------------
    def _glusterd_cmd(self, i):
        return self.ns_cmd(super()._glusterd_cmd(i), identity='node%d' % i)

    def probe_gfapi(self, name, timeout=30, hosts=None):
        """The base's probe, as the hypervisor in the namespace."""
        hosts = hosts or self.volume_hosts(name)
        code = ('import sys, json, os; sys.path.insert(0, %r)\n'
                'from gfapi_ctypes import Gfapi\n'
                'g = Gfapi(%r, json.loads(sys.argv[1]), logfile=sys.argv[2])\n'
                'p = "/.testbed-probe-%%d" %% os.getpid()\n'
                'g.put(p, b"probe"); assert g.read(p) == b"probe"; g.unlink(p)\n'
                'sys.stdout.flush(); os._exit(0)\n' % (HERE, name))
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                p = self.ns_run([PYTHON, '-c', code, json.dumps(hosts),
                                 os.path.join(self.base_dir, 'gfapi-probe.log')],
                                timeout=max(1, deadline - time.monotonic()))
                if p.returncode == 0:
                    return True
                last = p.stdout + p.stderr
            except subprocess.TimeoutExpired as e:
                last = 'timeout: %s' % e
            time.sleep(0.2)
        raise TestbedError('gfapi probe of %s over TLS failed: %s' % (name, last))

    def create_volume(self, name, nodes, replica=None, start=True, options=None,
                      locked=True):
        """testbed.Cluster.create_volume, locked down unless locked=False."""
        opts = dict(lockdown_options(self.allowed_cns()) if locked else {})
        opts.update(options or {})
        super().create_volume(name, nodes, replica=replica, start=start, options=opts)

    def lock_down(self, volume, restart=True):
        """What the administrator does to a running open volume: the
        lockdown options, then stop and start it (the bricks take TLS
        only at their start)."""
        for k, v in lockdown_options(self.allowed_cns()).items():
            self.cli('volume', 'set', volume, k, v)
        if restart:
            self.cli('volume', 'stop', volume)
            self.cli('volume', 'start', volume)
            self.wait_volume_online(volume)

    def start(self, timeout=60):
        if self.base_dir is None:
            self.base_dir = tempfile.mkdtemp(prefix='gfpt', dir='/tmp')
            self._own_base = True
        os.makedirs(self.base_dir, exist_ok=True)
        self.base_dir = os.path.abspath(self.base_dir)
        try:
            t0 = time.monotonic()
            self._make_identities()
            self._start_holder()
            trace('TLS identities and namespace %.2fs' % (time.monotonic() - t0))
            super().start(timeout=timeout)
            for v in self.tls_volumes:
                if v == 'rep3':
                    self.create_volume('rep3', nodes=range(1, self.nodes + 1),
                                       replica=self.nodes)
                else:
                    self.create_volume(v, nodes=[1])
        except BaseException:
            self.stop()
            raise
        self._save_state()
        return self

    def stop(self):
        own = self._own_base
        self._own_base = False      # the base's stop must not remove it yet
        try:
            super().stop()
        finally:
            self._own_base = own
        if self.mntns:
            kill_pids(pids_in_mntns(self.mntns))
        if self.holder is not None:
            try:
                self.holder.wait(5)
            except subprocess.TimeoutExpired:
                pass
            self.holder = None
        elif self.holder_pid and pid_alive(self.holder_pid):
            kill_pids([self.holder_pid])
        stop_reaper(self._ns_reaper)
        self._ns_reaper = None
        self.mntns = None
        if self.base_dir and own:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        elif self.base_dir:
            shutil.rmtree(os.path.join(self.base_dir, 'tls'), ignore_errors=True)

    def state(self):
        st = super().state()
        st.update({'tls': True, 'holder_pid': self.holder_pid, 'mntns': self.mntns,
                   'tls_volumes': list(self.tls_volumes),
                   'secure_management': self.secure_management})
        return st

    @classmethod
    def from_state(cls, base_dir):
        with open(os.path.join(base_dir, 'state.json')) as f:
            st = json.load(f)
        c = cls(base_dir=st['base_dir'], nodes=st['nodes'], reaper=False)
        plain = Cluster.from_state(base_dir)
        c.__dict__.update({k: v for k, v in plain.__dict__.items()
                           if k not in ('tls_volumes',)})
        c.holder_pid = st.get('holder_pid')
        c.mntns = st.get('mntns')
        c.tls_volumes = tuple(st.get('tls_volumes', ()))
        c.secure_management = st.get('secure_management', True)
        return c

    def gfapi(self, volume, identity='client'):
        """A testbed.gfapi_ctypes.Gfapi of `volume` in the namespace (see
        NsGfapi): what the session's gfapi_rep3 is to the plain cluster."""
        return NsGfapi(self, volume, identity)


_NS_GFAPI_SERVER = r'''
import os, pickle, struct, sys
sys.path.insert(0, sys.argv[1])
from gfapi_ctypes import Gfapi
inp, out = sys.stdin.buffer, sys.stdout.buffer
def send(obj):
    data = pickle.dumps(obj)
    out.write(struct.pack('>I', len(data)) + data)
    out.flush()
try:
    g = Gfapi(sys.argv[2], [tuple(h) for h in pickle.loads(bytes.fromhex(sys.argv[3]))],
              logfile=sys.argv[4])
    send(('ok', None))
except Exception as e:
    send(('err', e))
    os._exit(1)
while True:
    n = inp.read(4)
    if len(n) < 4:
        os._exit(0)
    name, args, kw = pickle.loads(inp.read(struct.unpack('>I', n)[0]))
    try:
        send(('ok', getattr(g, name)(*args, **kw)))
    except Exception as e:
        send(('err', e))
'''


class _HelperUnpickler(pickle.Unpickler):
    """The helper imports gfapi_ctypes from the package's directory as a
    top-level module, so what it sends (a Stat, say) names 'gfapi_ctypes';
    here that module is testbed.gfapi_ctypes."""

    def find_class(self, module, name):
        if module == 'gfapi_ctypes':
            module = __package__ + '.gfapi_ctypes'
        return super().find_class(module, name)


class NsGfapi:
    """gfapi_ctypes.Gfapi's methods, run by one gfapi client in a helper
    process inside the TLS namespace (this process cannot enter it: it has
    threads, and its own mount namespace has no certificates). Never
    finalized, like the session's Gfapi: close() ends the helper."""

    def __init__(self, cluster, volume, identity='client'):
        self.volume = volume
        self.hosts = cluster.volume_hosts(volume)
        self.proc = subprocess.Popen(
            cluster.ns_cmd([PYTHON, '-c', _NS_GFAPI_SERVER, HERE, volume,
                            pickle.dumps(self.hosts).hex(),
                            os.path.join(cluster.base_dir, 'gfapi-%s.log' % volume)],
                           identity),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._reply()

    def _reply(self):
        n = self.proc.stdout.read(4)
        if len(n) < 4:
            raise TestbedError('gfapi helper for %s exited rc=%s' % (
                self.volume, self.proc.wait(5)))
        data = self.proc.stdout.read(struct.unpack('>I', n)[0])
        status, value = _HelperUnpickler(io.BytesIO(data)).load()
        if status == 'err':
            raise value
        return value

    def __getattr__(self, name):
        if name.startswith('_'):
            raise AttributeError(name)

        def call(*args, **kw):
            data = pickle.dumps((name, args, kw))
            self.proc.stdin.write(struct.pack('>I', len(data)) + data)
            self.proc.stdin.flush()
            return self._reply()
        return call

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class TlsLibvirtd(Libvirtd):
    """testbed.Libvirtd whose namespace has the TLS cluster's binds: it,
    its storage modules and its QEMUs are the hypervisor (identity
    'client')."""

    def __init__(self, workdir, backend_dir=None, tls_cluster=None, identity='client',
                 **kw):
        super().__init__(workdir, backend_dir, **kw)
        self.tls_binds = tls_cluster.binds(identity)

    def _ns_script(self):
        script = super()._ns_script()
        mounts = ''.join('mount --bind %s %s\n' % (shell_quote(s), shell_quote(d)) for s, d in self.tls_binds)
        assert script.startswith('set -e\n')
        return 'set -e\n' + mounts + script[len('set -e\n'):]

