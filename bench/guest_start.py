#!/usr/bin/python3
"""Guest start and destroy: a disk on local files vs on gluster, with
Debian's storage-file module vs ours (libvirt_storage_file_gluster.so).

Run as root with Debian's python, after scripts/build.sh:

    /usr/bin/python3 bench/guest_start.py [--reps 3] [--no-docs]

One private GlusterFS cluster and two private libvirtds with the QEMU
driver and our pool module: one with Debian's storage-file module for
gluster, one with ours. A TCG guest boots a boot sector (tests/guest) from
a raw image, or from a qcow2 chain of 1 or 3 overlays over it, on local
files (a temp dir) or in a volume of our pool (`gfpool disk-xml`). Each
cell: `virsh start` until it returns, the boot line on the serial port,
then `virsh destroy`; medians of --reps runs. Results go to
bench/results/guest-start-<stamp>.json and, unless --no-docs, the table in
bench/README.md between this release's markers.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests'))
sys.path.insert(0, os.path.join(REPO, 'tests', 'integration'))

import testbed  # noqa: E402
from guest import bootsector, guestlib  # noqa: E402
from helpers import pool_xml  # noqa: E402
from run import log, source_rev, teardown  # noqa: E402

BUILD = testbed.BUILD
CLI = os.path.join(BUILD, 'src', 'tools', 'gfpool')
MODULE = os.path.join(BUILD, 'src', 'storage', 'libvirt_storage_backend_gluster.so')
FILE_MODULE = os.path.join(BUILD, 'src', 'storage', 'libvirt_storage_file_gluster.so')
README = os.path.join(HERE, 'README.md')
BEGIN = '<!-- BEGIN GUEST START %s (written by bench/guest_start.py) -->' % testbed.RELEASE
END = '<!-- END GUEST START %s -->' % testbed.RELEASE
MESSAGE = 'GFPOOL-START-BENCH'
DISKS = (('raw', 0), ('qcow2, 1 backing layer', 1), ('qcow2, 3 backing layers', 3))


def make_chain(layers, make_overlay):
    names = ['base.raw']
    for i in range(1, layers + 1):
        names.append('l%d.qcow2' % i)
        make_overlay(names[-1], names[-2], 'raw' if i == 1 else 'qcow2')
    return names


def local_disk(work, layers):
    d = os.path.join(work, 'local%d' % layers)
    os.makedirs(d, exist_ok=True)
    bootsector.write_image(os.path.join(d, 'base.raw'), MESSAGE)

    def overlay(name, backing, fmt):
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', fmt, '-b', backing,
                        os.path.join(d, name)], cwd=d, check=True)
    top = make_chain(layers, overlay)[-1]
    return ("<disk type='file' device='disk'><driver name='qemu' type='%s'/>"
            "<source file='%s'/><target dev='vda' bus='virtio'/></disk>" %
            ('raw' if layers == 0 else 'qcow2', os.path.join(d, top)))


def gluster_disk(d, pool, pool_xml_path, layers, work):
    img = bootsector.write_image(os.path.join(work, 'boot%d.img' % layers), MESSAGE)
    d.virsh('vol-create-as', pool, 'base.raw', '1M', '--format', 'raw')
    d.virsh('vol-upload', '--pool', pool, 'base.raw', img)

    def overlay(name, backing, fmt):
        d.virsh('vol-create-as', pool, name, '1M', '--format', 'qcow2',
                '--backing-vol', backing, '--backing-vol-format', fmt)
    top = make_chain(layers, overlay)[-1]
    return subprocess.run([CLI, 'disk-xml', '--pool-xml', pool_xml_path, top],
                          stdout=subprocess.PIPE, universal_newlines=True,
                          check=True).stdout


def one_run(d, work, name, disk):
    serial = os.path.join(work, name + '.serial')
    if os.path.exists(serial):
        os.unlink(serial)
    xml = os.path.join(work, name + '.xml')
    with open(xml, 'w') as f:
        f.write(guestlib.domain_xml(name, disk, serial))
    d.virsh('define', xml)
    try:
        t0 = time.monotonic()
        d.virsh('start', name, timeout=300)
        start = time.monotonic() - t0
        ok, _ = guestlib.wait_serial(serial, MESSAGE, timeout=120)
        if not ok:
            raise SystemExit('%s did not boot' % name)
        t0 = time.monotonic()
        d.virsh('destroy', name, timeout=300)
        destroy = time.monotonic() - t0
    finally:
        d.virsh('destroy', name, check=False)
        d.virsh('undefine', name, check=False)
    return start, destroy


def measure(args):
    work = tempfile.mkdtemp(prefix='gfpool-start-', dir='/tmp')
    cluster = testbed.Cluster(os.path.join(work, 'cluster'))
    daemons = []
    results = []
    try:
        cluster.start()
        hosts = [h for h, _ in cluster.volume_hosts('rep3')]
        for label, file_module in (('Debian\'s module', None), ('gfpool\'s module', FILE_MODULE)):
            d = testbed.Libvirtd(os.path.join(work, 'd%d' % len(daemons)), with_qemu=True,
                                 module=MODULE, file_module=file_module)
            daemons.append(d)
            d.start()
            for disk_label, layers in DISKS:
                pool = 'bs%d%d' % (len(daemons), layers)
                xml = os.path.join(work, pool + '.xml')
                with open(xml, 'w') as f:
                    f.write(pool_xml(pool, hosts, directory='/' + pool))
                subprocess.run([CLI, 'pool-build', '--pool-xml', xml], check=True)
                d.virsh('pool-create', xml)
                disk = gluster_disk(d, pool, xml, layers, work)
                runs = [one_run(d, work, 'g%s' % pool, disk) for _ in range(args.reps)]
                results.append({'disk': disk_label, 'where': 'gluster, ' + label,
                                'start_s': statistics.median(r[0] for r in runs),
                                'destroy_s': statistics.median(r[1] for r in runs),
                                'runs': runs})
                log('%s / gluster, %s: %s' % (disk_label, label, results[-1]))
        d = daemons[-1]
        for disk_label, layers in DISKS:
            disk = local_disk(work, layers)
            runs = [one_run(d, work, 'l%d' % layers, disk) for _ in range(args.reps)]
            results.append({'disk': disk_label, 'where': 'local files',
                            'start_s': statistics.median(r[0] for r in runs),
                            'destroy_s': statistics.median(r[1] for r in runs),
                            'runs': runs})
            log('%s / local: %s' % (disk_label, results[-1]))
    finally:
        teardown(work, daemons, cluster)
    return results


def make_table(results):
    by = {(r['disk'], r['where']): r for r in results}
    lines = ['| disk | local files | gluster, Debian\'s module | gluster, gfpool\'s module '
             '| ours vs local |', '|---|---|---|---|---|']
    for disk_label, _ in DISKS:
        loc = by[(disk_label, 'local files')]
        deb = by[(disk_label, 'gluster, Debian\'s module')]
        ours = by[(disk_label, 'gluster, gfpool\'s module')]
        lines.append('| %s, start | %.2f s | %.2f s | %.2f s | %+.2f s |' % (
            disk_label, loc['start_s'], deb['start_s'], ours['start_s'],
            ours['start_s'] - loc['start_s']))
        lines.append('| %s, destroy | %.2f s | %.2f s | %.2f s | %+.2f s |' % (
            disk_label, loc['destroy_s'], deb['destroy_s'], ours['destroy_s'],
            ours['destroy_s'] - loc['destroy_s']))
    return '\n'.join(lines)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--no-docs', action='store_true')
    args = ap.parse_args(argv)
    results = measure(args)
    stamp = time.strftime('%Y-%m-%d-%H%M%S')
    os.makedirs(os.path.join(HERE, 'results'), exist_ok=True)
    js = os.path.join(HERE, 'results', 'guest-start-%s.json' % stamp)
    with open(js, 'w') as f:
        json.dump({'release': testbed.RELEASE, 'source': source_rev(), 'reps': args.reps,
                   'results': results}, f, indent=1)
    table = make_table(results)
    print(table)
    if not args.no_docs:
        with open(README) as f:
            text = f.read()
        block = '%s\n%s (%s, %s, medians of %d; results/%s)\n\n%s\n%s' % (
            BEGIN, testbed.RELEASE, stamp, source_rev(), args.reps, os.path.basename(js),
            table, END)
        if BEGIN in text:
            text = re.sub(re.escape(BEGIN) + '.*?' + re.escape(END), lambda m: block, text,
                          flags=re.S)
        else:
            text += '\n## Guest start and destroy (bench/guest_start.py)\n\n%s\n' % block
        with open(README, 'w') as f:
            f.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
