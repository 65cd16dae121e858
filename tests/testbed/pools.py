# SPDX-License-Identifier: LGPL-2.1-or-later
"""Pools and volumes as the tests use them: pool XML from the example, a
pool on the test cluster (GlusterPool), hand-made qcow2 headers, the gfpool
CLI and qemu-img, checks that nothing was left behind; and the small
helpers around them (timing, a listener that never answers, TCP peers of a
process)."""

import hashlib
import json
import os
import socket
import struct
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

from .paths import BUILD, REPO

EXAMPLE_POOL = os.path.join(REPO, 'examples', 'gluster-pool.xml')


def pool_xml(name, hosts, volume='rep3', directory='/images', port=None):
    """examples/gluster-pool.xml with its name, hosts, dir and volume
    replaced: what a user does with the example."""
    tree = ET.parse(EXAMPLE_POOL)
    root = tree.getroot()
    root.find('name').text = name
    src = root.find('source')
    for h in src.findall('host'):
        src.remove(h)
    for i, h in enumerate(hosts):
        el = ET.Element('host', {'name': h})
        if port is not None:
            el.set('port', str(port))
        src.insert(i, el)
    src.find('dir').set('path', directory)
    src.find('name').text = volume
    return ET.tostring(root, encoding='unicode')


def netfs_pool_xml(name, host, volume, directory, target):
    """A libvirt netfs pool that mounts gluster volume's directory with
    FUSE (mount.glusterfs) at target: the pool gfpool is measured against."""
    return ("<pool type='netfs'><name>%s</name><source>"
            "<host name='%s'/><dir path='/%s%s'/>"
            "<format type='glusterfs'/></source>"
            "<target><path>%s</path></target></pool>"
            % (name, host, volume, directory, target))


def define_pool(libvirtd, tmp_path, xml):
    path = os.path.join(str(tmp_path), 'pool.xml')
    with open(path, 'w') as f:
        f.write(xml)
    libvirtd.virsh('pool-define', path)
    return path


class Timer:
    def __enter__(self):
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.elapsed = time.monotonic() - self.start


class SilentListener:
    """Accepts TCP connections on addr and never answers: what gfapi meets
    when a server hangs. glfs_init has no timeout of its own against it."""

    def __init__(self, addr):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, 0))
        self.sock.listen(64)
        self.addr = addr
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except socket.timeout:
                continue
            except OSError:
                break

    def close(self):
        self._stop = True
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


def vol_list_details(libvirtd, pool):
    """{name: (type, capacity_bytes, allocation_bytes)} via python-libvirt."""
    conn = libvirtd.conn()
    p = conn.storagePoolLookupByName(pool)
    out = {}
    for v in p.listAllVolumes():
        t, cap, alloc = v.info()
        out[v.name()] = (t, cap, alloc)
    return out


# ---------------------------------------------------------------------------
# Volumes (issue 4): images crafted by hand, temp-file checks, the CLI.
# ---------------------------------------------------------------------------
GFPOOL_CLI = os.environ.get('GFPOOL_CLI') or os.path.join(
    BUILD, 'src', 'tools', 'gfpool')
TEMP_PREFIX = '.gfpool-tmp-'


def qcow2_header(size, cluster_bits=16, backing=None, backing_offset=None,
                 backing_size=None, l1_offset=None, l1_size=None,
                 refcount_offset=None, version=3, file_len=None):
    """A qcow2 header written by hand (QEMU's docs/interop/qcow2.txt), for
    images the tests put in a pool directly. The backing name, when given,
    goes right after the header unless backing_offset says otherwise; every
    field can be made nonsense on purpose. file_len pads with zeros."""
    cs = 1 << min(cluster_bits, 30)
    hdr_len = 104 if version == 3 else 72
    name = (backing or '').encode()
    if backing_offset is None:
        backing_offset = hdr_len if name else 0
    if backing_size is None:
        backing_size = len(name)
    if l1_offset is None:
        l1_offset = 3 * cs
    if refcount_offset is None:
        refcount_offset = cs
    if l1_size is None:
        l1_size = 1
    h = struct.pack('>4sIQIIQIIQQIIQ', b'QFI\xfb', version, backing_offset,
                    backing_size, cluster_bits, size, 0, l1_size, l1_offset,
                    refcount_offset, 1, 0, 0)
    if version == 3:
        # incompatible/compatible/autoclear features, refcount_order 4,
        # header_length
        h += struct.pack('>QQQII', 0, 0, 0, 4, hdr_len)
    data = bytearray(h)
    if name and backing_offset == hdr_len:
        data += name
    if file_len is not None and len(data) < file_len:
        data += b'\0' * (file_len - len(data))
    return bytes(data)


def gfapi_temp_files(gfapi, directory):
    """Names in `directory` that look like our unpublished temp files."""
    return [n for n in gfapi.listdir(directory) if n.startswith(TEMP_PREFIX)]


def gfpool_cli(*args, timeout=30, check=None, env=None):
    """Run build/src/tools/gfpool; returns CompletedProcess (text).
    check=int asserts that exit code, showing stderr when it differs;
    env: extra environment variables."""
    p = subprocess.run([GFPOOL_CLI] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=timeout,
                       env=dict(os.environ, LC_ALL='C', **(env or {})))
    if check is not None:
        assert p.returncode == check, (
            'gfpool %s: rc=%d, expected %d\nstdout: %s\nstderr: %s' % (
                ' '.join(map(str, args)), p.returncode, check, p.stdout,
                p.stderr))
    return p


def pool_opts(cluster, directory, volume='rep3'):
    """--host ... --volume ... --dir ... for the CLI."""
    out = []
    for h, port in cluster.volume_hosts(volume):
        out += ['--host', '%s:%d' % (h, port)]
    return out + ['--volume', volume, '--dir', directory]


def qemu_img(*args, timeout=120):
    p = subprocess.run(['qemu-img'] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=timeout)
    return p


def qemu_img_info(path, fmt=None, timeout=120):
    args = ['info', '--output=json']
    if fmt:
        args += ['-f', fmt]
    p = qemu_img(*(args + [path]), timeout=timeout)
    assert p.returncode == 0, 'qemu-img info %s: %s' % (path, p.stderr)
    return json.loads(p.stdout)


def copy_out(gfapi, path, local):
    """The whole file at `path` (up to its size) into a local file."""
    data = gfapi.read(path)
    with open(local, 'wb') as f:
        f.write(data)
    return local


def vol_xml_doc(xml):
    """Parsed <volume> XML as a dict of what tests compare."""
    root = ET.fromstring(xml)
    t = root.find('target')
    b = root.find('backingStore')
    perms = t.find('permissions') if t is not None else None
    return {
        'type': root.get('type'),
        'name': root.findtext('name'),
        'key': root.findtext('key'),
        'capacity': int(root.findtext('capacity')),
        'allocation': int(root.findtext('allocation')),
        'path': t.findtext('path') if t is not None else None,
        'format': t.find('format').get('type') if t is not None and
        t.find('format') is not None else None,
        'mode': perms.findtext('mode') if perms is not None else None,
        'owner': perms.findtext('owner') if perms is not None else None,
        'group': perms.findtext('group') if perms is not None else None,
        'backing_path': b.findtext('path') if b is not None else None,
        'backing_format': b.find('format').get('type') if b is not None and
        b.find('format') is not None else None,
    }


class GlusterPool:
    """A started (transient) gluster pool in `libvirtd` over a fresh
    directory /NAME of `volume`; the same pool as a --pool-xml file and as
    CLI options. cleanup() destroys the pool and removes the directory."""

    def __init__(self, libvirtd, cluster, gfapi, name, workdir,
                 volume='rep3'):
        self.libvirtd = libvirtd
        self.cluster = cluster
        self.gfapi = gfapi
        self.name = name
        self.volume = volume
        self.dir = '/' + name
        self.hosts = [h for h, _ in cluster.volume_hosts(volume)]
        gfapi.mkdir(self.dir)
        self.xml = pool_xml(name, self.hosts, volume=volume,
                            directory=self.dir)
        self.xml_path = os.path.join(str(workdir), name + '.xml')
        with open(self.xml_path, 'w') as f:
            f.write(self.xml)
        if libvirtd is not None:
            libvirtd.virsh('pool-create', self.xml_path)

    def path(self, vol):
        return '%s/%s' % (self.dir, vol)

    def uri(self, vol):
        """The key/target path libvirt shows: first host, no port."""
        return 'gluster://%s/%s%s/%s' % (self.hosts[0], self.volume,
                                         self.dir, vol)

    def virsh(self, *args, **kw):
        return self.libvirtd.virsh(*args, **kw)

    def pool(self):
        return self.libvirtd.conn().storagePoolLookupByName(self.name)

    def refresh(self):
        self.virsh('pool-refresh', self.name)

    def listed(self, refresh=True):
        """Volume names libvirtd lists (after a pool-refresh)."""
        if refresh:
            self.refresh()
        return sorted(self.pool().listVolumes())

    def files(self):
        return self.gfapi.listdir(self.dir)

    def temp_files(self):
        return gfapi_temp_files(self.gfapi, self.dir)

    def cli(self, verb, *args, **kw):
        """gfpool VERB --host.. --volume.. --dir.. ARGS (gfpool_cli's kw)"""
        return gfpool_cli(verb, *(pool_opts(self.cluster, self.dir,
                                            self.volume) + list(args)), **kw)

    def cli_xml(self, verb, *args, **kw):
        """gfpool VERB --pool-xml FILE ARGS"""
        return gfpool_cli(verb, '--pool-xml', self.xml_path, *args, **kw)

    def dumpxml(self, vol):
        return vol_xml_doc(self.virsh('vol-dumpxml', '--pool', self.name,
                                      vol).stdout)

    def local_copy(self, vol, tmpdir):
        return copy_out(self.gfapi, self.path(vol),
                        os.path.join(str(tmpdir), vol.replace('/', '_')))

    def cleanup(self):
        if self.libvirtd is not None:
            self.libvirtd.virsh('pool-destroy', self.name, check=False)
        self.gfapi.rmtree(self.dir)


def assert_nothing_left(pool, name, before=None):
    """After a failed create: no temp file in the dir, `name` not listed by
    libvirtd (if any) nor present in the dir (unless it was in `before`)."""
    assert pool.temp_files() == [], pool.files()
    files = pool.files()
    if before is not None:
        assert files == before, (files, before)
    elif name:
        assert name not in files
    if pool.libvirtd is not None and name:
        listed = pool.listed()
        if before is None or name not in before:
            assert name not in listed


def run_parallel(cmds, timeout=120):
    """Run argv lists concurrently; -> list of CompletedProcess-like
    (returncode, stdout, stderr) in order."""
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE,
                              universal_newlines=True) for c in cmds]
    out = []
    for p in procs:
        so, se = p.communicate(timeout=timeout)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, so, se))
    return out


def round_up(v, a):
    return (v + a - 1) // a * a


def virsh_fails(p, *args, expect, timeout=60):
    """`p.virsh(*args)` (a libvirtd or a pool helper) exits 1 and its stderr
    holds `expect` (a string or a list of them)."""
    r = p.virsh(*args, check=False, timeout=timeout)
    assert r.returncode == 1, (args, r.stdout, r.stderr)
    for e in ([expect] if isinstance(expect, str) else expect):
        assert e in r.stderr, (args, r.stderr)
    return r


def sparse_file(path, size, extents):
    """A local file of `size` bytes with random data at `extents`
    [(offset, length)], holes elsewhere; -> bytes of data."""
    with open(path, 'wb') as f:
        f.truncate(size)
        for off, length in extents:
            f.seek(off)
            left = length
            while left:
                n = min(left, 4 << 20)
                f.write(os.urandom(n))
                left -= n
    return sum(n for _, n in extents)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(4 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def tcp_peers(pid, hosts):
    """(address, port) of each established TCP connection process `pid`
    holds to one of `hosts`: gfapi's connections are one to a glusterd and
    one per brick."""
    import re
    import subprocess
    out = subprocess.run(['ss', '-Htnp', 'state', 'established'],
                         stdout=subprocess.PIPE, universal_newlines=True,
                         check=True).stdout
    peers = []
    for line in out.splitlines():
        if not re.search(r'pid=%d,' % pid, line):
            continue
        fields = line.split()
        addr, _, port = fields[3].rpartition(':')
        if addr in hosts:
            peers.append((addr, int(port)))
    return sorted(peers)
