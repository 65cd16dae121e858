# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers for tests that run real guests (QEMU TCG) on gluster volumes in
the private libvirtd (testbed.Libvirtd(..., with_qemu=True)).

    domain_xml(name, disk_xml, serial_path)  a minimal bootable domain
    wait_serial(path, text, timeout)         poll the guest's serial log
    disk_fields(xml_or_element)              what a <disk> means, comparable
    query_block_gluster(monitor_json)        gluster nodes QEMU opened
    fuse_gluster_mounts(pids)                fuse.glusterfs mounts seen by pids
    minimal_domain(disk_xml)                 a domain wrapper for validation
    virt_xml_validate(xml, tmpdir)           virt-xml-validate FILE domain
"""

import json
import subprocess
import time
import xml.etree.ElementTree as ET

DEFAULT_PORT = '24007'
DEFAULT_TRANSPORT = 'tcp'


def domain_xml(name, disk_xml, serial_path, memory_mib=64, virt_type='qemu',
               serial_append=False):
    """type='qemu' (TCG even where /dev/kvm exists), 1 vcpu, BIOS boot from
    the first hard disk, COM1 into `serial_path` (libvirt opens the file
    and hands QEMU the fd; the daemon's private namespace sees the host's
    /tmp).  serial_append: the file is appended to, not truncated (a
    migration's destination QEMU opens it again)."""
    return """<domain type='%s'>
  <name>%s</name>
  <memory unit='MiB'>%d</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <boot dev='hd'/>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
%s
    <serial type='file'>
      <source path='%s'%s/>
      <target port='0'/>
    </serial>
  </devices>
</domain>
""" % (virt_type, name, memory_mib, disk_xml.strip(), serial_path,
       " append='on'" if serial_append else '')


def minimal_domain(disk_xml, name='validate'):
    """The smallest domain the RNG schema accepts around `disk_xml`."""
    return """<domain type='qemu'>
  <name>%s</name>
  <memory unit='KiB'>65536</memory>
  <os>
    <type>hvm</type>
  </os>
  <devices>
%s
  </devices>
</domain>
""" % (name, disk_xml.strip())


def virt_xml_validate(xml, path, schema='domain'):
    """Write `xml` to `path`, run virt-xml-validate; -> (ok, output)."""
    with open(path, 'w') as f:
        f.write(xml)
    p = subprocess.run(['virt-xml-validate', path, schema],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=60)
    return p.returncode == 0, p.stdout


def wait_serial(path, text, timeout=60, alive=None, until=None):
    """Poll `path` until it contains `text` (or, with text None, until
    `until(content)` is true) -> (found, content).
    `alive()` returning False ends the wait early (guest gone)."""
    deadline = time.monotonic() + timeout
    content = b''
    want = text.encode() if isinstance(text, str) else text
    while True:
        try:
            with open(path, 'rb') as f:
                content = f.read()
        except OSError:
            content = b''
        text_now = content.decode('ascii', 'replace')
        if until(text_now) if want is None else want in content:
            return True, text_now
        if time.monotonic() > deadline or (alive is not None and
                                           not alive()):
            return False, content.decode('ascii', 'replace')
        time.sleep(0.2)


# ---------------------------------------------------------------------------
# <disk> meaning
# ---------------------------------------------------------------------------
def _source_fields(el):
    """protocol/name/hosts of a <source> (hosts with libvirt's defaults
    filled in: port 24007, transport tcp, so that our explicit attributes
    and libvirt's dumpxml, which drops the default transport, compare)."""
    if el is None:
        return None
    hosts = []
    for h in el.findall('host'):
        hosts.append((h.get('name'), h.get('port') or DEFAULT_PORT,
                      h.get('transport') or DEFAULT_TRANSPORT,
                      h.get('socket')))
    out = {'protocol': el.get('protocol'), 'name': el.get('name'),
           'hosts': hosts}
    rc = el.find('reconnect')
    if rc is not None:
        out['reconnect_delay'] = rc.get('delay')
    return out


def _chain(el):
    """The <backingStore> chain below `el` as a list of dicts; a trailing
    empty <backingStore/> (end of chain) is not an element of it."""
    out = []
    bs = el.find('backingStore')
    while bs is not None and len(bs):
        fmt = bs.find('format')
        out.append({'type': bs.get('type'),
                    'format': fmt.get('type') if fmt is not None else None,
                    'source': _source_fields(bs.find('source'))})
        bs = bs.find('backingStore')
    return out


def disk_fields(disk):
    """A <disk> (XML text or Element) -> dict of what it means."""
    if isinstance(disk, str):
        disk = ET.fromstring(disk)
    drv = disk.find('driver')
    tgt = disk.find('target')
    return {
        'type': disk.get('type'),
        'device': disk.get('device'),
        'driver_name': drv.get('name') if drv is not None else None,
        'driver_type': drv.get('type') if drv is not None else None,
        'cache': drv.get('cache') if drv is not None else None,
        'discard': drv.get('discard') if drv is not None else None,
        'source': _source_fields(disk.find('source')),
        'target_dev': tgt.get('dev') if tgt is not None else None,
        'target_bus': tgt.get('bus') if tgt is not None else None,
        'readonly': disk.find('readonly') is not None,
        'chain': _chain(disk),
    }


def domain_disks(domain_xml_text):
    """[disk_fields(...)] of every <disk> of a domain XML."""
    root = ET.fromstring(domain_xml_text)
    return [disk_fields(d) for d in root.findall('./devices/disk')]


# ---------------------------------------------------------------------------
# QEMU's block graph
# ---------------------------------------------------------------------------
def _gluster_nodes_in(obj, out):
    """Collect every {"driver": "gluster", ...} in a QMP value, looking
    inside json:{...} filename strings too."""
    if isinstance(obj, dict):
        if obj.get('driver') == 'gluster':
            out.append(obj)
        for v in obj.values():
            _gluster_nodes_in(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _gluster_nodes_in(v, out)
    elif isinstance(obj, str) and obj.startswith('json:'):
        try:
            _gluster_nodes_in(json.loads(obj[5:]), out)
        except ValueError:
            pass


def gluster_node_summary(node):
    """{"driver": "gluster", "volume": v, "path": p, "server.0.host": ...}
    (flat, as in json: filenames) or {"server": [{...}]} (structured) ->
    (volume, path, [hosts in order])."""
    hosts = []
    if isinstance(node.get('server'), list):
        hosts = [s.get('host') for s in node['server']]
    else:
        i = 0
        while 'server.%d.host' % i in node:
            hosts.append(node['server.%d.host' % i])
            i += 1
    return node.get('volume'), node.get('path'), hosts


def query_block_gluster(qmp_text):
    """`virsh qemu-monitor-command DOM '{"execute":"query-block"}'` output
    -> sorted set of (volume, path, tuple(hosts)) QEMU opened with its
    gluster block driver."""
    data = json.loads(qmp_text)
    nodes = []
    _gluster_nodes_in(data.get('return', data), nodes)
    return sorted(set((v, p, tuple(h)) for v, p, h in
                      map(gluster_node_summary, nodes)))


def fuse_gluster_mounts(pids=(), hosts=None):
    """fuse.glusterfs lines in /proc/mounts and /proc/PID/mounts (each
    pid sees its own mount namespace).  With `hosts`, only mounts of
    those servers count (other test beds on the machine may have theirs)."""
    found = []
    for src in ['/proc/mounts'] + ['/proc/%d/mounts' % p for p in pids if p]:
        try:
            with open(src) as f:
                for line in f:
                    fields = line.split()
                    if len(fields) < 3 or 'glusterfs' not in fields[2]:
                        continue
                    if hosts and not any(fields[0].startswith(h + ':')
                                         for h in hosts):
                        continue
                    found.append('%s: %s' % (src, line.strip()))
        except OSError:
            pass
    return found


def maps_of(pid):
    try:
        with open('/proc/%d/maps' % pid) as f:
            return f.read()
    except OSError:
        return ''
