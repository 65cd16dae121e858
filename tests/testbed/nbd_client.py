#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The smallest NBD client the tests need to play a QEMU: fixed newstyle
handshake on a unix socket, then NBD_OPT_LIST or NBD_OPT_GO, nothing else.
Run as another uid, with whatever command line a test wants the server to
see (arguments after the known ones are ignored, e.g. `-name guest=B`).

    nbd_client.py SOCKET list [--wait] [--lock-fd N] [ignored...]
    nbd_client.py SOCKET go EXPORT [--wait] [--lock-fd N] [ignored...]

--wait: read one line from stdin before connecting (the test first writes
the records that name this process). --lock-fd N: first take a write lock
on the inherited descriptor N and print "locked", as libvirt's QEMU holds
its pid file's. Prints one JSON object:
{"ok": bool, "exports": [...], "error": "..."}; exit status 0 when ok."""

import fcntl
import json
import socket
import struct
import sys

NBDMAGIC = b'NBDMAGIC'
IHAVEOPT = b'IHAVEOPT'
REPLY_MAGIC = 0x3e889045565a9
OPT_ABORT, OPT_LIST, OPT_GO = 2, 3, 7
REP_ACK, REP_SERVER, REP_INFO = 1, 2, 3
REP_ERRORS = {0x80000001: 'unsupported', 0x80000002: 'policy', 0x80000003: 'invalid',
              0x80000004: 'platform', 0x80000005: 'tls required', 0x80000006: 'unknown export',
              0x80000007: 'shutdown', 0x80000008: 'block size required', 0x80000009: 'too big'}
CMD_DISC = 2
REQUEST_MAGIC = 0x25609513


class Closed(Exception):
    pass


def _recv(s, n):
    data = b''
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise Closed('the server closed the connection')
        data += chunk
    return data


def _option(s, opt, data=b''):
    s.sendall(IHAVEOPT + struct.pack('>II', opt, len(data)) + data)


def _reply(s):
    magic, opt, rtype, length = struct.unpack('>QIII', _recv(s, 20))
    if magic != REPLY_MAGIC:
        raise Closed('bad option reply magic %x' % magic)
    data = _recv(s, length)
    if rtype & 0x80000000:
        raise RuntimeError('%s: %s' % (REP_ERRORS.get(rtype, hex(rtype)),
                                       data.decode('utf-8', 'replace')))
    return rtype, data


def _handshake(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(path)
    if _recv(s, 8) != NBDMAGIC or _recv(s, 8) != IHAVEOPT:
        raise Closed('not a newstyle NBD server')
    flags, = struct.unpack('>H', _recv(s, 2))
    s.sendall(struct.pack('>I', flags & 3))     # FIXED_NEWSTYLE, NO_ZEROES
    return s


def list_exports(path):
    s = _handshake(path)
    names = []
    _option(s, OPT_LIST)
    while True:
        rtype, data = _reply(s)
        if rtype == REP_ACK:
            break
        if rtype == REP_SERVER:
            n, = struct.unpack('>I', data[:4])
            names.append(data[4:4 + n].decode())
    _option(s, OPT_ABORT)
    s.close()
    return names


def go(path, export):
    s = _handshake(path)
    name = export.encode()
    _option(s, OPT_GO, struct.pack('>I', len(name)) + name + struct.pack('>H', 0))
    while True:
        rtype, _ = _reply(s)
        if rtype == REP_ACK:
            break
        if rtype != REP_INFO:
            raise Closed('unexpected reply %d to NBD_OPT_GO' % rtype)
    s.sendall(struct.pack('>IHHQQI', REQUEST_MAGIC, 0, CMD_DISC, 0, 0, 0))
    s.close()


def main(argv):
    path, verb = argv[1], argv[2]
    if '--lock-fd' in argv:
        fcntl.lockf(int(argv[argv.index('--lock-fd') + 1]), fcntl.LOCK_EX | fcntl.LOCK_NB)
        print('locked')
        sys.stdout.flush()
    if '--wait' in argv:
        sys.stdin.readline()
    out = {'ok': False, 'exports': [], 'error': ''}
    try:
        if verb == 'list':
            out['exports'] = list_exports(path)
        else:
            go(path, argv[3])
        out['ok'] = True
    except (OSError, Closed, RuntimeError) as e:
        out['error'] = str(e)
    print(json.dumps(out))
    sys.stdout.flush()
    return 0 if out['ok'] else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv))
