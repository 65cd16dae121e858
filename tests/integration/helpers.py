"""Helpers shared by the integration tests: pool XML from the example,
timing, a listener that never answers."""

import os
import socket
import threading
import time
import xml.etree.ElementTree as ET

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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
