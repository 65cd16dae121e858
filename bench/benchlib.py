# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the benchmarks share (not a benchmark itself): logging, the
checkout's revision, timed subprocesses, the teardown of what a benchmark
started, results blocks in bench/README.md and a run guarded against
Ctrl-C and SIGTERM.  The benchmarks are run.py, data.py, guest_io.py,
guest_lifecycle.py, flatten.py, xattr_listing.py, large_pool.py and the
nbd_*.sh scripts.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if os.path.join(REPO, 'tests') not in sys.path:
    sys.path.insert(0, os.path.join(REPO, 'tests'))

import testbed  # noqa: E402

README = os.path.join(HERE, 'README.md')
# Debian's own gluster storage backend, what run.py and data.py compare with
DEBIAN_MODULE = os.path.join(testbed.DISTRO_BACKEND_DIR,
                             'libvirt_storage_backend_gluster.so')
RELEASE_TITLE = {'debian12': 'Debian 12 (libvirt 9.0, GlusterFS 10.3)',
                 'debian13': 'Debian 13 (libvirt 11.3, GlusterFS 11.1)'}.get(
                     testbed.RELEASE, testbed.RELEASE)


def log(msg):
    sys.stderr.write('[bench %s] %s\n' % (time.strftime('%H:%M:%S'), msg))
    sys.stderr.flush()


def sh(*cmd, **kw):
    return subprocess.run(list(cmd), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True,
                          **kw)


def source_rev(with_dirty=False):
    """The checkout's short commit; read from .git where git is missing
    (a Debian root from scripts/release-root.sh has none)."""
    try:
        rev = sh('git', '-C', REPO, 'rev-parse', '--short', 'HEAD').stdout.strip()
        dirty = with_dirty and sh('git', '-C', REPO, 'status', '--porcelain',
                                  '--', 'src', 'meson.build').stdout.strip()
    except FileNotFoundError:
        return _rev_from_git_dir() or 'unknown'
    return rev + (' (+uncommitted changes in src/)' if dirty else '')


def _rev_from_git_dir():
    """HEAD's commit read from .git itself, for a root with no git."""
    gitdir = os.path.join(REPO, '.git')
    try:
        with open(os.path.join(gitdir, 'HEAD')) as f:
            head = f.read().strip()
        if not head.startswith('ref: '):
            return head[:7]
        ref = head[5:]
        try:
            with open(os.path.join(gitdir, ref)) as f:
                return f.read().strip()[:7]
        except FileNotFoundError:
            with open(os.path.join(gitdir, 'packed-refs')) as f:
                for line in f:
                    if line.rstrip('\n').endswith(' ' + ref):
                        return line[:7]
    except OSError:
        pass
    return None


def loadavg():
    try:
        with open('/proc/loadavg') as f:
            return f.read().split()[:3]
    except OSError:
        return None


class Interrupted(Exception):
    pass


def _on_sigterm(signum, frame):
    raise Interrupted('signal %d' % signum)


# ---------------------------------------------------------------------------
# Timed calls
# ---------------------------------------------------------------------------
def virsh_env():
    env = dict(os.environ, LC_ALL='C')
    env.pop('LIBVIRT_DEFAULT_URI', None)
    return env


ENV = virsh_env()


def timed(cmd, timeout=300):
    """-> (seconds, returncode, stdout, stderr) of one whole subprocess."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=timeout, env=ENV)
    dt = time.perf_counter() - t0
    return dt, p.returncode, p.stdout, p.stderr


def virsh_cmd(d, *args):
    return ['virsh', '-q', '-c', d.uri] + [str(a) for a in args]


def teardown(work, daemons=(), cluster=None, netfs=()):
    """Stop what a benchmark started, whatever state it is in: the netfs
    pools [(Libvirtd, pool)] (unmounting their FUSE mounts), the daemons,
    the cluster; then the FUSE clients' logs, which glusterfs names after
    the mount point, and the work dir unless a mount is still in it."""
    for d, pool in netfs:
        try:
            d.virsh('pool-destroy', pool, check=False, timeout=30)
        except Exception:
            pass
    for d in daemons:
        try:
            d.stop()
        except Exception as e:
            log('stopping %r: %s' % (d, e))
    if cluster is not None:
        try:
            cluster.stop()
        except Exception as e:
            log('stopping cluster: %s' % e)
    if not work:
        return
    mangled = work.strip('/').replace('/', '-')
    try:
        for f in os.listdir(testbed.GLUSTER_LOG_DIR):
            if f.startswith(mangled):
                try:
                    os.unlink(os.path.join(testbed.GLUSTER_LOG_DIR, f))
                except OSError:
                    pass
    except OSError:
        pass
    if work in sh('findmnt', '-rn', '-o', 'TARGET').stdout:
        log('WARNING: mounts left under %s' % work)
    else:
        shutil.rmtree(work, ignore_errors=True)


def replace_block(begin, end, body):
    """Put `body` (which starts with `begin` and ends with `end`) into
    bench/README.md in place of the block between those markers; a release
    seen for the first time goes right after the last block of the same
    script (another release's), so the releases stand side by side."""
    with open(README) as f:
        text = f.read()
    if begin in text and end in text:
        pre = text.split(begin, 1)[0]
        post = text.split(end, 1)[1]
        text = pre + body + post
    else:
        script_end = end.rsplit(' ', 2)[0]   # '<!-- END MANAGEMENT RESULTS' etc.
        last = text.rfind(script_end)
        if last < 0:
            text = text.rstrip('\n') + '\n\n' + body + '\n'
        else:
            cut = text.index('-->', last) + 3
            text = text[:cut] + '\n\n' + body + text[cut:]
    with open(README, 'w') as f:
        f.write(text)


def run_guarded(b):
    """b.run() as root, then b.cleanup() whatever happens (Ctrl-C,
    SIGTERM, SIGHUP, an exception); b.save() keeps the partial samples.
    -> exit code: 0, 130 interrupted, 1 failed."""
    if os.geteuid() != 0:
        raise SystemExit('run as root (mount namespaces, glusterd, libvirtd)')
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)
    rc = 0
    try:
        b.run()
    except (KeyboardInterrupt, Interrupted) as e:
        log('interrupted (%s): cleaning up' % (e or 'Ctrl-C'))
        b.data.setdefault('notes', []).append('INTERRUPTED: partial results')
        rc = 130
    except Exception as e:
        import traceback
        traceback.print_exc()
        b.data.setdefault('notes', []).append('FAILED: %s' % e)
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            b.save()
        except Exception:
            pass
        b.cleanup()
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return rc
