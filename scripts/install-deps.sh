#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Install everything gfpool needs on Debian 12 (bookworm) or Debian 13
# (trixie), as root. Idempotent: a second run installs nothing and only
# re-checks.
#
#   install-deps.sh                 install for this machine's release
#   install-deps.sh --list CODENAME print the package list of a release
#                                   (scripts/release-root.sh builds roots from it)
#   install-deps.sh --deb-src [CODENAME]  print the deb-src entries it would
#                                   add (GFPOOL_APT_DIR: read another /etc/apt)
set -euo pipefail

# The packages of one release, one per line. Only the clang runtime's name
# differs: Debian 12 has LLVM 14, Debian 13 LLVM 19 (and no libclang-rt-14-dev).
packages() {
    local clang_rt
    case $1 in
        bookworm) clang_rt=libclang-rt-14-dev ;;
        trixie) clang_rt=libclang-rt-19-dev ;;
        *) echo "install-deps: Debian release '$1' is not supported (bookworm and trixie are)" >&2
           return 1 ;;
    esac
    printf '%s\n' \
        meson ninja-build pkg-config gcc clang "$clang_rt" \
        libglusterfs-dev libxml2-dev libglib2.0-dev libvirt-dev \
        dpkg-dev xsltproc perl python3 libxml2-utils rpcsvc-proto \
        libgnutls28-dev libtirpc-dev \
        glusterfs-server glusterfs-client \
        libvirt-daemon libvirt-daemon-driver-storage-gluster libvirt-clients \
        libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils qemu-block-extra \
        python3-libvirt python3-pytest virtinst \
        util-linux iproute2 procps psmisc mount gdb \
        build-essential debhelper lintian fakeroot man-db mmdebstrap \
        nbdkit nbdkit-plugin-dev libnbd-bin
    # build: the first block; what `meson setup` of the libvirt source tree
    # needs for its generated headers (docs/building.md): the second; then
    # the servers and clients we test against (gdb: a test that finds
    # libvirtd stuck shows its thread stacks); then what builds and tests
    # the Debian packages (scripts/build-debs.sh, user roots made with
    # mmdebstrap, the man page); then nbdkit for the NBD plugin and
    # libnbd's nbdinfo for its tests.
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

case ${1:-} in
    --list) packages "${2:-$(codename)}"; exit ;;
    --deb-src) deb_src_entries "${2:-$(codename)}"; exit ;;
esac

rel=$(codename)
mapfile -t PKGS < <(packages "$rel")
[ ${#PKGS[@]} -gt 0 ] || exit 1

export DEBIAN_FRONTEND=noninteractive

need_update=0
# deb-src for `apt-get source libvirt`: the exact tree the installed libvirtd
# came from (docs/building.md).
src=/etc/apt/sources.list.d/gfpool-deb-src.sources
want=$(deb_src_entries "$rel")
if [ -z "$want" ]; then
    echo "install-deps: no apt source for Debian $rel found in /etc/apt; cannot add deb-src for 'apt-get source libvirt'" >&2
    exit 1
fi
if [ ! -f "$src" ] || [ "$(cat "$src")" != "$want" ]; then
    printf '%s\n' "$want" > "$src"
    need_update=1
fi

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ] || [ $need_update = 1 ]; then
    apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    # --no-install-recommends: recommends pull in a system libvirtd/glusterd
    # setup we never use; we start private daemons ourselves.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
exit 0
