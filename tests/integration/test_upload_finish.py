# SPDX-License-Identifier: LGPL-2.1-or-later
"""The end of an upload on a slow disk.

libvirtd runs the finish of an upload on its event loop, and the finish
waits for the module's last flush (glfs_fsync) of the volume. A fresh
clone's run of the suite once failed the setup upload of
test_node_killed_mid_operation[clone] with "the end of the upload ... was
not confirmed: GlusterFS stopped answering": three bricks sharing one
disk with other writers took longer for that fsync than the finish waited
without a step of the upload (0.5 s), although GlusterFS answered
everything else. The fault shim makes the flush that slow every time
(GFPOOL_FAULT_SLOW_FSYNC): a flush that is slow while GlusterFS answers
must not fail the upload, one that takes longer than the finish may keep
the daemon's event loop must fail it saying which step it waited for, and
test_reliability.py's test_hung_bricks_do_not_stall_the_event_loop keeps
a truly hung cluster to its short bound.
"""
import os
import time

import libvirt
import pytest

import testbed
from testbed.pools import GlusterPool

MiB = 1024 * 1024
SHIM = os.path.join(testbed.BUILD, 'tests', 'fault', 'gfapi_fault.so')


def _upload(d, pool, vol, data):
    """vol-upload of data through the API -> (error or None, seconds the
    finish took)."""
    conn = libvirt.open(d.uri)
    try:
        v = conn.storagePoolLookupByName(pool).storageVolLookupByName(vol)
        st = conn.newStream(0)
        v.upload(st, 0, 0, 0)
        sent = 0
        while sent < len(data):
            sent += st.send(data[sent:sent + 256 * 1024])
        t0 = time.monotonic()
        try:
            st.finish()
            err = None
        except libvirt.libvirtError as e:
            err = str(e)
        return err, time.monotonic() - t0
    finally:
        conn.close()


@pytest.mark.parametrize('delay_ms', [1200, 6500])
def test_upload_finish_on_a_slow_flush(delay_ms, make_libvirtd, cluster,
                                       gfapi_rep3, unique_name, tmp_path):
    if not os.path.exists(SHIM):
        pytest.skip('fault shim not built: %s' % SHIM)
    d = make_libvirtd(extra_env={
        'LD_PRELOAD': SHIM,
        'GFPOOL_FAULT_SLOW_FSYNC': 'slow.img:%d' % delay_ms})
    p = GlusterPool(d, cluster, gfapi_rep3, unique_name('sf'), tmp_path)
    try:
        d.virsh('vol-create-as', p.name, 'slow.img', '16M')
        data = os.urandom(6 * MiB + 12345)
        err, seconds = _upload(d, p.name, 'slow.img', data)
        print('\nRELIABILITY slow flush %d ms: finish %.2f s, %s' % (
            delay_ms, seconds, err or 'ok'))
        if delay_ms < 5000:
            # GlusterFS answered throughout: the upload is a success
            assert err is None, err
            local = tmp_path / 'dl.img'
            d.virsh('vol-download', '--pool', p.name, 'slow.img', str(local),
                    timeout=60)
            with open(local, 'rb') as f:
                assert f.read(len(data)) == data
        else:
            # longer than the event loop may wait: fails, naming the step
            assert err is not None
            assert 'not confirmed' in err and 'the flush' in err, err
            assert seconds < 7, seconds
        assert d.alive()
    finally:
        p.cleanup()
