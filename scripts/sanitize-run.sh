#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The integration tests once more with the CLI and the module inside
# libvirtd (and so the whole gfapi core, the XML/URI code and the image
# code) built with -fsanitize=address,undefined. Every sanitizer report of
# the run is collected from their log files; any report in gfpool's code
# fails the run. Run after scripts/build.sh (it needs the same tree).
#   scripts/sanitize-run.sh [pytest args...]
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${GFPOOL_ASAN_BUILD_DIR:-$top/build-asan}
libvirt_src=$("$top/scripts/prepare-libvirt-tree.sh") || exit 1

if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$top" -Dlibvirt_src="$libvirt_src" \
        -Db_sanitize=address,undefined -Db_lundef=false >&2 || exit 1
fi
ninja -C "$build" >&2 || exit 1

asan=$(readlink -f "$(gcc -print-file-name=libasan.so)")
logdir=$(mktemp -d /tmp/gfpool-asan.XXXXXX)
# the CLI also runs as other users (test_permissions_qemu_uid)
chmod 1777 "$logdir"
# The module inside libvirtd: libvirtd (not instrumented) gets the ASan
# runtime preloaded; the module brings UBSan's as a library it needs.
# Preloading libubsan too deadlocks gfapi's first glfs_new in setlocale
# (the connect never completes); preloaded alone, ASan only warns that it
# "doesn't fully support makecontext/swapcontext" (gfapi's synctasks) and
# reports nothing. Leaks are checked at libvirtd's exit (full stacks:
# gluster's libraries have no frame pointers); only those whose
# allocation passed through gfpool's code count (libvirtd's own are not
# ours to judge). GFPOOL_SANITIZE_MODULE=0 leaves the daemon alone.
# No QEMU guests (test_guest, test_mgmt_stack): libvirtd hands LD_PRELOAD
# on to QEMU, whose capability probe then never ends.
if [ "${GFPOOL_SANITIZE_MODULE:-1}" = 1 ]; then
    export GFPOOL_LIBVIRTD_ENV="LD_PRELOAD=$asan ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:log_path=$logdir/libvirtd UBSAN_OPTIONS=print_stacktrace=1:log_path=$logdir/libvirtd-ubsan"
    export GFPOOL_MODULE=$build/src/guard/libvirt_storage_backend_gluster.so
fi
export GFPOOL_CLI=$build/src/tools/gfpool
export ASAN_OPTIONS=detect_leaks=0:log_path=$logdir/cli
export UBSAN_OPTIONS=print_stacktrace=1:log_path=$logdir/cli-ubsan

[ $# -gt 0 ] || set -- $(for t in cli bad_input data_verbs pool_verbs volumes pool_lifecycle \
                                 daemon_restart reliability; do
                            echo "$top/tests/integration/test_$t.py"; done)
/usr/bin/python3 -m pytest -p no:cacheprovider -q -rfE "$@"
rc=$?
# A report counts if it is an error, or a leak whose allocation was made
# by gfpool's code: the first frame past the allocators (libasan, GLib's
# g_malloc/g_strdup, libc) is ours. gfapi's own leaks (glfs_new's context,
# which glfs_fini never frees) pass through our frames further up.
reports=$(grep -l -E 'ERROR: AddressSanitizer|runtime error:' "$logdir"/* 2>/dev/null)
for f in $(grep -l 'ERROR: LeakSanitizer' "$logdir"/* 2>/dev/null); do
    if awk '/^(Direct|Indirect) leak/ { look = 1; next }
            look && /^    #[0-9]+ / {
                if ($0 ~ /asan_|libglib-2\.0|libc\.so/) next
                if ($0 ~ /\.\.\/src\/(conf|storage|tools)\//) found = 1
                look = 0 }
            END { exit !found }' "$f"; then
        reports="$reports $f"
    else
        others=$((${others:-0} + 1))
    fi
done
if [ -n "${reports// /}" ]; then
    echo "sanitizer reports:"; for f in $reports; do echo "--- $f"; head -60 "$f"; done
    rc=1
else
    echo "sanitizers: no reports in gfpool's code (${others:-0} leak reports of gfapi's or libvirtd's own; $logdir)"
fi
exit $rc
