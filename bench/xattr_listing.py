#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Reading one extended attribute of every file of a directory after
listing it: what glfs_getxattr(path, name) costs per file once
glfs_readdirplus_r has listed 5,000 files, with and without md-cache
keeping the attribute.

    /usr/bin/python3 bench/xattr_listing.py [--files N] [--reps R]

A private cluster (tests/testbed/), volume `rep3`, one directory of N
empty files, each with trusted.gfpool.format and user.gfpool.other set.
For each volume configuration, R runs, each in a fresh client process (a
cold md-cache): readdirplus of the whole directory (started just after a
whole second of the clock: see PHASES), then
glfs_getxattr(path, trusted.gfpool.format) of every file, then
glfs_getxattr(path, user.gfpool.other) of every file (a name md-cache is
not told to keep), then, 2 s later (past md-cache's default timeout),
trusted.gfpool.format of every file again. One more run per configuration with `gluster volume
profile` on counts what reached the bricks in each phase (READDIRP,
LOOKUP, GETXATTR, summed over the three bricks; the listing and the first
read together). Prints a Markdown table (paste it
into bench/README.md) and writes every sample to
bench/results/xattr-listing-<release>-<stamp>.json.

Configurations:
  default   the volume's defaults (md-cache-timeout 1 s, no xattr list)
  list      performance.xattr-cache-list trusted.gfpool.format only
  cached    that list, performance.md-cache-timeout 600,
            performance.cache-invalidation on, features.cache-invalidation
            on, features.cache-invalidation-timeout 600
  client    the volume's defaults; the client sets md-cache's
            xattr-cache-list to trusted.gfpool.* itself through
            glfs_set_xlator_option, as gfpool's does (src/core/gfpool_conn.c)
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests'))
sys.path.insert(0, HERE)

import testbed  # noqa: E402
from testbed.gfapi_ctypes import Gfapi  # noqa: E402
from benchlib import loadavg, log, source_rev  # noqa: E402

FORMAT_ATTR = 'trusted.gfpool.format'
OTHER_ATTR = 'user.gfpool.other'
DIR = '/xl'
CACHED = {
    'performance.xattr-cache-list': FORMAT_ATTR,
    'performance.md-cache-timeout': '600',
    'performance.cache-invalidation': 'on',
    'features.cache-invalidation': 'on',
    'features.cache-invalidation-timeout': '600',
}
# (name, volume options, client xlator options)
CLIENT_LIST = (('*-md-cache', 'xattr-cache-list', 'trusted.gfpool.*'),)
CONFIGS = (
    ('default', {}, ()),
    ('list', {'performance.xattr-cache-list': FORMAT_ATTR}, ()),
    ('cached', CACHED, ()),
    ('client', {}, CLIENT_LIST),
)
# (label, attribute, seconds to wait first): the second read of the format
# comes after md-cache's default timeout (1 s) has passed. md-cache stamps
# what it caches with time(NULL) and drops it once the clock reaches that
# second plus the timeout: with 1 s, an entry cached at x.9 s lives 0.1 s.
# So the listing starts just after a whole second, and the first read
# follows it at once, counted with it.
LATER = 2
PHASES = (('readdirplus', None, 0), ('format', FORMAT_ATTR, 0),
          ('other', OTHER_ATTR, 0), ('format later', FORMAT_ATTR, LATER))
# the phases the bricks' counters are read after
COUNTED = ('format', 'other', 'format later')

# One client's run; before the listing and before each counted phase after
# the first it waits for a line on stdin, so that the parent can clear the
# bricks' profile counters.
_CLIENT = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from testbed.gfapi_ctypes import Gfapi
g = Gfapi('rep3', [tuple(h) for h in json.loads(sys.argv[2])],
          xlator_options=[tuple(o) for o in json.loads(sys.argv[5])])
d = sys.argv[3]
phases = json.loads(sys.argv[4])
out = {}
sys.stdin.readline()
time.sleep(1.01 - time.time() % 1)
t = time.monotonic()
out['listing from'] = time.time()
names = [n for n, _ in g.readdirplus(d)]
out['listing to'] = time.time()
out['readdirplus'] = time.monotonic() - t
out['entries'] = len(names)
for i, (label, attr, wait) in enumerate(phases[1:]):
    time.sleep(wait)
    if i:
        print('next', flush=True)
        sys.stdin.readline()
    t = time.monotonic()
    for n in names:
        g.getxattr(d + '/' + n, attr)
    out[label] = time.monotonic() - t
    out[label + ' to'] = time.time()
print(json.dumps(out), flush=True)
"""


def profile_counts(cluster):
    """{fop: calls} summed over the bricks of rep3 since the last clear."""
    out = cluster.cli('volume', 'profile', 'rep3', 'info', 'cumulative',
                      timeout=60).stdout
    counts = {}
    for m in re.finditer(r'^\s*[\d.]+(?:\s+[\d.]+ \w+){3}\s+(\d+)\s+([A-Z]+)'
                         r'\s*$', out, re.M):
        n, fop = m.groups()
        counts[fop] = counts.get(fop, 0) + int(n)
    return counts


def run_client(cluster, client_options, profile=False):
    p = subprocess.Popen(
        [sys.executable, '-c', _CLIENT, testbed.TESTS,
         json.dumps(cluster.volume_hosts('rep3')), DIR, json.dumps(PHASES),
         json.dumps(client_options)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    counts = {}
    for phase in COUNTED:
        if profile:
            cluster.cli('volume', 'profile', 'rep3', 'info', 'clear',
                        timeout=60)
        p.stdin.write('go\n')
        p.stdin.flush()
        line = p.stdout.readline()      # 'next' or, at the end, the result
        if profile:
            c = profile_counts(cluster)
            counts[phase] = {k: c.get(k, 0) for k in ('READDIRP', 'LOOKUP',
                                                      'GETXATTR')}
    if p.wait(timeout=600) != 0:
        raise SystemExit('client failed')
    return json.loads(line), counts


def populate(g, n):
    g.mkdir(DIR)
    t = time.monotonic()
    for i in range(n):
        p = '%s/img-%05d' % (DIR, i)
        g.put(p, b'')
        g.setxattr(p, FORMAT_ATTR, b'raw')
        g.setxattr(p, OTHER_ATTR, b'x')
    log('%d files with both attributes in %.1f s' % (n, time.monotonic() - t))


def configure(cluster, options):
    for k in CACHED:
        cluster.cli('volume', 'reset', 'rep3', k)
    for k, v in options.items():
        cluster.cli('volume', 'set', 'rep3', k, v)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--files', type=int, default=5000)
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--configs', default=','.join(c[0] for c in CONFIGS),
                    help='which of %s' % ', '.join(c[0] for c in CONFIGS))
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit('run as root (glusterd)')
    # a worktree's .git is a file that a Debian root's source_rev cannot
    # follow: scripts may pass the commit in
    rev = os.environ.get('GFPOOL_REV') or source_rev()
    version = subprocess.run([testbed.GLUSTERD, '--version'],
                             capture_output=True, text=True).stdout.split()[1]
    results = {'release': testbed.RELEASE, 'glusterfs': version,
               'files': args.files, 'rev': rev, 'configs': {}}
    cluster = testbed.Cluster()
    try:
        cluster.start()
        populate(Gfapi('rep3', cluster.volume_hosts('rep3')), args.files)
        configs = [c for c in CONFIGS if c[0] in args.configs.split(',')]
        for name, options, client_options in configs:
            configure(cluster, options)
            runs = []
            for r in range(args.reps):
                res, _ = run_client(cluster, client_options)
                if res['entries'] != args.files:
                    raise SystemExit('listed %d of %d' % (res['entries'],
                                                          args.files))
                runs.append(res)
                log('%-8s %s load %s' % (name, {
                    k: round(v, 3) for k, v in res.items()
                    if not k.endswith((' to', ' from'))}, loadavg()))
            cluster.cli('volume', 'profile', 'rep3', 'start')
            try:
                _, counts = run_client(cluster, client_options, profile=True)
            finally:
                cluster.cli('volume', 'profile', 'rep3', 'stop')
            log('%-8s bricks saw %s' % (name, counts))
            results['configs'][name] = {'options': options, 'runs': runs,
                                        'client options': client_options,
                                        'bricks': counts}
    finally:
        cluster.stop()

    stamp = time.strftime('%Y-%m-%d-%H%M%S')
    path = os.path.join(HERE, 'results', 'xattr-listing-%s-%s.json' % (
        testbed.RELEASE, stamp))
    with open(path, 'w') as f:
        json.dump(results, f, indent=1)
    n = args.files
    print('\n%s (GlusterFS %s), `rep3`, %d files, fresh client per run, '
          'median of %d runs; gfpool %s; load %s; %s.\n' % (
              testbed.RELEASE, version, n, args.reps, rev,
              loadavg(), os.path.relpath(path, REPO)))
    head = ['readdirplus']
    for ph, attr, wait in PHASES[1:]:
        what = 'getxattr %s%s' % (attr, ', %d s later' % wait if wait else '')
        head += ['%s: all files' % what, 'per file',
                 'bricks: READDIRP + LOOKUP + GETXATTR%s' % (
                     ' (with the listing)' if ph == COUNTED[0] else '')]
    print('| volume options | %s |' % ' | '.join(head))
    print('|---|' + '---|' * len(head))
    for name, _, _ in configs:
        c = results['configs'][name]
        med = {ph: statistics.median(r[ph] for r in c['runs'])
               for ph, _, _ in PHASES}
        cells = ['%.2f s' % med['readdirplus']]
        for ph, _, _ in PHASES[1:]:
            b = c['bricks'][ph]
            cells += ['%.2f s' % med[ph], '%.0f µs' % (med[ph] / n * 1e6),
                      '%d + %d + %d' % (b['READDIRP'], b['LOOKUP'],
                                        b['GETXATTR'])]
        print('| %s | %s |' % (name, ' | '.join(cells)))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
