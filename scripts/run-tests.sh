#!/bin/bash
# The whole test suite, from a fresh Debian 12 machine, as root:
# installs what it needs, builds, runs the C unit tests (meson test) and the
# integration tests (pytest: a private gluster cluster and a private libvirtd).
# Ends with one line "TOTAL: N passed, N failed, N skipped"; exits non-zero
# on any failure.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${GFPOOL_BUILD_DIR:-$top/build}
export GFPOOL_BUILD_DIR=$build

"$top/scripts/install-deps.sh" || { echo "TOTAL: 0 passed, 1 failed"; exit 1; }
"$top/scripts/build.sh" || { echo "build failed"; echo "TOTAL: 0 passed, 1 failed"; exit 1; }

meson test -C "$build" --print-errorlogs
meson_rc=$?

# A short run of every libFuzzer target (ASan+UBSan), one test each.
fuzz_passed=0; fuzz_failed=0
for t in probe uri pool_xml vol_xml; do
    if "$top/scripts/fuzz.sh" "${GFPOOL_FUZZ_SECONDS:-15}" "$t"; then
        fuzz_passed=$((fuzz_passed + 1))
    else
        fuzz_failed=$((fuzz_failed + 1))
    fi
done

junit=$build/pytest-junit.xml
rm -f "$junit"
# Debian's python3: python3-libvirt and python3-pytest live there.
/usr/bin/python3 -m pytest -p no:cacheprovider -ra --junitxml="$junit" "$top/tests/integration" "$@"
pytest_rc=$?

/usr/bin/python3 - "$build/meson-logs/testlog.json" "$junit" "$fuzz_passed" "$fuzz_failed" <<'PY'
import json, sys, xml.etree.ElementTree as ET
p, f, s = int(sys.argv[3]), int(sys.argv[4]), 0
try:
    for line in open(sys.argv[1]):
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"): p += 1
        elif r == "SKIP": s += 1
        else: f += 1
except FileNotFoundError:
    f += 1
try:
    root = ET.parse(sys.argv[2]).getroot()
    for ts in root.iter("testsuite"):
        t = int(ts.get("tests", 0)); fl = int(ts.get("failures", 0)) + int(ts.get("errors", 0))
        sk = int(ts.get("skipped", 0))
        p += t - fl - sk; f += fl; s += sk
except (FileNotFoundError, ET.ParseError):
    f += 1
print(f"TOTAL: {p} passed, {f} failed, {s} skipped")
PY
# pytest exits 5 when it collected nothing: that is a failure here too.
[ $meson_rc -eq 0 ] && [ $pytest_rc -eq 0 ] && [ $fuzz_failed -eq 0 ]
