# SPDX-License-Identifier: LGPL-2.1-or-later
"""Minimal ctypes wrapper over libgfapi.so.0 (glusterfs 10.x, x86_64 Linux).

Lets tests put files into / inspect a Gluster volume without FUSE::

    g = Gfapi('rep3', hosts=[('127.5.6.1', 24007), ('127.5.6.2', 24007)])
    g.put('dir/a.img', b'data')
    g.stat('dir/a.img')      # -> Stat(size, blocks, mode, uid, gid)

Notes
-----
* Symbols are resolved with plain dlsym(), i.e. the *default* (newest)
  symbol version: glfs_pread/pwrite/ftruncate/fsync are the GFAPI_6.0
  variants with the extra ``struct glfs_stat *`` arguments (we pass NULL).
  off_t is 64-bit on x86_64, so c_int64 is used throughout.
* glfs_fini() is NEVER called from the test process: it only returns at the
  next tick of gfapi's 10 s call-bail timer (GlusterFS #2606, #4320), which
  would add ~10 s per connection.  close() is therefore a no-op and one
  connection per volume is shared for the whole test session (see
  ``Gfapi.shared``).  The process exiting releases everything.
* Errors raise OSError(errno, message) with the errno gfapi set.
"""

import ctypes
import time
import ctypes.util
import errno as _errno
import os
import stat as _stat
import threading
from collections import namedtuple

__all__ = ['Gfapi', 'Stat', 'GfapiError']

_LIB = None
_LIB_LOCK = threading.Lock()

c_ssize_t = ctypes.c_ssize_t
c_off_t = ctypes.c_int64
c_void_p = ctypes.c_void_p
c_char_p = ctypes.c_char_p
c_int = ctypes.c_int
c_size_t = ctypes.c_size_t
c_mode_t = ctypes.c_uint32
c_dev_t = ctypes.c_uint64


class _Timespec(ctypes.Structure):
    _fields_ = [('tv_sec', ctypes.c_long), ('tv_nsec', ctypes.c_long)]


class _StructStat(ctypes.Structure):
    """struct stat, x86_64 glibc layout (144 bytes)."""
    _fields_ = [
        ('st_dev', ctypes.c_uint64),
        ('st_ino', ctypes.c_uint64),
        ('st_nlink', ctypes.c_uint64),
        ('st_mode', ctypes.c_uint32),
        ('st_uid', ctypes.c_uint32),
        ('st_gid', ctypes.c_uint32),
        ('__pad0', ctypes.c_int),
        ('st_rdev', ctypes.c_uint64),
        ('st_size', ctypes.c_int64),
        ('st_blksize', ctypes.c_int64),
        ('st_blocks', ctypes.c_int64),
        ('st_atim', _Timespec),
        ('st_mtim', _Timespec),
        ('st_ctim', _Timespec),
        ('__reserved', ctypes.c_long * 3),
    ]


assert ctypes.sizeof(_StructStat) == 144


class _Dirent(ctypes.Structure):
    """struct dirent, x86_64 glibc layout."""
    _fields_ = [
        ('d_ino', ctypes.c_uint64),
        ('d_off', ctypes.c_int64),
        ('d_reclen', ctypes.c_ushort),
        ('d_type', ctypes.c_ubyte),
        ('d_name', ctypes.c_char * 256),
    ]


Stat = namedtuple('Stat', 'size blocks mode uid gid')

GfapiError = OSError


def _lib():
    global _LIB
    with _LIB_LOCK:
        if _LIB is not None:
            return _LIB
        name = 'libgfapi.so.0'
        lib = ctypes.CDLL(name, use_errno=True)
        P = ctypes.POINTER

        def sig(fn, res, *args):
            f = getattr(lib, fn)
            f.restype = res
            f.argtypes = list(args)

        sig('glfs_new', c_void_p, c_char_p)
        sig('glfs_set_volfile_server', c_int, c_void_p, c_char_p, c_char_p, c_int)
        sig('glfs_set_logging', c_int, c_void_p, c_char_p, c_int)
        sig('glfs_set_xlator_option', c_int, c_void_p, c_char_p, c_char_p, c_char_p)
        sig('glfs_init', c_int, c_void_p)
        sig('glfs_fini', c_int, c_void_p)
        sig('glfs_creat', c_void_p, c_void_p, c_char_p, c_int, c_mode_t)
        sig('glfs_open', c_void_p, c_void_p, c_char_p, c_int)
        sig('glfs_close', c_int, c_void_p)
        # GFAPI_6.0 variants (default symbol version)
        sig('glfs_pwrite', c_ssize_t, c_void_p, c_void_p, c_size_t, c_off_t,
            c_int, c_void_p, c_void_p)
        sig('glfs_pread', c_ssize_t, c_void_p, c_void_p, c_size_t, c_off_t,
            c_int, c_void_p)
        sig('glfs_ftruncate', c_int, c_void_p, c_off_t, c_void_p, c_void_p)
        sig('glfs_fsync', c_int, c_void_p, c_void_p, c_void_p)
        sig('glfs_mkdir', c_int, c_void_p, c_char_p, c_mode_t)
        sig('glfs_unlink', c_int, c_void_p, c_char_p)
        sig('glfs_rmdir', c_int, c_void_p, c_char_p)
        sig('glfs_stat', c_int, c_void_p, c_char_p, P(_StructStat))
        sig('glfs_lstat', c_int, c_void_p, c_char_p, P(_StructStat))
        sig('glfs_opendir', c_void_p, c_void_p, c_char_p)
        sig('glfs_readdir_r', c_int, c_void_p, P(_Dirent), P(P(_Dirent)))
        sig('glfs_closedir', c_int, c_void_p)
        sig('glfs_symlink', c_int, c_void_p, c_char_p, c_char_p)
        sig('glfs_readlink', c_ssize_t, c_void_p, c_char_p, c_char_p, c_size_t)
        sig('glfs_mknod', c_int, c_void_p, c_char_p, c_mode_t, c_dev_t)
        sig('glfs_chmod', c_int, c_void_p, c_char_p, c_mode_t)
        sig('glfs_chown', c_int, c_void_p, c_char_p, ctypes.c_uint32,
            ctypes.c_uint32)
        sig('glfs_truncate', c_int, c_void_p, c_char_p, c_off_t)
        sig('glfs_rename', c_int, c_void_p, c_char_p, c_char_p)
        sig('glfs_link', c_int, c_void_p, c_char_p, c_char_p)
        sig('glfs_utimens', c_int, c_void_p, c_char_p, P(_Timespec * 2))
        sig('glfs_get_volfile', c_ssize_t, c_void_p, c_void_p, c_size_t)
        sig('glfs_copy_file_range', c_ssize_t, c_void_p, P(c_off_t),
            c_void_p, P(c_off_t), c_size_t, ctypes.c_uint, c_void_p,
            c_void_p, c_void_p)
        sig('glfs_fstat', c_int, c_void_p, P(_StructStat))
        sig('glfs_setxattr', c_int, c_void_p, c_char_p, c_char_p, c_void_p,
            c_size_t, c_int)
        sig('glfs_fsetxattr', c_int, c_void_p, c_char_p, c_void_p, c_size_t,
            c_int)
        sig('glfs_getxattr', c_ssize_t, c_void_p, c_char_p, c_char_p,
            c_void_p, c_size_t)
        sig('glfs_fgetxattr', c_ssize_t, c_void_p, c_char_p, c_void_p,
            c_size_t)
        sig('glfs_listxattr', c_ssize_t, c_void_p, c_char_p, c_void_p,
            c_size_t)
        sig('glfs_removexattr', c_int, c_void_p, c_char_p, c_char_p)
        sig('glfs_fremovexattr', c_int, c_void_p, c_char_p)
        # per-thread identity sent with every request (syncop context)
        sig('glfs_setfsuid', c_int, ctypes.c_uint32)
        sig('glfs_setfsgid', c_int, ctypes.c_uint32)
        sig('glfs_setfsgroups', c_int, c_size_t, P(ctypes.c_uint32))
        sig('glfs_readdirplus_r', c_int, c_void_p, P(_StructStat),
            P(_Dirent), P(P(_Dirent)))
        sig('glfs_xreaddirplus_r', c_int, c_void_p, ctypes.c_uint32,
            P(c_void_p), P(_Dirent), P(P(_Dirent)))
        sig('glfs_free', None, c_void_p)
        _LIB = lib
        return lib


def _b(path):
    if isinstance(path, bytes):
        p = path
    else:
        p = os.fsencode(path)
    if not p.startswith(b'/'):
        p = b'/' + p
    return p


def _raise(what, path=None):
    e = ctypes.get_errno() or _errno.EIO
    if path is not None:
        raise OSError(e, '%s: %s' % (what, os.strerror(e)),
                      os.fsdecode(path))
    raise OSError(e, '%s: %s' % (what, os.strerror(e)))


class Gfapi:
    """One gfapi 'virtual mount' of a volume.

    hosts: list of (host, port) tuples (port 0/None = 24007); every host is
    registered with glfs_set_volfile_server so gfapi can fail over.
    """

    _shared = {}
    _shared_lock = threading.Lock()

    def __init__(self, volume, hosts, logfile='/dev/null', loglevel=7,
                 transport='tcp', xlator_options=()):
        lib = _lib()
        self.volume = volume
        self.hosts = [(h, int(p or 24007)) for h, p in
                      (x if isinstance(x, (tuple, list)) else (x, 24007)
                       for x in hosts)]
        self._lib = lib
        self._lock = threading.RLock()
        fs = lib.glfs_new(volume.encode())
        if not fs:
            _raise('glfs_new(%s)' % volume)
        for h, p in self.hosts:
            if lib.glfs_set_volfile_server(fs, transport.encode(), h.encode(),
                                           p) != 0:
                _raise('glfs_set_volfile_server(%s:%d)' % (h, p))
        if lib.glfs_set_logging(fs, os.fsencode(logfile), loglevel) != 0:
            _raise('glfs_set_logging(%s)' % logfile)
        # (xlator glob, key, value), as gfpool sets its ping-timeout
        for xl, k, v in xlator_options:
            if lib.glfs_set_xlator_option(fs, xl.encode(), k.encode(), v.encode()) != 0:
                _raise('glfs_set_xlator_option(%s %s %s)' % (xl, k, v))
        if lib.glfs_init(fs) != 0:
            # Deliberately leak fs (no glfs_fini, see module docstring).
            _raise('glfs_init(%s via %s)' % (volume, self.hosts))
        self._fs = fs

    # -- session-shared connections -------------------------------------
    @classmethod
    def shared(cls, volume, hosts, logfile='/dev/null'):
        """Return the process-wide connection for (volume, first host)."""
        key = (volume, tuple(tuple(h) if isinstance(h, (list, tuple)) else
                             (h, 24007) for h in hosts))
        with cls._shared_lock:
            g = cls._shared.get(key)
            if g is None:
                g = cls(volume, hosts, logfile=logfile)
                cls._shared[key] = g
            return g

    def close(self):
        """Does nothing on purpose.

        glfs_fini() blocks until the next 10 s call-bail timer tick
        (GlusterFS #2606/#4320); tests share one connection per volume for
        the whole session and let process exit tear it down.
        """

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    # -- helpers -----------------------------------------------------------
    def _open(self, path, flags, mode=0o644, create=False):
        p = _b(path)
        if create:
            fd = self._lib.glfs_creat(self._fs, p, flags, mode)
        else:
            fd = self._lib.glfs_open(self._fs, p, flags)
        if not fd:
            _raise('open', p)
        return fd

    # -- file operations ---------------------------------------------------
    def put(self, path, data=b'', mode=0o644, parents=True):
        """Create/overwrite `path` with `data` (bytes)."""
        if isinstance(data, str):
            data = data.encode()
        if parents:
            d = os.path.dirname(_b(path))
            if d not in (b'', b'/'):
                self.mkdir(d, parents=True)
        fd = self._open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode,
                        create=True)
        try:
            off = 0
            view = memoryview(data)
            chunk = 4 << 20
            while off < len(data):
                n = min(chunk, len(data) - off)
                buf = (ctypes.c_char * n).from_buffer_copy(view[off:off + n])
                r = self._lib.glfs_pwrite(fd, buf, n, off, 0, None, None)
                if r < 0:
                    _raise('pwrite', _b(path))
                off += r
            if self._lib.glfs_fsync(fd, None, None) != 0:
                _raise('fsync', _b(path))
        finally:
            self._lib.glfs_close(fd)

    def put_sparse(self, path, size, mode=0o644, parents=True, extents=()):
        """Create `path` as a sparse file of `size` bytes (ftruncate), with
        only `extents` [(offset, bytes)] written: an image's few non-zero
        blocks take that much room on the bricks, not its length."""
        if parents:
            d = os.path.dirname(_b(path))
            if d not in (b'', b'/'):
                self.mkdir(d, parents=True)
        fd = self._open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode,
                        create=True)
        try:
            if self._lib.glfs_ftruncate(fd, size, None, None) != 0:
                _raise('ftruncate', _b(path))
            for off, data in extents:
                buf = ctypes.create_string_buffer(bytes(data), len(data))
                if self._lib.glfs_pwrite(fd, buf, len(data), off, 0, None,
                                         None) != len(data):
                    _raise('pwrite', _b(path))
        finally:
            self._lib.glfs_close(fd)

    def write_at(self, path, off, data):
        """pwrite `data` at offset `off` into an existing file."""
        fd = self._open(path, os.O_WRONLY)
        try:
            buf = ctypes.create_string_buffer(bytes(data), len(data))
            r = self._lib.glfs_pwrite(fd, buf, len(data), off, 0, None, None)
            if r < 0:
                _raise('pwrite', _b(path))
            return r
        finally:
            self._lib.glfs_close(fd)

    def copy_file_range(self, src, off_in, dst, off_out, length):
        """glfs_copy_file_range from `src` at `off_in` into the existing
        file `dst` at `off_out`; returns what it returned."""
        fin = self._open(src, os.O_RDONLY)
        try:
            fout = self._open(dst, os.O_WRONLY)
            try:
                oi, oo = c_off_t(off_in), c_off_t(off_out)
                r = self._lib.glfs_copy_file_range(
                    fin, ctypes.byref(oi), fout, ctypes.byref(oo), length, 0,
                    None, None, None)
                if r < 0:
                    _raise('copy_file_range', _b(dst))
                if self._lib.glfs_fsync(fout, None, None) != 0:
                    _raise('fsync', _b(dst))
                return r
            finally:
                self._lib.glfs_close(fout)
        finally:
            self._lib.glfs_close(fin)

    def get_volfile(self, buflen):
        """glfs_get_volfile into a buffer of `buflen` bytes filled with
        0xAA: (return value, buffer bytes)."""
        buf = ctypes.create_string_buffer(b'\xaa' * buflen, buflen) \
            if buflen else None
        r = self._lib.glfs_get_volfile(self._fs, buf, buflen)
        return r, (buf.raw if buf is not None else b'')

    def read(self, path, off=0, length=None):
        """Read `length` bytes at `off` (whole file when length is None)."""
        if length is None:
            length = max(0, self.stat(path).size - off)
        fd = self._open(path, os.O_RDONLY)
        try:
            out = []
            got = 0
            while got < length:
                n = min(4 << 20, length - got)
                buf = ctypes.create_string_buffer(n)
                r = self._lib.glfs_pread(fd, buf, n, off + got, 0, None)
                if r < 0:
                    _raise('pread', _b(path))
                if r == 0:
                    break
                out.append(buf.raw[:r])
                got += r
            return b''.join(out)
        finally:
            self._lib.glfs_close(fd)

    def mkdir(self, path, parents=False, mode=0o755, exist_ok=None):
        """mkdir; with parents=True behaves like `mkdir -p`."""
        p = _b(path).rstrip(b'/') or b'/'
        if exist_ok is None:
            exist_ok = parents
        if parents:
            parts = [x for x in p.split(b'/') if x]
            cur = b''
            for i, part in enumerate(parts):
                cur += b'/' + part
                if self._lib.glfs_mkdir(self._fs, cur, mode) != 0:
                    e = ctypes.get_errno()
                    if e == _errno.EEXIST and (exist_ok or i < len(parts) - 1):
                        continue
                    _raise('mkdir', cur)
            return
        # After a test restarts the cluster's nodes, this long-lived test
        # client reconnects to the bricks on gfapi's own timer: wait for it.
        deadline = time.monotonic() + 30
        while self._lib.glfs_mkdir(self._fs, p, mode) != 0:
            e = ctypes.get_errno()
            if e == _errno.EEXIST and exist_ok:
                return
            if e == _errno.ENOTCONN and time.monotonic() < deadline:
                time.sleep(1)
                continue
            ctypes.set_errno(e)
            _raise('mkdir', p)

    def unlink(self, path, missing_ok=False):
        p = _b(path)
        if self._lib.glfs_unlink(self._fs, p) != 0:
            if missing_ok and ctypes.get_errno() == _errno.ENOENT:
                return
            _raise('unlink', p)

    def rmdir(self, path, missing_ok=False):
        p = _b(path)
        if self._lib.glfs_rmdir(self._fs, p) != 0:
            if missing_ok and ctypes.get_errno() == _errno.ENOENT:
                return
            _raise('rmdir', p)

    def rmtree(self, path, missing_ok=True):
        """Recursively delete a file or directory."""
        try:
            st = self.lstat_raw(path)
        except FileNotFoundError:
            if missing_ok:
                return
            raise
        if _stat.S_ISDIR(st.st_mode):
            base = _b(path).rstrip(b'/')
            for name in self.listdir(path):
                self.rmtree(base + b'/' + os.fsencode(name), missing_ok)
            if base:
                self.rmdir(base, missing_ok=missing_ok)
        else:
            self.unlink(path, missing_ok=missing_ok)

    def _stat(self, fn, path):
        st = _StructStat()
        p = _b(path)
        if fn(self._fs, p, ctypes.byref(st)) != 0:
            _raise('stat', p)
        return st

    def stat_raw(self, path):
        return self._stat(self._lib.glfs_stat, path)

    def lstat_raw(self, path):
        return self._stat(self._lib.glfs_lstat, path)

    def stat(self, path):
        """-> Stat(size, blocks, mode, uid, gid) (follows symlinks)."""
        st = self.stat_raw(path)
        return Stat(st.st_size, st.st_blocks, st.st_mode, st.st_uid,
                    st.st_gid)

    def lstat(self, path):
        st = self.lstat_raw(path)
        return Stat(st.st_size, st.st_blocks, st.st_mode, st.st_uid,
                    st.st_gid)

    def exists(self, path):
        try:
            self.lstat_raw(path)
            return True
        except FileNotFoundError:
            return False

    def listdir(self, path='/'):
        """Names in a directory, without '.' and '..', sorted."""
        p = _b(path)
        fd = self._lib.glfs_opendir(self._fs, p)
        if not fd:
            _raise('opendir', p)
        names = []
        try:
            ent = _Dirent()
            res = ctypes.POINTER(_Dirent)()
            while True:
                r = self._lib.glfs_readdir_r(fd, ctypes.byref(ent),
                                             ctypes.byref(res))
                if r != 0:
                    _raise('readdir', p)
                if not res:
                    break
                name = ent.d_name.decode('utf-8', 'surrogateescape')
                if name not in ('.', '..'):
                    names.append(name)
        finally:
            self._lib.glfs_closedir(fd)
        return sorted(names)

    def symlink(self, target, path):
        """Create symlink `path` -> `target` (target stored verbatim)."""
        t = target if isinstance(target, bytes) else os.fsencode(target)
        p = _b(path)
        if self._lib.glfs_symlink(self._fs, t, p) != 0:
            _raise('symlink', p)

    def readlink(self, path):
        buf = ctypes.create_string_buffer(4096)
        p = _b(path)
        r = self._lib.glfs_readlink(self._fs, p, buf, 4096)
        if r < 0:
            _raise('readlink', p)
        return buf.raw[:r].decode('utf-8', 'surrogateescape')

    def mkfifo(self, path, mode=0o644):
        """Create a FIFO via glfs_mknod (raises OSError if unsupported)."""
        p = _b(path)
        if self._lib.glfs_mknod(self._fs, p, _stat.S_IFIFO | mode, 0) != 0:
            _raise('mknod', p)

    def chmod(self, path, mode):
        p = _b(path)
        if self._lib.glfs_chmod(self._fs, p, mode) != 0:
            _raise('chmod', p)

    def chown(self, path, uid, gid):
        p = _b(path)
        if self._lib.glfs_chown(self._fs, p, uid, gid) != 0:
            _raise('chown', p)

    def truncate(self, path, size):
        p = _b(path)
        if self._lib.glfs_truncate(self._fs, p, size) != 0:
            _raise('truncate', p)

    def rename(self, old, new):
        if self._lib.glfs_rename(self._fs, _b(old), _b(new)) != 0:
            _raise('rename', _b(old))

    def link(self, old, new):
        if self._lib.glfs_link(self._fs, _b(old), _b(new)) != 0:
            _raise('link', _b(new))

    def set_mtime(self, path, seconds):
        """atime and mtime of path set to `seconds` since the epoch."""
        ts = (_Timespec * 2)(_Timespec(int(seconds), 0),
                             _Timespec(int(seconds), 0))
        if self._lib.glfs_utimens(self._fs, _b(path), ctypes.byref(ts)) != 0:
            _raise('utimens', _b(path))

    # -- extended attributes and identity --------------------------------
    def setxattr(self, path, name, value, flags=0):
        """glfs_setxattr (flags: os.XATTR_CREATE / os.XATTR_REPLACE)."""
        v = bytes(value)
        if self._lib.glfs_setxattr(self._fs, _b(path), name.encode(), v,
                                   len(v), flags) != 0:
            _raise('setxattr %s' % name, _b(path))

    def fsetxattr(self, path, name, value, flags=0, open_flags=os.O_RDONLY):
        """glfs_fsetxattr on a descriptor opened with `open_flags` (the
        kernel checks the inode, not the open mode: read-only will do)."""
        v = bytes(value)
        fd = self._open(path, open_flags)
        try:
            if self._lib.glfs_fsetxattr(fd, name.encode(), v, len(v),
                                        flags) != 0:
                _raise('fsetxattr %s' % name, _b(path))
        finally:
            self._lib.glfs_close(fd)

    def getxattr(self, path, name, size=4096):
        """glfs_getxattr -> the value's bytes."""
        buf = ctypes.create_string_buffer(size)
        r = self._lib.glfs_getxattr(self._fs, _b(path), name.encode(), buf,
                                    size)
        if r < 0:
            _raise('getxattr %s' % name, _b(path))
        return buf.raw[:r]

    def fgetxattr(self, path, name, size=4096):
        fd = self._open(path, os.O_RDONLY)
        try:
            buf = ctypes.create_string_buffer(size)
            r = self._lib.glfs_fgetxattr(fd, name.encode(), buf, size)
            if r < 0:
                _raise('fgetxattr %s' % name, _b(path))
            return buf.raw[:r]
        finally:
            self._lib.glfs_close(fd)

    def listxattr(self, path, size=65536):
        """glfs_listxattr -> the names, sorted."""
        buf = ctypes.create_string_buffer(size)
        r = self._lib.glfs_listxattr(self._fs, _b(path), buf, size)
        if r < 0:
            _raise('listxattr', _b(path))
        return sorted(n.decode() for n in buf.raw[:r].split(b'\0') if n)

    def removexattr(self, path, name):
        if self._lib.glfs_removexattr(self._fs, _b(path), name.encode()) != 0:
            _raise('removexattr %s' % name, _b(path))

    def fremovexattr(self, path, name, open_flags=os.O_RDONLY):
        fd = self._open(path, open_flags)
        try:
            if self._lib.glfs_fremovexattr(fd, name.encode()) != 0:
                _raise('fremovexattr %s' % name, _b(path))
        finally:
            self._lib.glfs_close(fd)

    def fstat_raw(self, path):
        fd = self._open(path, os.O_RDONLY)
        try:
            st = _StructStat()
            if self._lib.glfs_fstat(fd, ctypes.byref(st)) != 0:
                _raise('fstat', _b(path))
            return st
        finally:
            self._lib.glfs_close(fd)

    def set_identity(self, uid, gid, groups=()):
        """The uid, gid and groups gfapi sends with this thread's requests
        from now on (glfs_setfsuid/-gid/-groups: nothing checks them on the
        client)."""
        lib = self._lib
        arr = (ctypes.c_uint32 * max(1, len(groups)))(*groups)
        if lib.glfs_setfsuid(uid) != 0 or lib.glfs_setfsgid(gid) != 0 or \
                lib.glfs_setfsgroups(len(groups), arr) != 0:
            _raise('setfs{uid,gid,groups}(%d, %d)' % (uid, gid))

    def set_pid(self, pid):
        """The pid gfapi sends from now on (glfs_setfspid, a private
        symbol): GlusterFS's own daemons send negative ones, which the
        bricks trust (root-squash, ACL checks)."""
        f = self._lib.glfs_setfspid
        f.restype = c_int
        f.argtypes = [c_void_p, c_int]
        if f(self._fs, pid) != 0:
            _raise('setfspid(%d)' % pid)

    def readdirplus(self, path):
        """glfs_readdirplus_r over a directory -> [(name, struct stat)],
        without '.' and '..'."""
        p = _b(path)
        fd = self._lib.glfs_opendir(self._fs, p)
        if not fd:
            _raise('opendir', p)
        out = []
        try:
            ent = _Dirent()
            res = ctypes.POINTER(_Dirent)()
            while True:
                st = _StructStat()
                if self._lib.glfs_readdirplus_r(fd, ctypes.byref(st),
                                                ctypes.byref(ent),
                                                ctypes.byref(res)) != 0:
                    _raise('readdirplus', p)
                if not res:
                    break
                name = ent.d_name.decode('utf-8', 'surrogateescape')
                if name not in ('.', '..'):
                    out.append((name, st))
        finally:
            self._lib.glfs_closedir(fd)
        return out

