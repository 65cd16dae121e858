#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The whole test suite on Debian 12 and Debian 13, from a fresh Debian 12 or
# 13 machine, as root: the machine's own release natively, the other inside
# a Debian root built by scripts/release-root.sh (mmdebstrap, cached) and
# entered by scripts/in-root.sh. For each release: install what it needs,
# build (into build/ natively, build-CODENAME/ in a root), run the C unit
# tests (meson test), a short run of each fuzz target, and the integration
# tests (pytest: a private gluster cluster and a private libvirtd).
#
#   run-tests.sh [PYTEST ARGS...]
#   GFPOOL_RELEASES="bookworm"  only these releases (default: bookworm trixie)
#
# Each release ends with "debian12: N passed, ..." (its failures listed with
# that prefix); the run ends with one line "TOTAL: N passed, N failed,
# N skipped" over both, and exits non-zero on any failure.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

label() {
    case $1 in
        bookworm) echo debian12 ;;
        trixie) echo debian13 ;;
        *) echo "$1" ;;
    esac
}

# ---- one release, natively on this machine ---------------------------------
if [ "${1:-}" = --this-release ]; then
    shift
    rel=$(. /etc/os-release && echo "$VERSION_CODENAME")
    name=$(label "$rel")
    build=${GFPOOL_BUILD_DIR:-$top/build}
    export GFPOOL_BUILD_DIR=$build
    export GFPOOL_FUZZ_BUILD_DIR=${GFPOOL_FUZZ_BUILD_DIR:-$build-fuzz}
    summary=$build-summary.json
    rm -f "$summary"
    fail_setup() {
        echo "$name: $1"
        printf '{"release": "%s", "passed": 0, "failed": 1, "skipped": 0, "failures": ["%s: %s"]}\n' \
            "$name" "$name" "$1" > "$summary"
        exit 1
    }

    "$top/scripts/install-deps.sh" || fail_setup "installing the packages failed"
    "$top/scripts/build.sh" || fail_setup "the build failed"

    meson test -C "$build" --print-errorlogs
    meson_rc=$?

    # A short run of every libFuzzer target (ASan+UBSan), one test each.
    fuzz_targets=(probe uri pool_xml vol_xml records)
    fuzz_failed=()
    for t in "${fuzz_targets[@]}"; do
        "$top/scripts/fuzz.sh" "${GFPOOL_FUZZ_SECONDS:-15}" "$t" || fuzz_failed+=("$t")
    done

    junit=$build/pytest-junit.xml
    rm -f "$junit"
    # Debian's python3: python3-libvirt and python3-pytest live there. Each
    # test has its own limit (conftest.py); this one only ends a run that
    # something outside any test holds, so the other release still runs.
    timeout -k 30 "${GFPOOL_PYTEST_LIMIT_S:-2700}" /usr/bin/python3 -m pytest -p no:cacheprovider -ra --junit-prefix="$name" \
        --junitxml="$junit" "$top/tests/integration" "$@"
    pytest_rc=$?

    /usr/bin/python3 - "$name" "$build/meson-logs/testlog.json" "$junit" "$summary" \
        "${#fuzz_targets[@]}" "${fuzz_failed[@]}" <<'PY'
import json, sys, xml.etree.ElementTree as ET
name, testlog, junit, out, fuzz_run = sys.argv[1:6]
fuzz_failed = sys.argv[6:]
p, f, s, failures = int(fuzz_run) - len(fuzz_failed), len(fuzz_failed), 0, []
failures += ['%s::fuzz_%s' % (name, t) for t in fuzz_failed]
try:
    for line in open(testlog):
        r = json.loads(line)
        if r["result"] in ("OK", "EXPECTEDFAIL"): p += 1
        elif r["result"] == "SKIP": s += 1
        else:
            f += 1; failures.append('%s::meson::%s' % (name, r["name"]))
except FileNotFoundError:
    f += 1; failures.append('%s::meson: no test log' % name)
try:
    for case in ET.parse(junit).getroot().iter("testcase"):
        tid = '%s::%s' % (case.get("classname"), case.get("name"))
        if case.find("failure") is not None or case.find("error") is not None:
            f += 1; failures.append(tid)
        elif case.find("skipped") is not None:
            s += 1
        else:
            p += 1
except (FileNotFoundError, ET.ParseError):
    f += 1; failures.append('%s::pytest: no junit report' % name)
json.dump({"release": name, "passed": p, "failed": f, "skipped": s,
           "failures": failures}, open(out, "w"))
print(f"{name}: {p} passed, {f} failed, {s} skipped")
PY
    # pytest exits 5 when it collected nothing: that is a failure here too.
    [ $meson_rc -eq 0 ] && [ $pytest_rc -eq 0 ] && [ ${#fuzz_failed[@]} -eq 0 ]
    exit
fi

# ---- every release ----------------------------------------------------------
here=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
summaries=()
rc=0
for rel in ${GFPOOL_RELEASES:-bookworm trixie}; do
    name=$(label "$rel")
    echo "==== $name ($rel)$([ "$rel" = "$here" ] && echo ', this machine' || echo ', in a Debian root') ===="
    if [ "$rel" = "$here" ]; then
        build=${GFPOOL_BUILD_DIR:-$top/build}
        GFPOOL_BUILD_DIR=$build "$top/scripts/run-tests.sh" --this-release "$@" || rc=1
    else
        build=$top/build-$rel
        rm -f "$build-summary.json"
        if root=$("$top/scripts/release-root.sh" "$rel"); then
            GFPOOL_BUILD_DIR=$build GFPOOL_FUZZ_BUILD_DIR=$build-fuzz \
                "$top/scripts/in-root.sh" "$root" "$top/scripts/run-tests.sh" --this-release "$@" || rc=1
        else
            echo "$name: the Debian $rel root could not be built"
            printf '{"release": "%s", "passed": 0, "failed": 1, "skipped": 0, "failures": ["%s: no root"]}\n' \
                "$name" "$name" > "$build-summary.json"
            rc=1
        fi
    fi
    summaries+=("$build-summary.json")
done

python3 - "${summaries[@]}" <<'PY'
import json, sys
tot = {"passed": 0, "failed": 0, "skipped": 0}
print("==== summary ====")
for path in sys.argv[1:]:
    try:
        r = json.load(open(path))
    except (OSError, ValueError):
        print("%s: no summary (the run died)" % path); tot["failed"] += 1; continue
    print("%s: %d passed, %d failed, %d skipped" % (r["release"], r["passed"], r["failed"], r["skipped"]))
    for f in r["failures"]:
        print("  FAILED " + f)
    for k in tot:
        tot[k] += r[k]
print("TOTAL: %d passed, %d failed, %d skipped" % (tot["passed"], tot["failed"], tot["skipped"]))
PY
exit $rc
