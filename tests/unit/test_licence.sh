#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every source file says its licence in an SPDX line, COPYING holds that
# licence's text, and debian/copyright names the same licence (TAP).
set -u
top=$1
n=0 fails=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi; }

grep -q 'GNU LESSER GENERAL PUBLIC LICENSE' "$top/COPYING" &&
    grep -q 'Version 2.1, February 1999' "$top/COPYING"
ok $? "COPYING is the LGPL 2.1"
grep -qx 'License: LGPL-2.1+' "$top/debian/copyright"
ok $? "debian/copyright: LGPL-2.1+"
grep -q "license: 'LGPL-2.1-or-later'" "$top/meson.build"
ok $? "meson.build: LGPL-2.1-or-later"

cd "$top"
missing=$(find src tests bench scripts .ci debian meson.build meson_options.txt \
               -path tests/fuzz/corpus -prune -o -path bench/results -prune -o \
               -type f \( -name '*.c' -o -name '*.h' -o -name '*.py' -o -name '*.sh' \
                          -o -name meson.build -o -name '*.syms' -o -name '*.syms.in' \
                          -o -name '*.1' -o -name run -o -name rules \) -print |
          sort | while read -r f; do
              head -3 "$f" | grep -q 'SPDX-License-Identifier: LGPL-2.1-or-later' || echo "$f"
          done)
[ -z "$missing" ]
ok $? "an SPDX line in every source file"
[ -n "$missing" ] && printf '# without one: %s\n' $missing

echo "1..$n"
[ $fails -eq 0 ]
