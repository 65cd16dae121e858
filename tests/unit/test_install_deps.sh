#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# scripts/install-deps.sh: package lists by release, and deb-src entries
# derived from deb822 and one-line apt sources alike (TAP).
set -u
script=$1
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
n=0 fails=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi; }
expect() { # NAME WANT GOT
    if [ "$2" = "$3" ]; then ok 0 "$1"; else ok 1 "$1"; printf '# want:\n%s\n# got:\n%s\n' "$2" "$3" | sed 's/^/# /'; fi
}

"$script" --list bookworm | grep -qx libclang-rt-14-dev; ok $? "bookworm: clang runtime 14"
"$script" --list trixie | grep -qx libclang-rt-19-dev; ok $? "trixie: clang runtime 19"
! "$script" --list trixie | grep -q libclang-rt-14; ok $? "trixie: no libclang-rt-14-dev (not in Debian 13)"
! "$script" --list sid >/dev/null 2>&1; ok $? "an unknown release is refused"

# deb822, as a Debian 12 installer writes it, plus a vendor repository
mkdir -p "$t/a/sources.list.d"
cat > "$t/a/sources.list.d/debian.sources" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

# disabled
Types: deb
URIs: http://example.invalid/debian
Suites: bookworm-backports
Components: main
Enabled: no
SRC
cat > "$t/a/sources.list.d/vendor.sources" <<'SRC'
Types: deb
URIs: https://vendor.example/apt
Suites: nodistro
Components: main
SRC
expect "deb822 sources: Debian suites of the release only" "Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" "$(GFPOOL_APT_DIR=$t/a "$script" --deb-src bookworm)"

# one-line, as mmdebstrap writes it, with options and a comment
mkdir -p "$t/b/sources.list.d"
cat > "$t/b/sources.list" <<'SRC'
deb http://deb.debian.org/debian trixie main
# deb http://deb.debian.org/debian trixie-backports main
deb [arch=amd64 signed-by=/etc/apt/k.gpg] http://deb.debian.org/debian-security trixie-security main non-free-firmware
deb http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian trixie main
SRC
expect "one-line sources: options kept, other releases left out" "Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: trixie-security
Components: main non-free-firmware
Signed-By: /etc/apt/k.gpg" "$(GFPOOL_APT_DIR=$t/b "$script" --deb-src trixie)"

expect "no source for the release: nothing" "" "$(GFPOOL_APT_DIR=$t/b "$script" --deb-src forky)"
echo "1..$n"
[ $fails = 0 ]
