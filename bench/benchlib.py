# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the benchmarks share (not a benchmark itself): logging, the
checkout's revision, timed subprocesses, the teardown of what a benchmark
started, results blocks in bench/README.md and a run guarded against
Ctrl-C and SIGTERM, and the samples, pools and timed virsh calls of the
benchmarks that compare libvirt daemons (VirshBench).  The benchmarks are
run.py, scale.py, data.py, guest_io.py, guest_lifecycle.py, flatten.py,
xattr_listing.py, refresh_records.py, large_pool.py and the nbd_*.sh
scripts.
"""

import hashlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if os.path.join(REPO, 'tests') not in sys.path:
    sys.path.insert(0, os.path.join(REPO, 'tests'))

import testbed  # noqa: E402
from testbed.pools import netfs_pool_xml, pool_xml  # noqa: E402

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


def fmt_s(x):
    """A duration for a results table: ms below 1 s, 3 significant digits."""
    if x is None:
        return '—'
    if x >= 10:
        return '%.1f s' % x
    if x >= 1:
        return '%.2f s' % x
    return '%.0f ms' % (x * 1000) if x >= 0.1 else '%.1f ms' % (x * 1000)


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


def machine_facts(module_copy=None):
    """The machine, the releases of what runs on it and the checkout, for
    a results file's meta."""
    def first(cmd):
        try:
            p = sh(*cmd)
            return (p.stdout or p.stderr).strip().splitlines()[0]
        except Exception as e:
            return 'n/a (%s)' % e
    cpu = 'n/a'
    try:
        with open('/proc/cpuinfo') as f:
            m = re.search(r'^model name\s*:\s*(.*)$', f.read(), re.M)
            cpu = m.group(1) if m else cpu
    except OSError:
        pass
    mem = 'n/a'
    try:
        with open('/proc/meminfo') as f:
            m = re.search(r'MemTotal:\s*(\d+)', f.read())
            mem = '%.1f GiB' % (int(m.group(1)) / 1048576.0)
    except (OSError, AttributeError):
        pass
    try:
        with open('/etc/debian_version') as f:
            deb = f.read().strip()
    except OSError:
        deb = 'n/a'
    facts = {
        'date': time.strftime('%Y-%m-%d %H:%M:%S %Z'),
        'nproc': os.cpu_count(),
        'cpu': cpu,
        'memory': mem,
        'kernel': platform.release(),
        'debian': deb,
        'libvirt': first(['libvirtd', '--version']),
        'glusterfs': first(['glusterfs', '--version']),
        'qemu-img': first(['qemu-img', '--version']),
        'gfpool_commit': source_rev(with_dirty=True),
    }
    if module_copy:
        with open(module_copy, 'rb') as f:
            facts['module_sha256_16'] = hashlib.sha256(f.read()).hexdigest()[:16]
    return facts


def snapshot_module(module, workdir):
    """Copy our storage backend module into workdir (others may rebuild
    ./build during a run) with what it loads: the guard libvirtd loads
    opens the real module next to its own path. -> the copy's path."""
    src = os.path.dirname(os.path.realpath(module))
    dst = os.path.join(workdir, os.path.basename(module))
    shutil.copy2(module, dst)
    impl = os.path.join(src, 'gfpool_storage_backend.so')
    if os.path.exists(impl):
        shutil.copy2(impl, os.path.join(workdir, os.path.basename(impl)))
    return dst


def vm_rss_kib(pid):
    """VmRSS of a process in KiB."""
    with open('/proc/%d/status' % pid) as f:
        m = re.search(r'^VmRSS:\s*(\d+) kB', f.read(), re.M)
    return int(m.group(1))


class VirshBench:
    """What the benchmarks that compare libvirt daemons share: samples
    written to a JSON file as they come, whole `virsh` calls timed on
    private daemons (self.daemons: {backend: testbed.Libvirtd}) with a
    no-op call on the same daemon right before each, and the pools they
    time (gluster pools for our module and Debian's, netfs pools that mount
    the volume with FUSE, dir pools of local files).

    A subclass sets self.json_path, self.work, self.cluster, self.addr and
    self.daemons before it measures, and implements run() and cleanup()
    for run_guarded()."""

    def __init__(self, json_path):
        self.json_path = json_path
        self.work = None
        self.cluster = None
        self.addr = None
        self.daemons = {}
        self.gf = {}
        self.netfs_active = set()
        self.data = {'meta': {}, 'samples': [], 'notes': []}
        self.t_start = time.monotonic()

    # -- recording -------------------------------------------------------
    def save(self):
        self.data['meta']['elapsed_s'] = round(
            time.monotonic() - self.t_start, 1)
        tmp = self.json_path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(self.data, f, indent=1)
        os.replace(tmp, self.json_path)

    def note(self, text):
        self.data['notes'].append(text)
        log('WARNING: ' + text)
        self.save()

    def record(self, backend, volume, op, n, samples, errors=None,
               note=None):
        ent = {'backend': backend, 'volume': volume, 'op': op, 'n': n,
               'samples': [round(s, 6) for s in samples],
               'median': round(statistics.median(samples), 6)
               if samples else None,
               'loadavg': loadavg()}
        if errors:
            ent['errors'] = errors
        if note:
            ent['note'] = note
        self.data['samples'].append(ent)
        self.save()
        med = ent['median']
        log('%-8s %-6s %-22s n=%-5s median %s  %s%s' % (
            backend, volume or '-', op, n if n is not None else '-',
            '%.4f s' % med if med is not None else '-',
            ' '.join('%.3f' % s for s in samples),
            '  ERR: %s' % errors[0][:150] if errors else ''))
        return ent

    def run_virsh(self, backend, *args, check=True, timeout=300):
        d = self.daemons[backend]
        dt, rc, out, err = timed(virsh_cmd(d, *args), timeout=timeout)
        if check and rc != 0:
            raise testbed.TestbedError('virsh %s (%s) rc=%d: %s' % (
                ' '.join(map(str, args)), backend, rc, err.strip()))
        return dt, rc, out, err

    def measure(self, backend, volume, op, n, argv, reps, before=None,
                ok_rc=(0,), slow=None, timeout=300):
        """Run `before()` (untimed) then time `virsh argv` `reps` times;
        with `slow`, stop after the first sample that took longer than
        that many seconds."""
        samples, errors, floor = [], [], []
        for i in range(reps):
            if before:
                before(i)
            if op != 'floor':
                # the local floor: a no-op virsh call on the same daemon
                # right before each timed call (load on the machine drifts)
                floor.append(self.run_virsh(backend, 'pool-list',
                                            check=False)[0])
            dt, rc, out, err = self.run_virsh(backend, *argv(i)
                                              if callable(argv) else argv,
                                              check=False, timeout=timeout)
            samples.append(dt)
            if rc not in ok_rc:
                errors.append((err or out).strip())
            if slow is not None and dt > slow:
                break
        ent = self.record(backend, volume, op, n, samples, errors)
        if floor:
            ent['floor_samples'] = [round(x, 6) for x in floor]
            ent['floor_median'] = round(statistics.median(floor), 6)
            self.save()
        return ent

    # -- pools -------------------------------------------------------------
    def define_pool(self, b, name, volume=None, directory=None, local=None):
        """Define pool `name` on daemon `b`: of gluster `volume`'s
        `directory` (for 'netfs': a FUSE mount of it under work/mnt), or a
        dir pool of the local directory `local`. -> the XML's path."""
        if local:
            xml = ("<pool type='dir'><name>%s</name><target><path>%s</path>"
                   "</target></pool>" % (name, local))
        elif b == 'netfs':
            target = os.path.join(self.work, 'mnt', name)
            os.makedirs(target, exist_ok=True)
            xml = netfs_pool_xml(name, self.addr, volume, directory, target)
        else:
            xml = pool_xml(name, self.cluster.addresses, volume=volume,
                           directory=directory)
        path = os.path.join(self.work, name + '.xml')
        with open(path, 'w') as f:
            f.write(xml)
        self.run_virsh(b, 'pool-define', path)
        return path

    def is_active(self, b, pool):
        _, rc, out, _ = self.run_virsh(b, 'pool-info', pool, check=False)
        return rc == 0 and re.search(r'^State:\s+running', out, re.M)

    def destroy(self, b, pool):
        if self.is_active(b, pool):
            self.run_virsh(b, 'pool-destroy', pool)
        self.netfs_active.discard((b, pool))

    def ensure_started(self, b, pool, timeout=600):
        if not self.is_active(b, pool):
            self.run_virsh(b, 'pool-start', pool, timeout=timeout)
        if b == 'netfs':
            self.netfs_active.add((b, pool))

    def cache_file(self, pool, b='ours'):
        """Our probe cache file of `pool` on daemon `b`, seen from here."""
        uuid = self.run_virsh(b, 'pool-uuid', pool)[2].strip()
        return os.path.join(self.daemons[b].workdir, 'cache', 'libvirt',
                            'gfpool', uuid + '.probe')

    def count_vols(self, b, pool):
        out = self.run_virsh(b, 'vol-list', pool)[2]
        return len([l for l in out.splitlines() if l.strip()])
