# SPDX-License-Identifier: LGPL-2.1-or-later
"""Test clusters that outlive the command, for iterating on one test:

    python3 tests/testbed cluster-up DIR       start a cluster in DIR, print
                                               JSON, exit (daemons keep
                                               running; state in
                                               DIR/state.json)
    python3 tests/testbed cluster-down DIR     stop it and clean up
    python3 tests/testbed cluster-status DIR   print the state JSON
    python3 tests/testbed tls-cluster-up DIR   the same for a locked-down
    python3 tests/testbed tls-cluster-down DIR cluster (testbed/tls.py)

(`python3 -m testbed ...` from tests/ is the same.)  The integration
tests reuse such clusters with GFPOOL_CLUSTER_DIR=DIR and
GFPOOL_TLS_CLUSTER_DIR=DIR.
"""

import argparse
import json
import os
import sys

if not __package__:
    # run as `python3 tests/testbed`: sys.path[0] is this directory, and
    # the package's parent is what has to be there
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from testbed.cluster import Cluster  # noqa: E402
from testbed.process import unregister_cleanup  # noqa: E402


def _up(cls, d, **kw):
    if os.path.exists(os.path.join(d, 'state.json')):
        sys.exit('%s already holds a cluster (state.json); '
                 'run cluster-down first' % d)
    c = cls(base_dir=d, reaper=False, **kw)
    c.start()
    unregister_cleanup(c)      # keep it running after we exit
    print(json.dumps(c.state(), indent=1))
    return 0


def _down(cls, d):
    try:
        c = cls.from_state(d)
    except FileNotFoundError:
        sys.exit('no state.json in %s' % d)
    c.stop()
    return 0


def main(argv):
    ap = argparse.ArgumentParser(prog='testbed')
    sub = ap.add_subparsers(dest='cmd', required=True)
    up = sub.add_parser('cluster-up')
    up.add_argument('dir')
    up.add_argument('--nodes', type=int, default=3)
    for name in ('cluster-down', 'cluster-status', 'tls-cluster-up',
                 'tls-cluster-down'):
        sub.add_parser(name).add_argument('dir')
    a = ap.parse_args(argv)
    d = os.path.abspath(a.dir)
    if a.cmd == 'cluster-up':
        return _up(Cluster, d, nodes=a.nodes)
    if a.cmd == 'cluster-down':
        return _down(Cluster, d)
    if a.cmd == 'cluster-status':
        with open(os.path.join(d, 'state.json')) as f:
            st = json.load(f)
        c = Cluster.from_state(d)
        st['running_nodes'] = [i for i in range(1, c.nodes + 1)
                               if c.node_running(i)]
        print(json.dumps(st, indent=1))
        return 0
    from testbed.tls import TlsCluster
    if a.cmd == 'tls-cluster-up':
        return _up(TlsCluster, d)
    return _down(TlsCluster, d)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
