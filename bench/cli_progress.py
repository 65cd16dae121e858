#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the CLI's progress line costs: `gfpool vol-upload` and `vol-clone`
with their stderr on a pseudo-terminal (progress drawn) against the same
with --quiet (nothing reported: the core's path without a report), and
optionally against another gfpool binary (--before, e.g. one built from a
commit without the progress line, its stderr on a terminal too).

Run as root with Debian's python, after scripts/build.sh:

    /usr/bin/python3 bench/cli_progress.py [--reps 3] [--size-mib 512]
                                           [--volume rep3] [--before PATH]

Starts ONE private GlusterFS cluster (tests/testbed/); every number is the
wall time of a whole CLI subprocess, median of --reps; the modes alternate
within each repetition so that load drifts hit them alike. Prints a table
(bench/README.md keeps one).
"""

import argparse
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests'))

import testbed  # noqa: E402
from testbed.pools import pool_opts, sparse_file  # noqa: E402
from benchlib import loadavg, log, source_rev, teardown  # noqa: E402

CLI = os.path.join(testbed.BUILD, 'src', 'tools', 'gfpool')
MiB = 1 << 20


def run_on_pty(cmd, timeout=600):
    """-> (seconds, returncode, what the terminal got) of cmd, its stderr
    on a pseudo-terminal that is read as it goes (a full one would stall
    the CLI)."""
    master, slave = pty.openpty()
    term = b''
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=slave, env=dict(os.environ, LC_ALL='C'))
    os.close(slave)
    try:
        while True:
            if not select.select([master], [], [], timeout)[0]:
                p.kill()
                raise SystemExit('%s: no end after %d s' % (cmd[1], timeout))
            try:
                b = os.read(master, 65536)
            except OSError:
                break
            if not b:
                break
            term += b
        rc = p.wait()
    finally:
        os.close(master)
    return time.perf_counter() - t0, rc, term.decode(errors='replace')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--size-mib', type=int, default=512)
    ap.add_argument('--volume', default='rep3')
    ap.add_argument('--before', help='another gfpool binary to time alike')
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix='gfprogress')
    src = os.path.join(work, 'src.img')
    size = args.size_mib * MiB
    sparse_file(src, size, [(0, size)])
    modes = [('progress', CLI, []), ('quiet', CLI, ['--quiet'])]
    if args.before:
        modes.append(('before', args.before, []))
    times = {(m, op): [] for m, _, _ in modes for op in ('upload', 'clone')}
    cluster = testbed.Cluster()
    try:
        cluster.start()
        opts = pool_opts(cluster, '/gfprogress', args.volume)

        def cli(binary, verb, *a, check=True):
            p = subprocess.run([binary, verb] + opts + list(a), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, universal_newlines=True)
            if check and p.returncode:
                raise SystemExit('gfpool %s: %s' % (verb, p.stderr))
            return p

        cli(CLI, 'pool-build')
        for rep in range(args.reps):
            for m, binary, extra in modes:
                name = 'u-%s.img' % m
                cli(CLI, 'vol-create-as', name, str(size))
                t, rc, term = run_on_pty([binary, 'vol-upload'] + opts + extra + [name, src])
                assert rc == 0, term
                assert ('100%' in term) if m == 'progress' else term == '', (m, term)
                times[(m, 'upload')].append(t)
                t, rc, term = run_on_pty([binary, 'vol-clone'] + opts + extra +
                                         [name, 'c-%s.img' % m])
                assert rc == 0, term
                assert ('100%' in term) if m == 'progress' else term == '', (m, term)
                times[(m, 'clone')].append(t)
                cli(CLI, 'vol-delete', name)
                cli(CLI, 'vol-delete', 'c-%s.img' % m)
                log('rep %d %-8s upload %.3f s  clone %.3f s' % (
                    rep + 1, m, times[(m, 'upload')][-1], times[(m, 'clone')][-1]))
    finally:
        teardown(work, (), cluster)

    print('gfpool %s, %s, %d MiB of data, median of %d whole CLI runs, load %s' % (
        source_rev(), args.volume, args.size_mib, args.reps, loadavg()))
    print()
    print('| verb | ' + ' | '.join(m for m, _, _ in modes) + ' |')
    print('|---|' + '---:|' * len(modes))
    for op in ('upload', 'clone'):
        print('| vol-%s | %s |' % (op, ' | '.join(
            '%.2f s (%s)' % (statistics.median(times[(m, op)]),
                             ' '.join('%.2f' % t for t in times[(m, op)]))
            for m, _, _ in modes)))


if __name__ == '__main__':
    main()
