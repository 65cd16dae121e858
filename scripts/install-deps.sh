#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Install what gfpool needs on Debian 12 (bookworm) or Debian 13 (trixie),
# as root, for one of three purposes. Idempotent: a second run installs
# nothing and only re-checks.
#
#   install-deps.sh [--test]        everything the build and the test suite
#                                   need (the default; scripts/run-tests.sh,
#                                   scripts/demo.sh), plus the deb-src entry
#   install-deps.sh --build         what building the packages needs
#                                   (scripts/build-debs.sh), plus the deb-src
#                                   entry for `apt-get source libvirt`
#   install-deps.sh --runtime [DEBDIR]  what a hypervisor needs beside
#                                   gfpool's packages; with DEBDIR, those
#                                   .debs too (apt resolves their Depends)
#   install-deps.sh [--build|--test|--runtime] --list [CODENAME]
#                                   print the package list of a release
#                                   (scripts/release-root.sh builds roots
#                                   from it); --list CODENAME alone: --test
#   install-deps.sh --deb-src [CODENAME]  print the deb-src entries it would
#                                   add (GFPOOL_APT_DIR: read another /etc/apt)
set -euo pipefail

check_release() {
    case $1 in
        bookworm|trixie) ;;
        *) echo "install-deps: Debian release '$1' is not supported (bookworm and trixie are)" >&2
           return 1 ;;
    esac
}

# Building the packages: debian/control's Build-Depends (test_install_deps.sh
# checks that each is here), what `meson setup` of the libvirt source tree
# needs for its generated headers (docs/building.md: the same -dev packages
# and tools), the storage driver the module load test dlopens (in
# libvirt-daemon-driver-storage on Debian 13, which the gluster driver
# package pulls in), man-db and groff for the man page tests, and what
# scripts/build-debs.sh runs around dpkg-buildpackage.
build_packages() {
    check_release "$1" || return 1
    printf '%s\n' \
        build-essential debhelper dpkg-dev fakeroot lintian \
        meson ninja-build pkg-config gcc \
        libglusterfs-dev libxml2-dev libglib2.0-dev libvirt-dev nbdkit-plugin-dev \
        xsltproc perl python3 libxml2-utils rpcsvc-proto libgnutls28-dev libtirpc-dev \
        libvirt-daemon libvirt-daemon-driver-storage-gluster man-db
}

# A hypervisor running gfpool, beside what gfpool's packages depend on
# (glusterfs-common, nbdkit, libgfapi0 and the libvirt release they were
# built for: apt pulls those in from the .debs): the system libvirtd, and
# QEMU with its block drivers (qemu-block-extra: QEMU's gluster:// driver,
# which the <disk> XML of `gfpool vol-disk-xml` uses) and qemu-img.
runtime_packages() {
    check_release "$1" || return 1
    printf '%s\n' \
        libvirt-daemon-system libvirt-daemon-driver-qemu \
        qemu-system-x86 qemu-utils qemu-block-extra nbdkit
}

# The test suite: the build, then clang (and its sanitizer and fuzzer
# runtime, whose name differs: Debian 12 has LLVM 14, Debian 13 LLVM 19 and
# no libclang-rt-14-dev), the servers and clients we test against (gdb: a
# test that finds libvirtd stuck shows its thread stacks; libnbd's nbdinfo
# for the NBD plugin's tests), mmdebstrap for the user roots of the package
# test. Not libvirt-daemon-system: the tests start private daemons, and a
# system libvirtd would only run beside them.
test_packages() {
    local clang_rt
    build_packages "$1" || return 1
    case $1 in
        bookworm) clang_rt=libclang-rt-14-dev ;;
        trixie) clang_rt=libclang-rt-19-dev ;;
    esac
    printf '%s\n' \
        clang "$clang_rt" \
        glusterfs-server glusterfs-client \
        libvirt-daemon libvirt-daemon-driver-storage-gluster libvirt-clients \
        libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils qemu-block-extra \
        python3-libvirt python3-pytest virtinst \
        util-linux iproute2 procps psmisc mount gdb \
        mmdebstrap nbdkit libnbd-bin
}

packages() { # PURPOSE CODENAME
    local list
    list=$("${1}_packages" "$2") || return 1
    sort -u <<<"$list"
}

codename() {
    local c
    c=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
    [ -n "$c" ] || { echo "install-deps: cannot tell the Debian release from /etc/os-release" >&2; return 1; }
    echo "$c"
}

# A deb-src entry for every Debian archive the machine already uses for its
# own release (suite CODENAME or CODENAME-*), whatever format the entries are
# in: deb822 *.sources files or one-line sources.list(.d/*.list). Other
# repositories (vendor suites like "nodistro") are left out. The result is
# deb822 on stdout.
deb_src_entries() {
    local rel=$1 f apt=${GFPOOL_APT_DIR:-/etc/apt}
    local files=()
    for f in "$apt/sources.list" "$apt"/sources.list.d/*.list "$apt"/sources.list.d/*.sources; do
        [ -f "$f" ] && [ "$(basename "$f")" != gfpool-deb-src.sources ] && files+=("$f")
    done
    [ ${#files[@]} -gt 0 ] || return 0
    awk -v rel="$rel" '
        function ours(s) { return s == rel || index(s, rel "-") == 1 }
        function emit(uris, suites, comps, key,    n, i, out, a) {
            n = split(suites, a, " "); out = ""
            for (i = 1; i <= n; i++) if (ours(a[i])) out = out (out ? " " : "") a[i]
            if (out == "" || uris == "") return
            if (seen[uris "|" out]++) return
            printf "Types: deb-src\nURIs: %s\nSuites: %s\nComponents: %s\n", uris, out, comps
            if (key != "") printf "Signed-By: %s\n", key
            printf "\n"
        }
        function flush() {
            if (types ~ /(^| )deb( |$)/ && enabled != "no") emit(uris, suites, comps, key)
            types = uris = suites = comps = key = enabled = ""
        }
        FILENAME ~ /\.sources$/ {
            if (FNR == 1) flush()
            if ($0 ~ /^[ \t]*$/) { flush(); next }
            if ($0 ~ /^#/) next
            k = tolower($1); sub(/:$/, "", k); v = $0; sub(/^[^:]*:[ \t]*/, "", v)
            if (k == "types") types = v
            else if (k == "uris") uris = v
            else if (k == "suites") suites = v
            else if (k == "components") comps = v
            else if (k == "signed-by") key = v
            else if (k == "enabled") enabled = tolower(v)
            next
        }
        FILENAME !~ /\.sources$/ {
            if (FNR == 1) flush()
            if ($1 != "deb") next
            key = ""; i = 2
            if ($2 ~ /^\[/) {
                opts = ""
                for (; i <= NF; i++) { opts = opts " " $i; if ($i ~ /\]$/) { i++; break } }
                if (match(opts, /signed-by=[^] ]*/)) key = substr(opts, RSTART + 10, RLENGTH - 10)
            }
            uri = $i; suite = $(i + 1); comps = ""
            for (j = i + 2; j <= NF; j++) comps = comps (comps ? " " : "") $j
            emit(uri, suite, comps, key); key = ""
        }
        END { flush() }
    ' "${files[@]}"
}

purpose=test list=0 rel= debdir=
while [ $# -gt 0 ]; do
    case $1 in
        --build) purpose=build ;;
        --test) purpose=test ;;
        --runtime) purpose=runtime ;;
        --list) list=1
                case ${2:-} in ''|-*) ;; *) rel=$2; shift ;; esac ;;
        --deb-src) deb_src_entries "${2:-$(codename)}"; exit ;;
        -*) echo "install-deps: unknown option '$1'" >&2; exit 2 ;;
        *) [ $purpose = runtime ] && [ -z "$debdir" ] ||
               { echo "install-deps: unexpected argument '$1'" >&2; exit 2; }
           debdir=$1 ;;
    esac
    shift
done
if [ $list = 1 ]; then
    packages $purpose "${rel:-$(codename)}"
    exit
fi

rel=$(codename)
mapfile -t PKGS < <(packages $purpose "$rel")
[ ${#PKGS[@]} -gt 0 ] || exit 1
# gfpool's own packages, by the names the documentation gives (not the
# -dbgsym ones): apt installs what they depend on from the archive.
DEBS=()
if [ -n "$debdir" ]; then
    for p in gfpool libvirt-daemon-driver-storage-gfpool nbdkit-plugin-gfpool; do
        f=$(ls "$debdir"/${p}_*.deb 2>/dev/null | tail -1)
        [ -n "$f" ] || { echo "install-deps: no ${p}_*.deb in $debdir" >&2; exit 1; }
        DEBS+=("$(realpath "$f")")
    done
fi

export DEBIAN_FRONTEND=noninteractive

need_update=0
# deb-src for `apt-get source libvirt`: the exact tree the installed libvirtd
# came from (docs/building.md). Only a build needs it.
src=/etc/apt/sources.list.d/gfpool-deb-src.sources
if [ $purpose != runtime ]; then
    want=$(deb_src_entries "$rel")
    if [ -z "$want" ]; then
        echo "install-deps: no apt source for Debian $rel found in /etc/apt; cannot add deb-src for 'apt-get source libvirt'" >&2
        exit 1
    fi
    if [ ! -f "$src" ] || [ "$(cat "$src")" != "$want" ]; then
        printf '%s\n' "$want" > "$src"
        need_update=1
    fi
fi

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ] || [ ${#DEBS[@]} -gt 0 ] || [ $need_update = 1 ]; then
    apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ] || [ ${#DEBS[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]} ${DEBS[*]}"
    # --no-install-recommends: recommends pull in a system libvirtd/glusterd
    # setup the tests never use (they start private daemons), and on a
    # hypervisor QEMU's GUI and firmware for other machines.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" "${DEBS[@]}" >/dev/null
fi
exit 0
