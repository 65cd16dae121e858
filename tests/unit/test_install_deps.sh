#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# scripts/install-deps.sh: package lists by release and purpose (build,
# test, runtime), and deb-src entries derived from deb822 and one-line apt
# sources alike (TAP).
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
! "$script" --runtime --list sid >/dev/null 2>&1; ok $? "an unknown release is refused (runtime)"

# Build-Depends of debian/control, one entry per line, its alternatives
# separated by "|" (debhelper-compat is debhelper's)
control=$(dirname "$script")/../debian/control
build_depends=$(awk '/^Build-Depends:/ { on = 1; sub(/^Build-Depends:/, "") }
                     on && /^[^ \t]/ && !/^Build-Depends:/ { on = 0 }
                     on { print }' "$control" | tr ',' '\n' |
                sed -e 's/([^)]*)//g' -e 's/[[:space:]]//g' -e 's/^debhelper-compat$/debhelper/' |
                grep . | sort -u)
# the entries of which no alternative is in the list on stdin
unmet() {
    local list e a met
    list=$(cat)
    for e in $build_depends; do
        met=1
        for a in ${e//|/ }; do grep -qx "$a" <<<"$list" && met=0; done
        [ $met = 0 ] || echo "$e"
    done
}
[ -n "$build_depends" ]; ok $? "debian/control's Build-Depends read"
# the build and test stack: what a hypervisor never needs
dev_stack="clang mmdebstrap lintian python3-pytest glusterfs-server gcc meson debhelper gdb virtinst"
for rel in bookworm trixie; do
    build=$("$script" --build --list $rel) test=$("$script" --test --list $rel)
    runtime=$("$script" --runtime --list $rel)
    expect "$rel: --list alone is the test list" "$test" "$("$script" --list $rel)"
    expect "$rel: --list CODENAME and CODENAME --list agree" "$runtime" "$("$script" --list $rel --runtime)"
    expect "$rel: every Build-Depends is in the build list" "" "$(unmet <<<"$build")"
    expect "$rel: the test list holds the build list" "" "$(comm -23 <(echo "$build") <(echo "$test"))"
    for p in qemu-block-extra nbdkit libvirt-daemon-system; do
        grep -qx $p <<<"$runtime"; ok $? "$rel: runtime has $p"
    done
    bad=$(for p in $dev_stack; do grep -x $p <<<"$runtime"; done; grep -e '-dev$' <<<"$runtime")
    expect "$rel: runtime has no build or test package" "" "$bad"
    bad=$(for p in clang mmdebstrap python3-pytest glusterfs-server; do grep -x $p <<<"$build"; done)
    expect "$rel: the build list has no test tool or server" "" "$bad"
    ! grep -qx libvirt-daemon-system <<<"$test"; ok $? "$rel: the tests start their own libvirtd (no libvirt-daemon-system)"
done

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
