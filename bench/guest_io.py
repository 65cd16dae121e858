#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Guest disk throughput: QEMU's gluster driver (gfapi) vs a FUSE mount vs
the bricks' own filesystem, the classic measurement redone on the test bed.

Run as root with Debian's python, after scripts/build.sh:

    /usr/bin/python3 bench/guest_io.py [--reps 3] [--size-mib 1024]
                                       [--volumes single,rep3] [--kvm]

One private GlusterFS cluster (tests/testbed/) and one private libvirtd
with the QEMU driver and our module.  A Linux guest (Debian's own kernel,
linux-image-amd64, booted directly, and an initramfs holding Debian's
busybox-static: both fetched with `apt-get download` into
/var/cache/gfpool/guest-io, nothing installed) reads its whole virtio disk
with `dd bs=1M iflag=direct`, then writes it with `dd bs=1M oflag=direct`,
timing each with /proc/uptime, and prints the result on its serial port.
The disk is, in turn:

  brick  a raw file on the filesystem the bricks live on, no gluster
         (`<disk type='file'>`, cache none): the limit;
  gfapi  the same bytes in a volume of our pool, `<disk type='network'
         protocol='gluster'>` as `gfpool disk-xml --cache none` prints it:
         QEMU's gluster driver (libgfapi);
  nbd    the same volume served by nbdkit-gfpool-plugin with cache=none
         (one nbdkit per volume on a unix socket), `gfpool disk-xml --nbd
         SOCKET --cache none`: QEMU's NBD client, no gluster driver in QEMU;
  fuse   the same volume file through a glusterfs FUSE mount (a libvirt
         `netfs` pool of the same directory, mounted by the daemon),
         `<disk type='file'>`, cache none: what users without gfpool do.

Guests run under TCG unless --kvm (on the test machine /dev/kvm exists but
a KVM guest never gets past the BIOS).  Results go to
bench/results/guest-io-<stamp>.json and, unless --no-docs, the table in
docs/guest-io.md between the BEGIN/END markers.
"""

import argparse
import glob
import json
import lzma
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests'))

import testbed  # noqa: E402
from testbed import guests  # noqa: E402
from testbed.pools import netfs_pool_xml, pool_xml  # noqa: E402
from benchlib import (loadavg, log, run_guarded, sh, source_rev,  # noqa: E402
                      teardown)

CACHE = '/var/cache/gfpool/guest-io'
BUILD = testbed.BUILD
CLI = os.path.join(BUILD, 'src', 'tools', 'gfpool')
MODULE = os.path.join(BUILD, 'src', 'guard',
                      'libvirt_storage_backend_gluster.so')
DOC = os.path.join(REPO, 'docs', 'guest-io.md')
# One block of results per Debian release in DOC.
BEGIN = '<!-- BEGIN GUEST IO RESULTS %s (written by bench/guest_io.py) -->'
END = '<!-- END GUEST IO RESULTS %s -->'
TITLE = {'debian12': 'Debian 12 (QEMU 7.2, libvirt 9.0, GlusterFS 10.3, nbdkit 1.32)',
         'debian13': 'Debian 13 (QEMU 10.0, libvirt 11.3, GlusterFS 11.1, nbdkit 1.42)'}
DIR = '/gio'
MiB = 1 << 20
# in dependency order (each module's .modinfo depends=)
MODULES = ('virtio_ring', 'virtio', 'virtio_pci_legacy_dev',
           'virtio_pci_modern_dev', 'virtio_pci', 'virtio_blk')
CONFIGS = ('brick', 'gfapi', 'nbd', 'fuse')
PLUGIN = os.path.join(BUILD, 'src', 'nbdkit', 'nbdkit-gfpool-plugin.so')

INIT = r"""#!/bin/sh
/bin/busybox mkdir -p /proc /sys /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
for m in %(modules)s; do /bin/busybox insmod /lib/$m.ko; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do /bin/busybox sleep 0.1; i=$((i+1)); done
up() { /bin/busybox cut -d' ' -f1 /proc/uptime; }
t0=$(up)
/bin/busybox dd if=/dev/vda of=/dev/null bs=1M count=%(count)d iflag=direct 2>/dev/null || echo GIO-ERROR read
t1=$(up)
/bin/busybox dd if=/dev/zero of=/dev/vda bs=1M count=%(count)d oflag=direct 2>/dev/null || echo GIO-ERROR write
t2=$(up)
echo "GIO-RESULT read_s=$(echo "$t1 $t0" | /bin/busybox awk '{print $1-$2}') write_s=$(echo "$t2 $t1" | /bin/busybox awk '{print $1-$2}')"
/bin/busybox sync
/bin/busybox poweroff -f
"""


# ---------------------------------------------------------------------------
# Guest kernel and initramfs
# ---------------------------------------------------------------------------
def apt_download(pkg, dest):
    got = glob.glob(os.path.join(dest, pkg.split('=')[0] + '_*.deb'))
    if got:
        return got[0]
    p = subprocess.run(['apt-get', 'download', pkg], cwd=dest,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    got = glob.glob(os.path.join(dest, pkg.split('=')[0] + '_*.deb'))
    if not got:
        raise SystemExit('apt-get download %s failed: %s' % (pkg, p.stdout))
    return got[0]


def cpio_newc(entries, path):
    """entries: [(name, mode, data or None for a dir)] -> a newc archive."""
    out = bytearray()

    def add(name, mode, data, ino):
        nb = name.encode() + b'\0'
        hdr = b'070701' + b''.join(b'%08X' % x for x in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))
        out.extend(hdr + nb)
        out.extend(b'\0' * ((4 - len(out) % 4) % 4))
        out.extend(data)
        out.extend(b'\0' * ((4 - len(out) % 4) % 4))

    for i, (name, mode, data) in enumerate(entries, 1):
        add(name, mode, data if data is not None else b'', i)
    add('TRAILER!!!', 0, b'', 0)
    with open(path, 'wb') as f:
        f.write(out)


def guest_assets(count_mib):
    """-> (kernel, initrd) for a guest that times `count_mib` MiB."""
    os.makedirs(CACHE, exist_ok=True)
    p = subprocess.run(['apt-cache', 'depends', 'linux-image-amd64'],
                       stdout=subprocess.PIPE, universal_newlines=True)
    m = re.search(r'Depends: (linux-image-[0-9][^\s]*)', p.stdout)
    if not m:
        raise SystemExit('no linux-image-amd64 in apt: %s' % p.stdout)
    kdeb = apt_download(m.group(1), CACHE)
    bdeb = apt_download('busybox-static', CACHE)
    root = os.path.join(CACHE, 'x')
    if not os.path.isdir(os.path.join(root, 'boot')):
        for deb in (kdeb, bdeb):
            subprocess.run(['dpkg-deb', '-x', deb, root], check=True)
    kernel = glob.glob(os.path.join(root, 'boot', 'vmlinuz-*'))[0]
    mods = {}
    # Debian 13's kernel: modules under /usr/lib, xz-compressed (busybox's
    # insmod may not read that), and the virtio core built in
    moddirs = glob.glob(os.path.join(root, 'lib', 'modules', '*')) + \
        glob.glob(os.path.join(root, 'usr', 'lib', 'modules', '*'))
    builtin = set()
    for d in moddirs:
        if os.path.exists(os.path.join(d, 'modules.builtin')):
            with open(os.path.join(d, 'modules.builtin')) as f:
                builtin |= {os.path.basename(x.strip())[:-3] for x in f}
    for name in MODULES:
        if name in builtin:
            continue
        hit = [h for d in moddirs for ext in ('.ko', '.ko.xz')
               for h in glob.glob(os.path.join(d, 'kernel', '**', name + ext),
                                  recursive=True)]
        if not hit:
            raise SystemExit('module %s not in %s' % (name, kdeb))
        with open(hit[0], 'rb') as f:
            mods[name] = f.read()
        if hit[0].endswith('.xz'):
            mods[name] = lzma.decompress(mods[name])
    bb = [p for p in (os.path.join(root, 'bin', 'busybox'),
                      os.path.join(root, 'usr', 'bin', 'busybox')) if os.path.exists(p)]
    if not bb:
        raise SystemExit('no busybox in %s' % bdeb)
    with open(bb[0], 'rb') as f:
        busybox = f.read()
    init = INIT % {'modules': ' '.join(m for m in MODULES if m in mods), 'count': count_mib}
    entries = [('bin', 0o40755, None), ('lib', 0o40755, None),
               ('bin/busybox', 0o100755, busybox),
               ('bin/sh', 0o120777, b'busybox'),
               ('init', 0o100755, init.encode())]
    entries += [('lib/%s.ko' % n, 0o100644, d) for n, d in mods.items()]
    initrd = os.path.join(CACHE, 'initrd-%d.cpio' % count_mib)
    cpio_newc(entries, initrd)
    return kernel, initrd


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------
class GuestIO:
    def __init__(self, args):
        self.args = args
        self.size = args.size_mib
        self.volumes = args.volumes.split(',')
        self.virt = 'kvm' if args.kvm else 'qemu'
        self.stamp = time.strftime('%Y-%m-%d-%H%M%S')
        os.makedirs(args.out, exist_ok=True)
        self.json_path = os.path.join(args.out, 'guest-io-%s-%s.json' % (
            testbed.RELEASE, self.stamp))
        self.data = {'meta': {}, 'samples': []}
        self.work = self.cluster = self.d = None
        self.netfs = []
        self.nbdkits = {}       # volume -> (Popen, socket)

    def save(self):
        with open(self.json_path + '.tmp', 'w') as f:
            json.dump(self.data, f, indent=1)
        os.replace(self.json_path + '.tmp', self.json_path)

    def virsh(self, *args, check=True, timeout=300):
        p = self.d.virsh(*args, check=False, timeout=timeout)
        if check and p.returncode:
            raise testbed.TestbedError('virsh %s: %s' % (
                ' '.join(args), p.stderr.strip()))
        return p

    def cli(self, v, *args):
        hosts = []
        for h in self.cluster.addresses:
            hosts += ['--host', h]
        p = sh(CLI, args[0], *hosts, '--volume', v, '--dir', DIR, *args[1:])
        if p.returncode:
            raise testbed.TestbedError('gfpool %s: %s' % (
                ' '.join(args), p.stderr.strip()))
        return p.stdout

    def setup(self):
        self.kernel, self.initrd = guest_assets(self.size)
        self.work = tempfile.mkdtemp(prefix='gfgio', dir='/tmp')
        log('work dir %s, guests with virt type %s' % (self.work, self.virt))
        self.data['meta'] = {
            'date': time.strftime('%Y-%m-%d %H:%M:%S %Z'),
            'release': testbed.RELEASE,
            'virt_type': self.virt, 'size_mib': self.size,
            'reps': self.args.reps, 'nproc': os.cpu_count(),
            'kernel': os.path.basename(self.kernel),
            'qemu': sh('qemu-system-x86_64', '--version').stdout
            .splitlines()[0],
            'gfpool_commit': source_rev(),
            'loadavg_start': loadavg(),
        }
        self.cluster = testbed.Cluster()
        self.cluster.start()
        log('cluster up: %s' % self.cluster.addresses)
        self.d = testbed.Libvirtd(os.path.join(self.work, 'libvirtd'),
                                  module=MODULE, with_qemu=True,
                                  log_filters='3:*')
        self.d.start()
        self.payload = os.path.join(self.work, 'payload.raw')
        with open(self.payload, 'wb') as f:
            for _ in range(self.size // 16):
                f.write(os.urandom(16 * MiB))
        # the bricks' filesystem: the directory the cluster keeps them in
        self.brick_dir = os.path.join(self.cluster.base_dir, 'gio-local')
        os.makedirs(self.brick_dir, exist_ok=True)
        for v in self.volumes:
            self.cli(v, 'pool-build')
            self.cli(v, 'vol-create-as', 'gio.img', '%dM' % self.size,
                     '--format', 'raw')
            self.cli(v, 'vol-upload', 'gio.img', self.payload)
            name = 'fuse-%s' % v
            target = os.path.join(self.work, 'mnt-' + v)
            os.makedirs(target)
            xml = os.path.join(self.work, name + '.xml')
            with open(xml, 'w') as f:
                f.write(netfs_pool_xml(name, self.cluster.addresses[0], v, DIR, target))
            self.virsh('pool-create', xml, timeout=120)
            self.netfs.append(name)
            self.virsh('pool-create', self.gluster_pool_xml(v))
            sock = os.path.join(self.work, 'nbd-%s.sock' % v)
            # cache=none: the bricks bypass their page cache, as they do
            # for the gluster:// disk's cache='none' (docs/guest-io.md)
            proc = subprocess.Popen(['nbdkit', '-f', '-U', sock, PLUGIN,
                                     'pool-xml=' + self.gluster_pool_xml(v),
                                     'cache=none'])
            self.nbdkits[v] = (proc, sock)
            for _ in range(200):
                if os.path.exists(sock):
                    break
                time.sleep(0.05)

    def gluster_pool_xml(self, v):
        path = os.path.join(self.work, 'gluster-%s.xml' % v)
        with open(path, 'w') as f:
            f.write(pool_xml('gfapi-%s' % v, self.cluster.addresses,
                             volume=v, directory=DIR))
        return path

    def disk(self, config, v):
        if config == 'gfapi':
            return self.cli(v, 'disk-xml', 'gio.img', '--cache', 'none')
        if config == 'nbd':
            return self.cli(v, 'disk-xml', 'gio.img', '--cache', 'none',
                            '--nbd', self.nbdkits[v][1])
        if config == 'fuse':
            path = os.path.join(self.work, 'mnt-' + v, 'gio.img')
        else:
            path = os.path.join(self.brick_dir, 'gio.img')
            shutil.copyfile(self.payload, path)
        return ("<disk type='file' device='disk'><driver name='qemu' "
                "type='raw' cache='none' io='native'/><source file='%s'/>"
                "<target dev='vda' bus='virtio'/></disk>" % path)

    def domain(self, name, disk, serial):
        return """<domain type='%s'>
  <name>%s</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%s</kernel>
    <initrd>%s</initrd>
    <cmdline>console=ttyS0 quiet panic=-1</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    %s
    <serial type='file'><source path='%s'/><target port='0'/></serial>
  </devices>
</domain>""" % (self.virt, name, self.kernel, self.initrd, disk.strip(),
                serial)

    def run_guest(self, config, v, i):
        """One guest's sample; a sample whose guest clock says it took
        longer than the guest lived (a TCG guest's clock jumped once in
        ~60 guests) is recorded as discarded and taken again, twice at
        most."""
        for attempt in range(3):
            t0 = time.monotonic()
            ent = self.run_guest_once(config, v, i, attempt)
            wall = time.monotonic() - t0
            if ent['read_s'] + ent['write_s'] > wall:
                ent['discarded'] = 'guest clock: %.1f s of I/O in %.1f s of life' % (
                    ent['read_s'] + ent['write_s'], wall)
            self.data['samples'].append(ent)
            self.save()
            log('%-5s %-6s #%d read %.0f MiB/s, write %.0f MiB/s%s' % (
                config, v, i, ent['read_mibs'], ent['write_mibs'],
                ' DISCARDED: ' + ent['discarded'] if 'discarded' in ent else ''))
            if 'discarded' not in ent:
                break

    def run_guest_once(self, config, v, i, attempt):
        name = 'gio-%s-%s-%d%s' % (config, v, i, '-%d' % attempt if attempt else '')
        serial = os.path.join(self.work, name + '.serial')
        xml = os.path.join(self.work, name + '.xml')
        with open(xml, 'w') as f:
            f.write(self.domain(name, self.disk(config, v), serial))
        self.virsh('create', xml, timeout=120)
        if config == 'gfapi':
            qb = self.virsh('qemu-monitor-command', name,
                            '{"execute":"query-block"}').stdout
            if not guests.query_block_gluster(qb):
                raise SystemExit('%s: QEMU did not open a gluster node: %s'
                                 % (name, qb))
        if config == 'nbd':
            qb = self.virsh('qemu-monitor-command', name,
                            '{"execute":"query-block"}').stdout
            if 'nbd' not in qb or guests.query_block_gluster(qb):
                raise SystemExit('%s: QEMU did not open the NBD export: %s'
                                 % (name, qb))
        ok, out = guests.wait_serial(serial, 'GIO-RESULT', timeout=900)
        self.virsh('destroy', name, check=False)
        m = re.search(r'GIO-RESULT read_s=([\d.]+) write_s=([\d.]+)', out)
        if not ok or not m or 'GIO-ERROR' in out:
            raise SystemExit('%s: no result on the serial port:\n%s\n%s' % (
                name, out[-3000:], self.d.qemu_log(name, 30)))
        r, w = float(m.group(1)), float(m.group(2))
        ent = {'config': config, 'volume': v, 'rep': i, 'read_s': r,
               'write_s': w, 'read_mibs': round(self.size / r, 1),
               'write_mibs': round(self.size / w, 1), 'loadavg': loadavg()}
        return ent

    def run(self):
        self.setup()
        for v in self.volumes:
            for i in range(self.args.reps):
                # interleaved, so drift in the machine's load hits all three
                for config in CONFIGS:
                    if config == 'brick' and v != self.volumes[0]:
                        continue
                    self.run_guest(config, v, i)
        self.convert()
        self.data['meta']['loadavg_end'] = loadavg()
        self.save()

    def convert(self):
        """qemu-img convert of the payload into the volume and back out,
        through gluster:// (QEMU's gluster driver: its glfs_fini included,
        as every qemu-img call pays it) and through the plugin's nbd+unix://."""
        out = os.path.join(self.work, 'convert-out.raw')
        for v in self.volumes:
            uris = {'gfapi': 'gluster://%s/%s%s/gio.img' % (self.cluster.addresses[0], v, DIR),
                    'nbd': 'nbd+unix:///gio.img?socket=%s' % self.nbdkits[v][1]}
            for i in range(self.args.reps):
                for config, uri in uris.items():
                    t0 = time.monotonic()
                    p = sh('qemu-img', 'convert', '-n', '-f', 'raw', '-O', 'raw',
                           self.payload, uri)
                    t1 = time.monotonic()
                    q = sh('qemu-img', 'convert', '-f', 'raw', '-O', 'raw', uri, out)
                    t2 = time.monotonic()
                    if p.returncode or q.returncode:
                        raise SystemExit('qemu-img convert %s: %s%s' % (uri, p.stderr, q.stderr))
                    os.unlink(out)
                    ent = {'config': config, 'volume': v, 'rep': i,
                           'to_s': t1 - t0, 'from_s': t2 - t1}
                    self.data.setdefault('convert', []).append(ent)
                    self.save()
                    log('convert %-5s %-6s #%d into the volume %.2f s, out %.2f s'
                        % (config, v, i, ent['to_s'], ent['from_s']))

    def cleanup(self):
        for proc, _ in self.nbdkits.values():
            proc.terminate()
            proc.wait(30)
        daemons = [self.d] if self.d is not None else []
        teardown(self.work, daemons, self.cluster,
                 [(self.d, n) for n in self.netfs if self.d is not None])


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
def make_table(data):
    meta = data['meta']
    by = {}
    for e in kept(data):
        by.setdefault((e['config'], e['volume']), []).append(e)
    brick = [k for k in by if k[0] == 'brick']
    base = None
    if brick:
        es = by[brick[0]]
        base = (statistics.median(x['read_mibs'] for x in es),
                statistics.median(x['write_mibs'] for x in es))
    lines = [
        'Run: %s; %s guests (%s), 1 vCPU, %d MiB read then written with '
        'O_DIRECT, 1 MiB requests; median of %d; QEMU: %s; gfpool %s; load '
        'average at start/end: %s / %s.' % (
            meta.get('date'), meta.get('virt_type'), meta.get('kernel'),
            meta.get('size_mib'), meta.get('reps'), meta.get('qemu'),
            meta.get('gfpool_commit'),
            ' '.join(meta.get('loadavg_start') or []),
            ' '.join(meta.get('loadavg_end') or [])),
        '',
        '| disk | volume | read MiB/s (min–max) | write MiB/s (min–max) | '
        'read vs brick | write vs brick | read, write vs gluster:// |',
        '|---|---|---|---|---|---|---|',
    ]
    label = {'brick': 'local file on the bricks\' filesystem (no gluster)',
             'gfapi': 'gluster:// (QEMU gluster driver, `gfpool disk-xml`)',
             'nbd': 'NBD from nbdkit-gfpool-plugin (`gfpool disk-xml --nbd`)',
             'fuse': 'glusterfs FUSE mount (netfs pool), file disk'}
    for (config, v) in sorted(by, key=lambda k: (k[1] != 'single', k[1],
                                                 CONFIGS.index(k[0]))):
        es = by[(config, v)]
        r = statistics.median(x['read_mibs'] for x in es)
        w = statistics.median(x['write_mibs'] for x in es)

        def vs(x, b):
            if not b or config == 'brick':
                return ''
            return '%+.0f %%' % ((x / b - 1) * 100)
        rs = [x['read_mibs'] for x in es]
        ws = [x['write_mibs'] for x in es]
        g = by.get(('gfapi', v))
        ratio = ''
        if g and config in ('nbd', 'fuse'):
            gr = statistics.median(x['read_mibs'] for x in g)
            gw = statistics.median(x['write_mibs'] for x in g)
            ratio = '%.0f %%, %.0f %%' % (r / gr * 100, w / gw * 100)
        lines.append('| %s | %s | %.0f (%.0f–%.0f) | %.0f (%.0f–%.0f) | %s | '
                     '%s | %s |' % (
                         label[config], '—' if config == 'brick'
                         else '`%s`' % v, r, min(rs), max(rs), w, min(ws),
                         max(ws), vs(r, base and base[0]),
                         vs(w, base and base[1]), ratio))
    conv = {}
    for e in data.get('convert', []):
        conv.setdefault((e['volume'], e['config']), []).append(e)
    if conv:
        lines += ['', '`qemu-img convert` of the %d MiB payload into the volume '
                  'and back out (medians; each gluster:// call includes its '
                  'glfs_fini):' % meta.get('size_mib'), '',
                  '| volume | into, gluster:// | into, nbd+unix:// | out, gluster:// | '
                  'out, nbd+unix:// |', '|---|---|---|---|---|']
        for v in sorted({k[0] for k in conv}):
            g, n = conv.get((v, 'gfapi'), []), conv.get((v, 'nbd'), [])

            def med(es, key):
                return '%.2f s' % statistics.median(x[key] for x in es) if es else '—'
            lines.append('| `%s` | %s | %s | %s | %s |' % (
                v, med(g, 'to_s'), med(n, 'to_s'), med(g, 'from_s'), med(n, 'from_s')))
    return '\n'.join(lines)


def kept(data):
    return [e for e in data['samples'] if 'discarded' not in e]


def release_of(data):
    # runs before there was one block per release were all Debian 12's
    return data['meta'].get('release', 'debian12')


def make_plot(data, path):
    """Bars of read and write MiB/s per disk, one panel per volume. ->
    path, or None without matplotlib (python3-matplotlib)."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        log('matplotlib not importable: no plot')
        return None
    samples = kept(data)
    vols = sorted({e['volume'] for e in samples if e['config'] != 'brick'},
                  key=lambda v: v != 'single')
    brick = [e for e in samples if e['config'] == 'brick']
    names = {'brick': 'local file', 'gfapi': 'gluster://', 'nbd': 'NBD (nbdkit)',
             'fuse': 'FUSE'}
    fig, axes = plt.subplots(1, len(vols), figsize=(5.5 * len(vols), 4), squeeze=False)
    for ax, v in zip(axes[0], vols):
        configs = [c for c in CONFIGS
                   if c == 'brick' and brick or
                   any(e['config'] == c and e['volume'] == v for e in samples)]
        for j, (key, color) in enumerate((('read_mibs', '#2b7bba'),
                                          ('write_mibs', '#d95f02'))):
            xs, ys = [], []
            for i, c in enumerate(configs):
                es = brick if c == 'brick' else [
                    e for e in samples if e['config'] == c and e['volume'] == v]
                xs.append(i + (j - 0.5) * 0.38)
                ys.append(statistics.median(e[key] for e in es))
            ax.bar(xs, ys, 0.38, color=color, label=key.split('_')[0])
            for x, y in zip(xs, ys):
                ax.text(x, y, '%.0f' % y, ha='center', va='bottom', fontsize=7)
        ax.set_xticks(range(len(configs)))
        ax.set_xticklabels([names[c] for c in configs], fontsize=8)
        ax.set_ylabel('MiB/s (median)')
        ax.set_title('%s: volume %s' % (TITLE.get(release_of(data), release_of(data))
                                        .split(' (')[0], v), fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(axis='y', alpha=0.25)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def update_doc(table, js, png):
    """The release's block of DOC; a release seen for the first time goes
    after the other's block."""
    release = release_of(json.load(open(js)))
    begin, end = BEGIN % release, END % release
    rel = os.path.dirname(DOC)
    block = '%s\n\n### %s\n\n%s\n\nRaw samples: [%s](%s)%s\n\n%s' % (
        begin, TITLE.get(release, release), table, os.path.basename(js),
        os.path.relpath(js, rel),
        '\n\n![guest I/O, %s](%s)' % (release, os.path.relpath(png, rel)) if png else '',
        end)
    with open(DOC) as f:
        text = f.read()
    if begin in text and end in text:
        text = text.split(begin, 1)[0] + block + text.split(end, 1)[1]
    else:
        last = text.rfind('<!-- END GUEST IO RESULTS')
        cut = text.index('-->', last) + 3
        text = text[:cut] + '\n\n' + block + text[cut:]
    with open(DOC, 'w') as f:
        f.write(text)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--size-mib', type=int, default=1024)
    ap.add_argument('--volumes', default='single,rep3')
    ap.add_argument('--kvm', action='store_true',
                    help='KVM guests (default TCG: nested KVM on the test '
                    'machine starts QEMU but the guest never runs)')
    ap.add_argument('--out', default=os.path.join(HERE, 'results'))
    ap.add_argument('--no-docs', action='store_true')
    ap.add_argument('--report', metavar='JSON')
    args = ap.parse_args(argv)
    if args.size_mib % 16:
        ap.error('--size-mib must be a multiple of 16')
    if args.report:
        with open(args.report) as f:
            data = json.load(f)
        js = args.report
    else:
        g = GuestIO(args)
        rc = run_guarded(g)
        if rc:
            return rc
        data, js = g.data, g.json_path
    table = make_table(data)
    print(table)
    png = make_plot(data, os.path.splitext(js)[0] + '.png')
    if not args.no_docs:
        update_doc(table, js, png)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
