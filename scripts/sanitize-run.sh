#!/bin/bash
# The integration suite once more with the CLI (and so the whole gfapi
# core, the XML/URI code and the image code) built with
# -fsanitize=address,undefined. Every sanitizer report of the
# run is collected from the daemons' stderr and the tests' output; any
# report fails the run. Run after scripts/build.sh (it needs the same tree).
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

asan=$(gcc -print-file-name=libasan.so)
ubsan=$(gcc -print-file-name=libubsan.so)
logdir=$(mktemp -d /tmp/gfpool-asan.XXXXXX)
# The module inside libvirtd only with GFPOOL_SANITIZE_MODULE=1: with ASan
# preloaded into libvirtd, glfs_init never completed here (gfapi runs its
# calls on synctask stacks switched with swapcontext, which ASan does not
# support: "ASan doesn't fully support makecontext/swapcontext"). The core
# is the same code in the CLI, which runs under ASan fine.
if [ "${GFPOOL_SANITIZE_MODULE:-0}" = 1 ]; then
    # libvirtd itself is not instrumented: only our module is checked.
    export GFPOOL_LIBVIRTD_ENV="LD_PRELOAD=$(readlink -f "$asan"):$(readlink -f "$ubsan") ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:log_path=$logdir/libvirtd UBSAN_OPTIONS=print_stacktrace=1:log_path=$logdir/libvirtd-ubsan"
    export GFPOOL_MODULE=$build/src/storage/libvirt_storage_backend_gluster.so
fi
export GFPOOL_CLI=$build/src/tools/gfpool
export ASAN_OPTIONS=detect_leaks=0:log_path=$logdir/cli
export UBSAN_OPTIONS=print_stacktrace=1:log_path=$logdir/cli-ubsan

[ $# -gt 0 ] || set -- "$top/tests/integration/test_cli.py" "$top/tests/integration/test_bad_input.py" "$top/tests/integration/test_data_verbs.py" "$top/tests/integration/test_pool_verbs.py"
/usr/bin/python3 -m pytest -p no:cacheprovider -q "$@"
rc=$?
reports=$(grep -l -E 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' "$logdir"/* 2>/dev/null)
if [ -n "$reports" ]; then
    echo "sanitizer reports:"; for f in $reports; do echo "--- $f"; head -40 "$f"; done
    rc=1
else
    echo "sanitizers: no reports ($logdir)"
fi
exit $rc
