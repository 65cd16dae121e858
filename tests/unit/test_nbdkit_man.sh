#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# nbdkit-gfpool-plugin(1) describes every parameter the plugin takes, and
# formats without a warning (TAP).
set -u
page=$1 source=$2
n=0 fails=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi; }

warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
[ -z "$warnings" ]
ok $? "groff formats the page without warnings"
[ -n "$warnings" ] && printf '# %s\n' "$warnings"

keys=$(grep -o 'g_str_equal(key, "[a-z-]*")' "$source" | sed 's/.*"\(.*\)")/\1/' | sort -u)
[ -n "$keys" ]
ok $? "the plugin's parameters are found in its source"
for k in $keys; do
    grep -q "^\.B[IR] $(printf '%s' "$k" | sed 's/-/\\\\-/g')=" "$page"
    ok $? "parameter $k= is described"
done
echo "1..$n"
[ $fails -eq 0 ]
