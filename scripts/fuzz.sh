#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build the libFuzzer targets with clang (ASan+UBSan, the core built with the
# same sanitizers) and run each for SECONDS (default 60) on a copy of its
# seed corpus, plus the unit tests' documents for the XML targets
# (tests/unit/pool_xml/, tests/unit/vol_xml/). Non-zero exit if any target
# finds a crash.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}; shift || true
build=${GFPOOL_FUZZ_BUILD_DIR:-$top/build-fuzz}
if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" "$top" -Dfuzzing=true -Dmodule=disabled \
        -Db_sanitize=address,undefined -Db_lundef=false >&2
fi
ninja -C "$build" tests/fuzz/fuzz_probe tests/fuzz/fuzz_uri tests/fuzz/fuzz_pool_xml tests/fuzz/fuzz_vol_xml tests/fuzz/fuzz_records >&2
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(probe uri pool_xml vol_xml records)
rc=0
for t in "${targets[@]}"; do
    work=$(mktemp -d)
    cp -r "$top/tests/fuzz/corpus/$t/." "$work/"
    [ ! -d "$top/tests/unit/$t" ] || cp "$top/tests/unit/$t/"*.xml "$work/"
    echo "fuzz_$t: ${secs}s"
    if ! "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -max_len=300000 \
            -print_final_stats=1 -artifact_prefix="$build/crash-$t-" "$work" \
            2>"$build/fuzz_$t.log"; then
        echo "fuzz_$t: FAILED, see $build/fuzz_$t.log"; rc=1
    fi
    grep -E 'stat::number_of_executed_units|stat::peak_rss' "$build/fuzz_$t.log" | sed "s/^/fuzz_$t: /"
    rm -rf "$work"
done
exit $rc
