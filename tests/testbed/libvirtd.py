# SPDX-License-Identifier: LGPL-2.1-or-later
"""A private libvirtd: libvirtd in a mount namespace of its own, with its
own /etc/libvirt, /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt
and /run/libvirt, a storage-only driver dir (plus QEMU's with
with_qemu=True) and LIBVIRT_STORAGE_BACKEND_DIR / LIBVIRT_STORAGE_FILE_DIR
pointing at directories that hold our modules beside Debian's others."""

import atexit
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from .paths import (DISTRO_BACKEND_DIR, DISTRO_DRIVER_DIR, DISTRO_FILE_DIR,
                    QEMU_MODULE_DIR)
from .process import (TestbedError, kill_pids, my_mntns, pid_alive,
                      pids_in_mntns, read_pidfile, register_cleanup,
                      shell_quote, spawn_reaper, stop_reaper, tail, unix_open,
                      unregister_cleanup)


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
            Libvirtd._QEMU_CAPS_REAPER = spawn_reaper(
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
        return tail(self.qemu_log_path(domain), n)

    def qemu_pid(self, domain):
        """pid of the domain's running QEMU (from the daemon's private
        /run/libvirt/qemu/DOM.pid), or None."""
        pid = read_pidfile(os.path.join(self.workdir, 'run', 'qemu',
                                         domain + '.pid'))
        return pid if pid and pid_alive(pid) else None

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
            lines.append('hostname %s' % shell_quote(self.hostname))
        for src, dst in binds:
            lines.append('mkdir -p %s 2>/dev/null || true' % shell_quote(dst))
            lines.append('mount --bind %s %s' % (shell_quote(src), shell_quote(dst)))
        # private /run/libvirt: a dir of ours that survives restart() like
        # the real /run survives a daemon restart (restart(reboot=True)
        # empties it).  /run itself is left alone so that /run/gluster
        # stays the host's.
        lines.append('mkdir -p /run/libvirt')
        lines.append('mount --bind %s /run/libvirt'
                     % shell_quote(os.path.join(w, 'run')))
        lines.append('exec libvirtd --config %s --pid-file %s'
                     % (shell_quote(self.conf_path), shell_quote(self.pidfile)))
        return '\n'.join(lines)

    def start(self):
        if self.pid and pid_alive(self.pid):
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
        register_cleanup(self)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            rc = self._unshare.poll()
            if rc is not None:
                self.pid = None
                raise TestbedError(
                    'libvirtd exited rc=%d during start (backend dir %s)\n'
                    '--- stderr ---\n%s\n--- log ---\n%s' % (
                        rc, self.backend_dir, tail(self.stderr_path),
                        tail(self.log_path)))
            if os.path.exists(self.sock) and unix_open(self.sock):
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
                if self.mntns and self.mntns != my_mntns():
                    self._reaper = spawn_reaper(
                        mntns=self.mntns, pass_fds=(self._mntns_fd,))
                break
            time.sleep(0.05)
        else:
            self.stop()
            raise TestbedError('libvirtd socket %s not up after %ss\n%s' % (
                self.sock, self.start_timeout, tail(self.log_path)))
        # a quick round trip proves the driver is there
        p = self.virsh('pool-list', '--all', check=False, timeout=30)
        if p.returncode != 0:
            err = p.stderr
            self.stop()
            raise TestbedError('libvirtd up but virsh failed: %s\n%s' % (
                err, tail(self.log_path)))
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
        if self.mntns and self.mntns != my_mntns():
            # everything the daemon spawned (QEMU, helpers) lives in its
            # private mount namespace: kill what is left there
            kill_pids(pids_in_mntns(self.mntns))
        stop_reaper(self._reaper)
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
        unregister_cleanup(self)

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
        # restore_signals=False: virsh inherits Python's ignored SIGPIPE.
        # virsh does not ignore it; libvirt's client blocks it only around
        # its poll loop, inside which it writes, so an EPIPE leaves it
        # pending and the unblock delivers it: signal 13 after a call that
        # succeeded. The daemon closes right after replying to
        # CONNECT_CLOSE, and a keepalive ping/pong written just then (an
        # idle connection, e.g. a migration's destination, is pinged every
        # 5 s) is such a write. Ignored, it is an EPIPE libvirt handles.
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=timeout,
                           input=input, env=env, restore_signals=False)
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
        text = tail(self.log_path, n)
        state = self.status()
        if state not in ('running', 'stopped'):
            text += '\n--- libvirtd pid %s %s (a core, if any, is /core: check ' \
                    '"Core was generated by") ---\n--- stderr ---\n%s' % (
                        self.pid, state, tail(self.stderr_path, 20))
        return text

    def thread_stacks(self, timeout=60):
        """Every thread's backtrace (gdb -batch), for a test that found the
        daemon stuck; a sentence saying why not when gdb cannot give it."""
        gdb = shutil.which('gdb')
        if not gdb:
            return '(no thread stacks: gdb is not installed)'
        if not self.pid or not pid_alive(self.pid):
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

