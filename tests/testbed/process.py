# SPDX-License-Identifier: LGPL-2.1-or-later
"""Processes the test bed starts, and their end: pid and namespace
look-ups, kills, the cleanup registry (atexit, SIGTERM, SIGHUP) and the
reaper, a detached watchdog that kills what is left once the test process
has died without cleaning up (SIGKILL)."""

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from .paths import PYTHON


class TestbedError(RuntimeError):
    pass


def trace(msg):
    if os.environ.get('TESTBED_VERBOSE'):
        sys.stderr.write('[testbed %.3f] %s\n' % (time.time(), msg))


def tail(path, n=40):
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


def proc_cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return [a.decode('utf-8', 'replace') for a in
                    f.read().split(b'\0') if a]
    except OSError:
        return None


def proc_pids():
    for d in os.listdir('/proc'):
        if d.isdigit():
            yield int(d)


def pid_alive(pid):
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


def read_pidfile(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def kill_pids(pids, grace=2.0):
    """SIGTERM, wait up to `grace`, then SIGKILL. Only the given pids."""
    pids = [p for p in set(pids) if p and p != os.getpid() and pid_alive(p)]
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        pids = [p for p in pids if pid_alive(p)]
        if not pids:
            return
        time.sleep(0.05)
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)


def my_mntns():
    return os.readlink('/proc/self/ns/mnt')


def pids_in_mntns(ns):
    out = []
    for p in proc_pids():
        try:
            if os.readlink('/proc/%d/ns/mnt' % p) == ns:
                out.append(p)
        except OSError:
            pass
    return out


def port_free(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((addr, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def tcp_open(addr, port, timeout=0.5):
    try:
        with socket.create_connection((addr, port), timeout=timeout):
            return True
    except OSError:
        return False


def unix_open(path, timeout=0.5):
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


def register_cleanup(obj):
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


def unregister_cleanup(obj):
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


def spawn_reaper(marker=None, argv0=('gluster',), mntns=None, rmtree=None,
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


def stop_reaper(proc):
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()



def shell_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"
