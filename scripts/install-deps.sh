#!/bin/bash
# Install everything gfpool needs on Debian 12, as root. Idempotent: a second
# run installs nothing and only re-checks.
set -euo pipefail

PKGS=(
    # build
    meson ninja-build pkg-config gcc clang libclang-rt-14-dev
    libglusterfs-dev libxml2-dev libglib2.0-dev libvirt-dev
    # what `meson setup` of the libvirt source tree needs for its two
    # generated headers (see docs/building.md)
    dpkg-dev xsltproc perl python3 libxml2-utils rpcsvc-proto
    libgnutls28-dev libtirpc-dev
    # the things we test against
    glusterfs-server glusterfs-client
    libvirt-daemon libvirt-daemon-driver-storage-gluster libvirt-clients
    libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils qemu-block-extra
    python3-libvirt python3-pytest virtinst
    util-linux iproute2 procps psmisc
)

export DEBIAN_FRONTEND=noninteractive

need_update=0
# deb-src for `apt-get source libvirt`, mirroring the machine's deb822 entries
# (same URIs and suites) so we get the exact tree the installed libvirtd came from.
src=/etc/apt/sources.list.d/gfpool-deb-src.sources
if [ ! -f "$src" ]; then
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        sed -n '/^Types:/,$p' /etc/apt/sources.list.d/debian.sources |
            sed 's/^Types:.*/Types: deb-src/' > "$src"
    else
        cat > "$src" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
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

# Package postinst scripts may start system daemons; we never use them, and the
# test bed must not collide with them, so leave them alone but make sure we
# don't depend on them.
exit 0
